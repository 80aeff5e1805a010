"""Has the user finished? The language model's probability that the user's message ends here.

A causal model trained on chat turns has learnt where a user's message stops: after "Set a timer for
ten minutes." the end-of-turn token is likely, after "I want to go to the" it is not. We render one user
message with the checkpoint's own chat template, cut it just before that message's end-of-turn token,
and read the probability of that token from one forward pass (as LiveKit's turn detector does).

    twin = TwinTurnEnd.load()                   # the judge's AR twin (dlm_core/weights/judge_twin)
    twin.p_end("Please set a timer for ten minutes.")    # 0.68
    twin.p_end("I want to go to the")                    # 0.002

The raw probability is informative but not calibrated (questions and unpunctuated text score low);
`p_end_words` scores the words whatever punctuation Whisper guessed, and the turn judge
calibrates what comes out.
"""

from __future__ import annotations

import re

import torch

from dlm_core.checkpoints import JUDGE_TWIN, load_checkpoint
from dlm_core.tokenizer import DlmTokenizer

# Whisper ends most transcripts with a full stop, also ones the speaker broke off ("I want to go to
# the."), and the twin trusts a full stop (0.9996 there). So `p_end_words` scores the words without
# their final punctuation and sums over the marks a finished message may end with. It lowercases them
# too: on bench/turn_eval.py's training split that separates finished from unfinished turns better
# (ROC AUC 0.81 lowercased, 0.76 as Whisper wrote them; the raw p_end of Whisper's text: 0.64 overall).
FINAL_PUNCTUATION = re.compile(r"[\s.,;:!?…\-–—\"']+$")
END_MARKS = (".", "?", "!")


def strip_final_punctuation(text: str) -> str:
    return FINAL_PUNCTUATION.sub("", text.strip())


def normalise(text: str) -> str:
    """The words as `p_end_words` scores them: no final punctuation, lower case."""
    return strip_final_punctuation(text).lower()


class TwinTurnEnd:
    def __init__(self, model: torch.nn.Module, tokenizer: DlmTokenizer, device: str | torch.device = "cpu"):
        if not model.cfg.logits_shift or model.cfg.attention != "causal":
            raise ValueError(
                "TwinTurnEnd needs a causal model whose output at position i predicts token i+1 "
                "(logits_shift), such as the judge's twin at dlm_core/weights/judge_twin"
            )
        self.model = model
        self.tokenizer = tokenizer
        self.device = torch.device(device)
        self.end = tokenizer.special.end_of_turn
        # Only marks that are one token each can be scored in the one batched forward.
        marks = [tokenizer.encode(m) for m in END_MARKS]
        self.mark_ids = [ids[0] for ids in marks if len(ids) == 1]  # [M]

    @classmethod
    def load(cls, spec: str | None = None, device: str | torch.device = "cpu") -> TwinTurnEnd:
        """spec: a checkpoint folder or hub id (load_checkpoint's rules); None: the judge's AR twin."""
        loaded = load_checkpoint(str(JUDGE_TWIN) if spec is None else spec, device=device)
        return cls(loaded.model, loaded.tokenizer, device)

    def prompt_ids(self, text: str) -> list[int]:
        """A chat of one user message with `text` as its content, cut before its end-of-turn token."""
        ids = self.tokenizer.chat_prompt([{"role": "user", "content": text}])
        # The user's end-of-turn is the last one: the generation prompt after it has none.
        last = len(ids) - 1 - ids[::-1].index(self.end)
        return ids[:last]

    @torch.inference_mode()
    def p_end(self, text: str) -> float:
        """P(end-of-turn | the user's message so far is exactly `text`), one forward pass."""
        ids = torch.tensor([self.prompt_ids(text)], device=self.device)  # [1, S]
        logits = self.model(ids)[0, -1]  # [V]: with shifted logits, the last output predicts the next token
        return float(torch.softmax(logits.float(), dim=-1)[self.end])

    @torch.inference_mode()
    def p_end_words(self, text: str) -> float:
        """P(the message ends after these words): end-of-turn now, or one of END_MARKS then end-of-turn.

        The transcript is `normalise`d (Whisper guesses punctuation and case). One forward pass over
        M rows, the prompt followed by each mark: [M, S + 1]. 0 when there are no words yet.
        """
        words = normalise(text)
        if not words:
            return 0.0
        base = self.prompt_ids(words)
        rows = torch.tensor([[*base, m] for m in self.mark_ids], device=self.device)  # [M, S + 1]
        probs = torch.softmax(self.model(rows)[:, -2:].float(), dim=-1)  # [M, 2, V]
        after_words = probs[0, 0]  # [V]: the same in every row (causal)
        after_mark = probs[:, 1, self.end]  # [M]
        return float(after_words[self.end] + (after_words[self.mark_ids] * after_mark).sum())
