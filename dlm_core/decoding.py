"""What every decoder shares: the chunk it yields, the names of its options, and the checks a reply's
layout must pass. A leaf: it imports nothing else of `dlm_core`, so the samplers, the faithful decoders
and the engine all build on it without importing one another back."""

from __future__ import annotations

from dataclasses import dataclass

STRATEGIES = ("fast", "reference", "faithful")
CACHE_MODES = ("auto", "none", "prefix", "dual")
DEFAULT_BLOCK_SIZE = 32  # block length when the model does not fix one (LLaDA's default)


@dataclass
class Committed:
    text: str  # text that became committed and left-contiguous since the last yield
    token_ids: list[int]  # the ids behind `text` (never end-of-turn or later)
    nfe: int  # forward passes so far in this reply
    done: bool = False  # the reply is finished (end-of-turn, canvas full, or stopped)


def block_size(requested: int | None, mcfg) -> int:
    """The block a decoding runs on: the one asked for, else a block-causal model's own, else
    DEFAULT_BLOCK_SIZE. mcfg: the model's ModelConfig."""
    if requested:
        return requested
    return mcfg.block_size if mcfg.attention == "block_causal" else DEFAULT_BLOCK_SIZE


def check_fits(prompt_len: int, max_new_tokens: int, context_len: int, extra: int = 0) -> None:
    """A reply needs a prompt, and the prompt plus its canvas (plus `extra` positions a decoder's
    buffer runs past it) must fit the model's context. ValueError says which."""
    if prompt_len < 1:
        raise ValueError("prompt_ids is empty: a diffusion reply needs at least one prompt token")
    if prompt_len + max_new_tokens + extra > context_len:
        raise ValueError(
            f"prompt ({prompt_len}) + max_new_tokens ({max_new_tokens}) exceeds the model's context "
            f"({context_len})"
        )
