"""One diffusion reply's decoding state: the layout of its positions, the canvas, the KV-cache
bookkeeping and the left-contiguous frontier.

`dlm_core.sampler.generate` drives it; this file knows nothing of how tokens are chosen. Per step:
`query()` builds the forward's input (committed tokens the cache lacks, the canvas, maybe suffix
masks), `after_forward()` counts the pass and what it added to the cache, the sampler commits tokens
in `block_tokens()`, and `advance_frontier()` returns the tokens that became left-contiguous. The
first step of each block is also its prefill (`_prefill_writes`): the only pass of the block that
writes to the cache; the block's later steps read it.

Positions are absolute: the prompt is 0..P-1 and the reply canvas P..gen_end-1. "fast" decodes a
canvas of one block at a time; "reference" keeps the whole reply as its canvas and decodes it block
by block, recomputed from the prompt at every step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from dlm_core.cache import KVCache, PromptCache


@dataclass(frozen=True)
class Layout:
    """Facts about one reply that hold for all its steps."""

    prompt_len: int  # P: the reply canvas starts at this position
    gen_end: int  # P + max_new_tokens: first position after the canvas
    block: int  # sampler block length
    model_block: int | None  # a block-causal model's block (the exact-cache grid); None otherwise
    shift: int  # 1 if output i predicts token i + 1 (logits_shift), else 0
    bidirectional: bool  # sees the masks after the block (causal families cannot), caches inexactly
    cache_mode: str  # "none", "prefix" or "dual" (resolved, never "auto")
    mask_id: int
    stop_ids: frozenset[int]
    device: torch.device
    spared: frozenset[int] = frozenset()  # tokens the repetition penalty leaves alone (letterless ones)

    def block_end(self, start: int) -> int:
        if self.model_block is not None:  # keep sampler blocks on the model's block grid
            return min((start // self.block + 1) * self.block, self.gen_end)
        return min(start + self.block, self.gen_end)

    def exact_limit(self, n: int) -> int:
        """How much of a committed prefix of length n may be cached exactly (or at all)."""
        if self.model_block is not None:
            return n // self.model_block * self.model_block
        return n


@dataclass
class Block:
    """The block being decoded, in absolute positions."""

    start: int
    end: int
    steps_cap: int  # selection steps this block may take (the last one commits whatever is left)
    suffix_len: int  # masks after the block that the first query carries (bidirectional "fast")


@dataclass
class Query:
    """One forward pass's input. See `ForwardFn` in dlm_core.sampler."""

    tokens: torch.Tensor  # [1, S]
    positions: torch.Tensor  # [1, S]
    keep_q: torch.Tensor | None  # query indices whose keys/values join the cache
    want: tuple[int, int]  # query range whose logits predict the block
    n_tail: int  # committed tokens at the front of the query that the cache lacked


