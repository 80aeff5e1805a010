"""Tokenizer with its special tokens named once, a chat template, and incremental detokenising.

Reads the Hugging Face on-disk layout: `tokenizer.json` (the `tokenizers` format) and
`tokenizer_config.json` (special token strings and the Jinja chat template). Token ids are looked
up from their strings here and nowhere else, so the sampler never sees a magic number.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import jinja2
import jinja2.sandbox
from tokenizers import Tokenizer

from dlm_core.tool_calls import (
    check_tool_calls,
    check_tools,
    fallback_messages,
    template_handles_tools,
    uses_tools,
)

# Strings that mean "mask" in the families we load, in order of preference:
# LLaDA "<|mdm_mask|>", Dream / dllm-hub A2D "<|mask|>", SDAR "<|MASK|>", Fast-dLLM v2 "|<MASK>|".
MASK_NAMES = ("<|mdm_mask|>", "<|mask|>", "<|MASK|>", "|<MASK>|", "<mask>", "[MASK]")
# Strings that end an assistant turn, in order of preference.
END_OF_TURN_NAMES = ("<|eot_id|>", "<|im_end|>", "<|endoftext|>", "</s>")


@dataclass(frozen=True)
class SpecialTokens:
    mask: int  # the [MASK] the sampler fills in
    end_of_turn: int  # ends the assistant's reply
    eos: int  # end of text (often also the padding the SFT data used)
    pad: int  # padding id
    bos: int | None = None  # beginning of text, if the family uses one

    @property
    def stop_ids(self) -> frozenset[int]:
        return frozenset({self.end_of_turn, self.eos})


def _token_text(value) -> str | None:
    # tokenizer_config.json stores special tokens either as strings or as {"content": ...} objects.
    if isinstance(value, dict):
        return value.get("content")
    return value


class DlmTokenizer:
    def __init__(
        self,
        tokenizer: Tokenizer,
        special: SpecialTokens,
        chat_template: str | None = None,
        bos_text: str = "",
        eos_text: str = "",
        template_vars: dict | None = None,
    ):
        self.tok = tokenizer
        self.special = special
        self.chat_template = chat_template
        self.bos_text, self.eos_text = bos_text, eos_text
        self.template_vars = dict(template_vars or {})  # extra chat-template variables of the family
        self._template = None
        if chat_template:
            # Same settings as the Hugging Face renderer, so templates written for it render alike.
            env = jinja2.sandbox.ImmutableSandboxedEnvironment(
                trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"]
            )
            env.globals["raise_exception"] = _raise_template_error
            env.globals["strftime_now"] = _strftime_now
            env.filters["tojson"] = _tojson
            self._template = env.from_string(chat_template)
        self.handles_tools = template_handles_tools(chat_template)  # else tools go in as plain text

    @property
    def vocab_size(self) -> int:
        return self.tok.get_vocab_size(with_added_tokens=True)

    @classmethod
    def from_dir(
        cls,
        path: str | Path,
        mask: str | None = None,
        end_of_turn: str | None = None,
        prefer_mask: tuple[str, ...] = (),
        prefer_end_of_turn: tuple[str, ...] = (),
        mask_id: int | None = None,
        template_vars: dict | None = None,
    ) -> DlmTokenizer:
        """Load from a checkpoint folder. `mask`/`end_of_turn` force the token strings to use.
        Otherwise the string the tokenizer config declares wins, then `prefer_*` (a model family's
        own names), then the generic names. `mask_id` is the checkpoint config's mask id, used only
        when no mask string is found. `template_vars`: the family's extra chat-template variables."""
        path = Path(path)
        if not (path / "tokenizer.json").is_file():
            raise FileNotFoundError(f"{path} has no tokenizer.json")
        tok = Tokenizer.from_file(str(path / "tokenizer.json"))
        config = {}
        if (path / "tokenizer_config.json").is_file():
            config = json.loads((path / "tokenizer_config.json").read_text())
        vocab = tok.get_vocab(with_added_tokens=True)

        def lookup(
            role: str, forced: str | None, names: tuple[str, ...], required: bool = True
        ) -> int | None:
            declared = _token_text(config.get(f"{role}_token"))
            candidates = [forced] if forced else [declared, *names]
            for name in candidates:
                if name and name in vocab:
                    return vocab[name]
            if required:
                raise ValueError(f"{path}: no {role} token found (tried {[c for c in candidates if c]})")
            return None

        found_mask = lookup("mask", mask, (*prefer_mask, *MASK_NAMES), required=mask_id is None)
        if found_mask is None:
            if not 0 <= mask_id < tok.get_vocab_size(with_added_tokens=True):
                raise ValueError(f"{path}: mask id {mask_id} from config.json is outside the tokenizer")
            found_mask = mask_id
        eos_id = lookup("eos", None, END_OF_TURN_NAMES)
        eot_id = lookup("eot", end_of_turn, (*prefer_end_of_turn, *END_OF_TURN_NAMES))
        pad_id = lookup("pad", None, (), required=False)
        bos_id = lookup("bos", None, (), required=False)
        special = SpecialTokens(
            mask=found_mask,
            end_of_turn=eot_id,
            eos=eos_id,
            pad=eos_id if pad_id is None else pad_id,
            bos=bos_id,
        )
        return cls(
            tok,
            special,
            _chat_template(path, config),
            bos_text=_token_text(config.get("bos_token")) or "",
            eos_text=_token_text(config.get("eos_token")) or "",
            template_vars=template_vars,
        )

    def encode(self, text: str) -> list[int]:
        return self.tok.encode(text, add_special_tokens=False).ids

    def decode(self, ids, skip_special: bool = True) -> str:
        return self.tok.decode(list(ids), skip_special_tokens=skip_special)

    def chat_prompt(self, messages: list[dict], tools: list[dict] | None = None) -> list[int]:
        """Token ids of a conversation, ending where the assistant's reply begins. `tools`: the
        functions the model may call, in the Hugging Face form (see dlm_core.tool_calls)."""
        return self.encode(self.chat_text(messages, tools))

    def chat_text(self, messages: list[dict], tools: list[dict] | None = None) -> str:
        """The conversation rendered by the chat template. A template that knows tools gets them as
        `tools=`; for one that does not, tools, calls and results are written in as plain text."""
        if self._template is None:
            raise ValueError("this tokenizer has no chat_template")
        tools = check_tools(tools)
        check_tool_calls(messages)
        extra = {}
        if self.handles_tools:
            # Left out when there are none, so templates render exactly as they did before tools.
            extra = {"tools": tools} if tools else {}
        elif tools or uses_tools(messages):
            messages = fallback_messages(messages, tools)
        return self._template.render(
            messages=messages,
            add_generation_prompt=True,
            bos_token=self.bos_text,
            eos_token=self.eos_text,
            **self.template_vars,
            **extra,
        )

    @functools.cached_property
    def letterless_ids(self) -> frozenset[int]:
        """Tokens with no letter in them (punctuation, spaces, digits, braces, quotes): the repetition
        penalty spares them, since a sentence repeats its commas and a tool call's JSON repeats its
        braces and quotes by design."""
        texts = self.tok.decode_batch([[i] for i in range(self.vocab_size)])  # one call, not one per token
        return frozenset(i for i, text in enumerate(texts) if not any(ch.isalpha() for ch in text))

    def decoder(self) -> IncrementalDecoder:
        return IncrementalDecoder(self)


