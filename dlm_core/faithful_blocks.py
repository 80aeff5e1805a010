"""Faithful decoders of the block-causal families: SDAR, Fast-dLLM v2 and dllm's BD3LM.

- `sdar`: JetAstra/SDAR `block_diffusion_generate`, remasking "low_confidence_dynamic". Blocks
  lie on the absolute grid (the prompt's last, partial block is decoded with its masks). Each of
  `steps` steps per block commits every masked token above `threshold` if there are at least that
  step's share of block_size/steps, else the share most confident; a finished block is written to
  the KV cache by one more pass. It stops after the first block that holds an end-of-turn. SDAR's
  code always samples; greedy here takes the most likely token with its softmax probability.
- `fast_dllm_v2`: the `generate` of Efficient-Large-Model/Fast_dLLM_v2 (model repository
  modeling.py), use_block_cache=False. Blocks on the absolute grid; the pass that caches a finished
  block also commits the next block's first token by argmax. Inside a block, sub-blocks of
  `sub_block_size` are decoded left to right, each step committing the sub-block's most confident
  mask plus every one above `threshold` (strictly), from logits shifted by one inside the block.
  A block stops once an end-of-turn is committed with no mask before it. `use_block_cache`: its
  sub-block cache (see `_v2_logits`).
- `bd3lm`: ZHZisZZ/dllm `BD3LMSampler.sample`. The prompt is left-padded to whole blocks, so the
  reply's blocks start right after the prompt (block of logical position p: (p + pad) // block).
  Per block, one pass over everything before it builds the cache, then `steps` (spread over blocks)
  count-based low-confidence steps on dllm's linear schedule; it stops after a block with EOS.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from dlm_core.cache import KVCache
from dlm_core.decoding import block_size
from dlm_core.faithful_kernel import Step, confidence, logits_of, masks, pick, transfer_counts

GUARD = 4  # a block may take GUARD x its length in steps before we stop it (the original would hang)


def sdar(model, special, prompt: torch.Tensor, cfg, run) -> Iterator[Step]:
    block = block_size(cfg.block_size, model.cfg)
    steps = cfg.steps or block
    counts = transfer_counts(block, steps)
    P = prompt.shape[0]
    total = math.ceil((P + cfg.max_new_tokens) / block) * block
    x = torch.cat([prompt, masks(total - P, special.mask, prompt.device)])  # [total]
    cache, nfe = KVCache(model.cfg.n_layers), 0
    if P // block:
        logits_of(model, run, x[: P // block * block], 0, cache, write=True)
        nfe += 1
    for b in range(P // block, total // block):
        s, e = b * block, (b + 1) * block
        for step in range(steps + 1):
            masked = x[s:e] == special.mask
            if not masked.any() or step == steps:
                logits_of(model, run, x[s:e], s, cache, write=True)  # cache the finished block
                nfe += 1
                break
            conf, tokens = confidence(logits_of(model, run, x[s:e], s, cache), "low_confidence")
            commit = pick(torch.where(masked, conf, -math.inf), counts[step], cfg.threshold, "above_or_count")
            x[s:e][commit] = tokens[commit]  # as SDAR: a short block's share may overwrite prompt tokens
            nfe += 1
            yield Step(x, nfe)
        yield Step(x, nfe)
        if _holds_stop(x[P:e], special):
            return


def _holds_stop(ids: torch.Tensor, special) -> bool:
    return bool(torch.isin(ids, torch.tensor(sorted(special.stop_ids), device=ids.device)).any())


@dataclass
class _V2:
    """What Fast-dLLM v2's decoding carries from block to block."""

    model: object
    run: object
    special: object
    block: int
    sub: int  # sub-block length
    threshold: float
    cache: KVCache  # every finished block (exact)
    block_cache: KVCache | None = None  # use_block_cache: the window's keys from its last full pass
    use_block_cache: bool = False