@dataclass
class DecodeState:
    layout: Layout
    ids: list[int]  # the prompt plus every committed whole block
    canvas: torch.Tensor  # [C] tokens being decoded (masks until committed)
    canvas_start: int  # absolute position of canvas[0]
    prompt_cache: PromptCache | None = None  # the KV cache (None: no cache) and the ids it holds
    cached: int = 0  # committed positions whose keys/values the cache holds
    frontier: int = 0  # absolute position of the first uncommitted (or unyielded) token
    finished: bool = False  # end-of-turn reached the frontier
    stop_at: int | None = None  # absolute position of the earliest committed stop token, once known
    nfe: int = 0  # forward passes so far
    step: int = 0  # selection steps taken in the current block
    block: Block | None = None  # the block being decoded

    @property
    def cache(self) -> KVCache | None:
        return self.prompt_cache.kv if self.prompt_cache is not None else None

    @classmethod
    def start(
        cls, layout: Layout, prompt_ids: list[int], whole_canvas: bool, prompt_cache: PromptCache | None
    ) -> DecodeState:
        """A fresh reply. `whole_canvas`: the canvas is the whole reply ("reference"), else one block
        at a time. `prompt_cache` (None without a cache): its exact common prefix with the prompt is
        reused, the rest dropped."""
        P = layout.prompt_len
        canvas = _masks(layout, layout.gen_end - P if whole_canvas else 0)
        state = cls(layout, list(prompt_ids), canvas, canvas_start=P, frontier=P)
        if prompt_cache is None:
            return state
        reuse = 0
        if not layout.bidirectional:  # causal families: a common prefix is exact
            lcp = _common_prefix(prompt_cache.ids, state.ids)
            reuse = layout.exact_limit(min(lcp, layout.prompt_len - layout.shift))
        prompt_cache.kv.truncate(reuse)
        prompt_cache.ids = state.ids[:reuse]
        state.prompt_cache, state.cached = prompt_cache, prompt_cache.kv.length
        return state

    def open_block(self, block: Block, whole_canvas: bool) -> None:
        """Start decoding `block`: a fresh canvas of its masks, unless the canvas is the whole reply."""
        self.block, self.step = block, 0
        if not whole_canvas:
            self.canvas_start = block.start
            self.canvas = _masks(self.layout, block.end - block.start)
        if self.layout.cache_mode == "dual":
            self.cache.truncate(self.cached)  # drop the previous block's cached suffix

    def query(self) -> Query:
        """Committed tokens the cache lacks, the canvas, and (maybe) suffix masks. A block's first pass
        is also its prefill: it writes the committed tokens before the block to the cache."""
        lay, blk = self.layout, self.block
        tail = self.ids[self.cached : self.canvas_start]
        n_tail = len(tail)
        prefill = self.step == 0
        n_suffix = blk.suffix_len if (lay.cache_mode != "dual" or prefill) else 0
        parts = [torch.tensor(tail, dtype=torch.long, device=lay.device), self.canvas]
        if n_suffix:
            parts.append(_masks(lay, n_suffix))
        tokens = torch.cat(parts)[None]  # [1, S]
        q_pos = list(range(self.cached, self.canvas_start + self.canvas.shape[0]))
        if n_suffix:
            q_pos += range(lay.gen_end - n_suffix, lay.gen_end)
        positions = torch.tensor(q_pos, device=lay.device)[None]  # [1, S]
        keep_q = None
        if prefill and self.cache is not None:
            keep_q = self._prefill_writes(tokens.shape[1], n_suffix)
        b0, b1 = blk.start - self.canvas_start, blk.end - self.canvas_start
        want = (n_tail + b0 - lay.shift, n_tail + b1 - lay.shift)
        return Query(tokens, positions, keep_q, want, n_tail)

    def _prefill_writes(self, n_query: int, n_suffix: int) -> torch.Tensor:
        """The query indices whose keys/values a block's first pass adds to the cache: the committed
        tokens before the block, cut to the exact grid (whole model blocks; a shifted model's last one
        stays a query, to predict the block's first token), and in "dual" mode the suffix masks."""
        lay = self.layout
        n_write = max(0, lay.exact_limit(min(self.block.start - lay.shift, self.canvas_start)) - self.cached)
        keep = list(range(n_write))
        if lay.cache_mode == "dual" and n_suffix:
            keep += range(n_query - n_suffix, n_query)
        return torch.tensor(keep, dtype=torch.long)

    def after_forward(self, query: Query) -> None:
        """Count the forward pass and the committed tokens it added to the cache."""
        self.nfe += 1
        if query.keep_q is not None and len(query.keep_q):
            self.cached += int((query.keep_q < query.n_tail).sum())
            self.prompt_cache.ids = self.ids[: self.cached]

    def block_tokens(self) -> torch.Tensor:
        """The block's slice of the canvas (a view: writing to it commits tokens). [L_block]"""
        return self.canvas[self.block.start - self.canvas_start : self.block.end - self.canvas_start]

    def note_stops(self, committed: list[int]) -> None:
        """Remember the earliest stop token among newly committed block indices."""
        blk = self.block_tokens()
        for pos in committed:
            if int(blk[pos]) in self.layout.stop_ids and (
                self.stop_at is None or self.block.start + pos < self.stop_at
            ):
                self.stop_at = self.block.start + pos

    def advance_frontier(self) -> list[int]:
        """Move the frontier over newly left-contiguous tokens and return them (end-of-turn excluded)."""
        new_ids = []
        while self.frontier < self.block.end and not self.finished:
            tok = int(self.canvas[self.frontier - self.canvas_start])
            if tok == self.layout.mask_id:
                break
            if tok in self.layout.stop_ids:
                self.finished = True
                break
            new_ids.append(tok)
            self.frontier += 1
        return new_ids

    def close_block(self) -> None:
        """The block is fully committed: its tokens join the committed ids."""
        self.ids.extend(self.block_tokens().tolist())

    def release(self) -> None:
        """Leave only exact committed prefix columns in the cache."""
        if self.cache is not None:
            self.cache.truncate(self.cached)


def plan_blocks(
    layout: Layout, steps_per_block: int | None = None, total_steps: int | None = None
) -> list[Block]:
    """The reply's blocks. "fast" (`steps_per_block`): the cap is for a full block, a shorter one (the
    first, or the last) gets its share. "reference" (`total_steps`): LLaDA splits the steps evenly
    over equal blocks, so a block's share follows its length."""
    blocks, start = [], layout.prompt_len
    reply_len = layout.gen_end - layout.prompt_len
    while start < layout.gen_end:
        end = layout.block_end(start)
        if total_steps is None:
            cap = max(1, math.ceil(steps_per_block * (end - start) / layout.block))
            suffix = layout.gen_end - end if layout.bidirectional else 0
        else:
            cap = max(1, math.ceil(total_steps * (end - start) / reply_len))
            suffix = 0
        blocks.append(Block(start, end, cap, suffix))
        start = end
    return blocks


def _masks(layout: Layout, n: int) -> torch.Tensor:
    return torch.full((n,), layout.mask_id, dtype=torch.long, device=layout.device)


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i
