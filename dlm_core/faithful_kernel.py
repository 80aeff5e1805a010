"""What the faithful decoders share: the model call (`Runner`, `logits_of`), what each step yields
(`Step`), the confidence rules, the one selection kernel (`pick`) and LLaDA's step schedule.

`dlm_core.faithful_bidirectional` and `dlm_core.faithful_blocks` build on it; `dlm_core.faithful`
picks among them and streams their steps as committed text.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from dlm_core.cache import KVCache

# run(fn) -> fn(): how a decoder reaches the model. The engine passes one that runs `fn` on its
# worker thread, between batched passes; alone, the call is direct.
Runner = Callable[[Callable[[], torch.Tensor]], torch.Tensor]


def direct(fn: Callable[[], torch.Tensor]) -> torch.Tensor:
    return fn()


@dataclass
class Step:
    """What a decoder yields after each forward pass."""

    x: torch.Tensor  # [N] prompt + reply canvas (masks where uncommitted); the decoder's own buffer
    nfe: int  # forward passes so far


def logits_of(
    model,
    run: Runner,
    tokens: torch.Tensor,
    start: int = 0,
    cache: KVCache | None = None,
    write: bool = False,
    attn_mask: torch.Tensor | None = None,
    positions: torch.Tensor | None = None,
) -> torch.Tensor:
    """Logits [S, V] (float32) for tokens [S] at positions start..start+S-1 (or `positions` [S]),
    reading `cache` and, if `write`, adding this call's keys/values to it. attn_mask: [S, T] in place
    of the model's rule (T: cached keys first, then this call's)."""
    if positions is None:
        positions = torch.arange(start, start + tokens.shape[0], device=tokens.device)
    positions = positions[None]  # [1, S]

    def call() -> torch.Tensor:
        if write:
            with cache.writing():
                return model(tokens[None], positions, cache=cache, attn_mask=attn_mask)[0]
        return model(tokens[None], positions, cache=cache, attn_mask=attn_mask)[0]

    return run(call)


def masks(n: int, mask_id: int, device) -> torch.Tensor:
    return torch.full((n,), mask_id, dtype=torch.long, device=device)


def confidence(logits: torch.Tensor, rule: str, float64: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(confidence [M], greedy token [M]) for logits [M, V].

    "low_confidence" / "maskgit_plus": the probability of the greedy token (LLaDA, Dream, SDAR,
    Fast-dLLM v2, dllm); "topk_margin": top-1 minus top-2 probability; "entropy": minus the
    entropy, sum p log(p + 1e-10) (Dream). float64: softmax in double precision (Fast-dLLM)."""
    probs = torch.softmax(logits.double() if float64 else logits, dim=-1)
    conf, tokens = probs.max(dim=-1)
    if rule == "topk_margin":
        top2 = torch.sort(probs, dim=-1, descending=True).values[:, :2]
        conf = top2[:, 0] - top2[:, 1]
    elif rule == "entropy":
        conf = torch.sum(probs * torch.log(probs + 1e-10), dim=-1)
    return conf, tokens


def pick(conf: torch.Tensor, k: int | None, threshold: float | None, rule: str = "count") -> torch.Tensor:
    """The one selection kernel of faithful decoding. conf: [N] with -inf where nothing may be
    committed. Returns commit [N] bool.

    "count": the k most confident (LLaDA, Dream, dllm); "top1_or_at_least": the most confident plus
    every one >= threshold (Fast-dLLM); "top1_or_above": the most confident plus every one
    > threshold (Fast-dLLM v2); "above_or_count": every one > threshold if there are at least k,
    else the k most confident (SDAR's low_confidence_dynamic). Ties and the k > candidates case fall
    the way `torch.topk` over the full row falls, as in the originals."""
    assert conf.ndim == 1, conf.shape
    commit = torch.zeros_like(conf, dtype=torch.bool)
    if rule == "count":
        commit[torch.topk(conf, k).indices] = True
    elif rule == "top1_or_at_least":
        order = torch.topk(conf, k).indices  # k = candidates; the first always, the rest if confident
        commit[order[:1]] = True
        commit[order[1:][conf[order[1:]] >= threshold]] = True
    elif rule == "top1_or_above":
        commit = conf > threshold
        commit[conf.argmax()] = True
    elif rule == "above_or_count":
        high = conf > threshold
        if int(high.sum()) >= k:
            return high
        commit[torch.topk(conf, k).indices] = True
    else:
        raise ValueError(f"unknown selection rule {rule!r}")
    return commit


def check_schedule(gen_length: int, block: int, steps: int, name: str) -> int:
    """Steps per block of LLaDA-style schedules, with the originals' asserts as errors a user reads."""
    if gen_length % block:
        raise ValueError(f"{name}: max_new_tokens ({gen_length}) must be a multiple of block_size ({block})")
    n_blocks = gen_length // block
    if steps % n_blocks:
        raise ValueError(f"{name}: steps ({steps}) must be a multiple of the number of blocks ({n_blocks})")
    return steps // n_blocks


def transfer_counts(n_masked: int, steps: int) -> list[int]:
    """LLaDA's get_num_transfer_tokens: n_masked spread over steps, the remainder first."""
    base, rem = divmod(n_masked, steps)
    return [base + (1 if i < rem else 0) for i in range(steps)]