def fast_dllm_v2(model, special, prompt: torch.Tensor, cfg, run) -> Iterator[Step]:
    block = block_size(cfg.block_size, model.cfg)
    v2 = _V2(model, run, special, block, cfg.sub_block_size or 8, cfg.threshold, KVCache(model.cfg.n_layers))
    v2.use_block_cache = cfg.use_block_cache
    P, nfe, x = prompt.shape[0], 0, prompt
    if P > block:  # prefill whole prompt blocks; a prompt ending on the grid gets its first token now
        logits = logits_of(model, run, x[: P // block * block], 0, v2.cache, write=True)
        nfe += 1
        if P % block == 0:
            x = torch.cat([x, logits[-1].argmax()[None]])
    for _ in range(cfg.max_new_tokens // block):
        if (x[P:] == special.end_of_turn).any():
            break
        start = x.shape[0]  # this block's new region starts here
        x = torch.cat([x, masks(block - start % block, special.mask, x.device)])
        for nxt, count in _v2_block(v2, x, start, nfe):
            if nxt is not None:  # the block is cached and the next one's first token chosen
                x = torch.cat([x, nxt[None]])
            nfe = count
            yield Step(x, nfe)


def _v2_block(v2: _V2, x: torch.Tensor, start: int, nfe: int) -> Iterator:
    """Decode the window x[-block:] sub-block by sub-block, in place. Yields (None, nfe) per step,
    then (next token, nfe) once the finished block is cached; nothing more if it stopped."""
    ws, mask = x.shape[0] - v2.block, v2.special.mask
    while not _v2_stopped(x, start, v2.special):
        if not (x[ws:] == mask).any():
            logits = logits_of(v2.model, v2.run, x[ws:], v2.cache.length, v2.cache, write=True)
            yield logits[-1].argmax(), nfe + 1
            return
        for a in range(ws, x.shape[0], v2.sub):
            for _ in range(GUARD * v2.sub):
                if not (x[a : a + v2.sub] == mask).any() or _v2_stopped(x, start, v2.special):
                    break
                logits = _v2_logits(v2, x, ws, a)  # [sub, V], shifted inside the block
                masked = x[a : a + v2.sub] == mask
                conf, tokens = confidence(logits, "low_confidence")
                commit = (
                    pick(torch.where(masked, conf, -math.inf), None, v2.threshold, "top1_or_above") & masked
                )
                x[a : a + v2.sub][commit] = tokens[commit]
                nfe += 1
                yield None, nfe
        if (x[ws:] == mask).any() and not _v2_stopped(x, start, v2.special):
            return  # the guard gave up on a position the model keeps predicting [MASK] for


def _v2_logits(v2: _V2, x: torch.Tensor, ws: int, a: int) -> torch.Tensor:
    """The sub-block's logits [sub, V]: from a pass over the whole window, or (use_block_cache, once
    the sub-block's first token is committed) from a pass over the sub-block alone that sees the
    window's keys from the last full pass, its own slots replaced for good. As in the original, that
    block cache is not reset between blocks: a new block's first sub-block (whose first token the
    previous block's caching pass chose) reads the previous window's keys."""
    window = x[ws:]
    if not v2.use_block_cache or v2.block_cache is None or window[a - ws] == v2.special.mask:
        scratch = _copy(v2.cache) if v2.use_block_cache else v2.cache  # only a copy is written to
        out = logits_of(v2.model, v2.run, window, v2.cache.length, scratch, write=v2.use_block_cache)
        if v2.use_block_cache:
            v2.block_cache = _columns(scratch, range(v2.cache.length, scratch.length))
        return torch.cat([out[:1], out[:-1]])[a - ws : a - ws + v2.sub]
    lo, hi = a - ws, a - ws + v2.sub
    scratch = _copy(v2.cache)
    others = [j for j in range(v2.block_cache.length) if not lo <= j < hi]
    scratch.append_row(v2.block_cache, 0, torch.tensor(others, dtype=torch.long))
    out = logits_of(v2.model, v2.run, x[a : a + v2.sub], v2.cache.length + lo, scratch, write=True)
    fresh = _columns(scratch, range(scratch.length - v2.sub, scratch.length))
    slots = _columns(v2.block_cache, range(lo))
    slots.append_row(fresh, 0, torch.arange(v2.sub))
    slots.append_row(v2.block_cache, 0, torch.arange(hi, v2.block_cache.length))
    v2.block_cache = slots
    return torch.cat([out[:1], out[:-1]])


def _copy(cache: KVCache) -> KVCache:
    """A cache that shares `cache`'s columns; writing to it leaves `cache` as it is."""
    return _columns(cache, range(cache.length))


def _columns(cache: KVCache, cols) -> KVCache:
    """A new one-row cache holding columns `cols` of `cache`."""
    out = KVCache(cache.n_layers)
    cols = torch.tensor(list(cols), dtype=torch.long)
    if len(cols):
        out.append_row(cache, 0, cols)
    return out


def _v2_stopped(x: torch.Tensor, start: int, special) -> bool:
    """An end-of-turn in this block's new region with no mask before it."""
    hits = (x[start:] == special.end_of_turn).nonzero()
    return bool(len(hits)) and not (x[start : start + int(hits[0])] == special.mask).any()


def bd3lm(model, special, prompt: torch.Tensor, cfg, run) -> Iterator[Step]:
    block = block_size(cfg.block_size, model.cfg)
    gen = cfg.max_new_tokens
    n_blocks = math.ceil(gen / block)
    per_block = math.ceil((cfg.steps or gen) / n_blocks)
    pad = -prompt.shape[0] % block  # dllm left-pads the prompt to whole blocks
    x, nfe = prompt, 0
    for b in range(n_blocks):
        T, size = x.shape[0], min(block, gen - b * block)
        x = torch.cat([x, masks(size, special.mask, x.device)])
        pos, attn = _dllm_layout(x, special.pad, block, pad)  # fixed for the block, as in dllm
        cache = KVCache(model.cfg.n_layers)
        logits_of(model, run, x[:T], cache=cache, write=True, attn_mask=attn[:T, :T], positions=pos[:T])
        nfe += 1
        for k in dllm_transfer_counts(size, per_block):
            masked = x[T:] == special.mask
            if not masked.any():
                break
            logits = logits_of(model, run, x[T:], cache=cache, attn_mask=attn[T:], positions=pos[T:])
            conf, tokens = confidence(logits, "low_confidence")
            conf = torch.where(masked, conf, -math.inf)
            commit = pick(conf, min(k, int(masked.sum())), None, "count")
            x[T:][commit] = tokens[commit]
            nfe += 1
            yield Step(x, nfe)
        if (x[T:] == special.eos).any():
            return


def _dllm_layout(x: torch.Tensor, pad_id: int, block: int, pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """dllm's _prepare_for_sampling: (positions [N], visibility [N, N]). A token equal to the pad id
    is padding to dllm wherever it stands: no query sees it and it takes no position; blocks follow
    the physical grid of the left-padded sequence."""
    valid = x != pad_id  # [N]
    positions = torch.where(valid, valid.long().cumsum(0) - 1, 0)
    index = torch.arange(x.shape[0], device=x.device)
    return positions, grid_mask(index, index, block, pad) & valid[None, :] & valid[:, None]


def grid_mask(q_pos: torch.Tensor, k_pos: torch.Tensor, block: int, offset: int) -> torch.Tensor:
    """Block-causal visibility on a grid shifted by `offset` positions. q_pos: [S], k_pos: [T] ->
    [S, T] bool: a query sees keys of its own block and of earlier ones."""
    return (k_pos[None, :] + offset) // block <= (q_pos[:, None] + offset) // block


def dllm_transfer_counts(n_masked: int, steps: int) -> list[int]:
    """dllm's get_num_transfer_tokens with its LinearAlphaScheduler, deterministic: step j of the
    reverse process unmasks round(left * (1 - s/t)) of the `left` masks (the ratio in float32, as
    the scheduler computes it), and steps that unmask nothing are dropped."""
    counts, left = [], n_masked
    for j in range(steps):
        t = torch.tensor((steps - j) / steps, dtype=torch.float32)
        s = torch.tensor((steps - j - 1) / steps, dtype=torch.float32)
        ratio = ((1 - (1 - s)) / (1 - (1 - t))).item()  # alpha(u) = 1 - u
        n = int(torch.round(torch.tensor(left, dtype=torch.float64) * (1 - ratio)))
        n = min(n, left)
        counts.append(n)
        left -= n
        if left == 0:
            break
    return [n for n in counts if n > 0]