def _chat_template(path: Path, config: dict) -> str | None:
    """The default chat template: tokenizer_config.json's "chat_template" (a string, or a list of
    named templates), else a chat_template.jinja file beside it (newer transformers save that)."""
    template = config.get("chat_template")
    if isinstance(template, list):
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
        template = named.get("default") or next(iter(named.values()), None)
    if not template and (path / "chat_template.jinja").is_file():
        template = (path / "chat_template.jinja").read_text()
    return template or None


def _raise_template_error(message: str):
    raise ValueError(f"chat template: {message}")


def _tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False) -> str:
    # Hugging Face's filter, not Jinja's (which sorts keys and escapes <, >, &, '): tool schemas and
    # call arguments must render as the family's authors rendered them.
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)  # Llama-3.1-style templates date their system turn


class IncrementalDecoder:
    """Turns a growing list of committed ids into new text, holding back half-finished characters."""

    def __init__(self, tokenizer: DlmTokenizer):
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self.emitted = ""

    def push(self, ids) -> str:
        self.ids.extend(int(i) for i in ids)
        text = self.tokenizer.decode(self.ids)
        if text.endswith("\ufffd"):  # an incomplete UTF-8 sequence: wait for its next byte-token
            return ""
        # Byte-level decoders only ever append to earlier text, so the new part is the tail.
        new = text[len(self.emitted) :]
        self.emitted = text
        return new
