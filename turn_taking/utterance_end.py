"""Is the utterance finished? A small causal Transformer that reads all the words said so far.

The third text signal of the end-of-turn judge, beside the AR twin (`turn_taking.twin`) and the counted
sentence ends (`turn_taking.sentence_ends`). The table sees only the last 1-3 words, so "if you see him" or
"when I get home" look finished to it; this model reads the whole utterance, and it never sees
punctuation or case: Whisper writes a full stop after a clause the speaker paused on, and that full stop
is Whisper's guess, not evidence. It was trained (`python -m training.utterance_end`) on every sentence of
our training conversations cut at every word, lower-cased and without punctuation: a binary head read at
each word's last token says whether a sentence ends after that word, so one sentence gives one label per
word.

    ends = UtteranceEnd.load()                  # the bundled weights, turn_taking/tables/utterance_end
    ends.p_end("What time is it?")              # high
    ends.p_end("When I get home.")              # low: the full stop is not read
    ends.p_end_each("when i get home remind me to feed the cat")   # one probability per word

One forward pass over the utterance's tokens (~1 ms on one CPU thread); the words are the table's
(`sentence_ends.words`), each spoken word is encoded with a leading space by the bundled BPE tokenizer,
and only the last MAX_TOKENS tokens are read.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from dlm_core.model import ModelConfig, Transformer
from dlm_core.tokenizer import DlmTokenizer
from turn_taking.sentence_ends import words

BUNDLED = Path(__file__).resolve().parent / "tables" / "utterance_end"
FORMAT = "dlm-voice utterance end v1"
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
START_TOKEN = "<|user|>"  # stands before the first word, as a user message starts in the chat template
MAX_TOKENS = 96  # the longest context read (the start token included); longer utterances keep their end


class EndModel(nn.Module):
    """A causal Transformer and one logit per position: does a sentence end after this token?"""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        if cfg.attention != "causal":
            raise ValueError(
                f"the utterance-end model reads left to right: attention 'causal', got {cfg.attention!r}"
            )
        self.body = Transformer(cfg)
        self.head = nn.Linear(cfg.dim, 1)

    def forward(self, tokens: torch.Tensor, key_valid: torch.Tensor | None = None) -> torch.Tensor:
        """tokens: [B, S] -> logits [B, S] (float32)."""
        h = self.body(tokens, key_valid=key_valid, hidden_only=True)  # [B, S, dim]
        return self.head(h).squeeze(-1).float()


class WordIds:
    """Words to token ids, each word with its leading space, remembered once encoded."""

    def __init__(self, tokenizer: DlmTokenizer):
        self.tokenizer = tokenizer
        self.start = tokenizer.tok.token_to_id(START_TOKEN)
        if self.start is None:
            raise ValueError(f"the tokenizer has no {START_TOKEN} token")
        self._ids: dict[str, list[int]] = {}

    def word(self, w: str) -> list[int]:
        ids = self._ids.get(w)
        if ids is None:
            ids = self._ids[w] = self.tokenizer.encode(" " + w)
        return ids

    def encode(self, ws: list[str], max_tokens: int = MAX_TOKENS) -> tuple[list[int], list[int]]:
        """The start token and the words' tokens, and where each word's last token is. Words that do not
        fit in max_tokens are dropped from the front (their ends then get no position: -1)."""
        per_word = [self.word(w) for w in ws]
        ids, ends, used = [], [-1] * len(ws), 1
        first = len(ws)
        while first > 0 and used + len(per_word[first - 1]) <= max_tokens:
            first -= 1
            used += len(per_word[first])
        ids = [self.start]
        for i in range(first, len(ws)):
            ids += per_word[i]
            ends[i] = len(ids) - 1
        return ids, ends


class UtteranceEnd:
    def __init__(self, model: EndModel, word_ids: WordIds):
        self.model = model.eval()
        self.word_ids = word_ids

    @classmethod
    def load(cls, path: str | Path | None = None) -> UtteranceEnd:
        """Weights written by training.utterance_end (default: the bundled ones)."""
        from safetensors.torch import load_file

        path = Path(path) if path is not None else BUNDLED
        config = path / CONFIG_FILE
        if not config.is_file():
            raise FileNotFoundError(f"no utterance-end model at {path} (python -m training.utterance_end)")
        meta = json.loads(config.read_text())
        if meta.get("format") != FORMAT:
            raise ValueError(f"{config} is not an utterance-end model ({FORMAT!r})")
        model = EndModel(ModelConfig(**meta["model"]))
        state = {k: v.float() for k, v in load_file(str(path / WEIGHTS_FILE)).items()}
        missing, unexpected = model.load_state_dict(state, strict=False)
        if unexpected or set(missing) - {"body.lm_head.weight"}:  # the head is tied to the embedding
            raise ValueError(f"{path}: weights do not fit the config ({missing}, {unexpected})")
        return cls(model, WordIds(DlmTokenizer.from_dir(path)))

    @torch.inference_mode()
    def p_end_each(self, text: str) -> list[float]:
        """P(a sentence ends after each word of `text`), read left to right in one pass; a word too far
        back to be read (MAX_TOKENS) gets 0.5."""
        ws = words(text)
        if not ws:
            return []
        ids, ends = self.word_ids.encode(ws)
        p = torch.sigmoid(self.model(torch.tensor([ids]))[0])  # [S]
        return [float(p[e]) if e >= 0 else 0.5 for e in ends]

    @torch.inference_mode()
    def p_end(self, text: str) -> float:
        """P(the utterance is finished after its last word); 0 when there are no words."""
        ws = words(text)
        if not ws:
            return 0.0
        ids, _ = self.word_ids.encode(ws)
        return float(torch.sigmoid(self.model(torch.tensor([ids]))[0, -1]))
