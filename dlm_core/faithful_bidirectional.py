"""Faithful decoders of the bidirectional families, LLaDA and Dream.

- `llada`: ML-GSAI/LLaDA `generate.py`, low-confidence remasking. The canvas is the prompt plus
  max_new_tokens masks, recomputed whole every step; `steps` are split evenly over blocks of
  `block_size`, and each step commits the most confident masked positions before the block's end.
- `fast_dllm`: NVlabs/Fast-dLLM `llada/generate.py` threshold decoding: every step commits the most
  confident masked token of the block plus every one at least `threshold` confident (softmax in
  float64). cache="none" recomputes the canvas; "prefix" and "dual" recompute it once at each
  block start (that pass also commits), keep the keys before the block ("prefix") or before and
  after it ("dual") from that pass, and run only the block (plus, for "prefix", the masks after it).
- `dream`: HKUNLP/Dream `diffusion_generate` with alg "maskgit_plus", "topk_margin" or
  "entropy": over the whole canvas, step i of `steps` commits int(n_masked * (1 - s/t)) tokens on
  the linear schedule t = linspace(1, 1e-3, steps + 1), the last step all that are left.
  Confidences come from the `top_k` (50) largest logits: under transformers 4.x Dream's generation
  config inherits top_k=50 from the model config, so that is what its users get.
- `fast_dllm_dream`: Fast-dLLM's cached Dream decoder (see the function).

None of them suppresses the mask token: if the model's best guess is [MASK], the position stays
masked, as in the originals (a step guard stops a block the original would loop on forever).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch

from dlm_core.cache import KVCache
from dlm_core.decoding import block_size
from dlm_core.faithful_kernel import Step, check_schedule, confidence, logits_of, masks, pick, transfer_counts

GUARD = 4  # a block may take GUARD x its length in steps before we stop it (the original would hang)
DREAM_EPS = 1e-3  # Dream's schedule runs t from 1 down to eps


def llada(model, special, prompt: torch.Tensor, cfg, run) -> Iterator[Step]:
    P, gen = prompt.shape[0], cfg.max_new_tokens
    block = block_size(cfg.block_size, model.cfg)
    per_block = check_schedule(gen, block, cfg.steps or gen, "llada")
    x = torch.cat([prompt, masks(gen, special.mask, prompt.device)])  # [N]
    nfe = 0
    for b in range(gen // block):
        end = P + (b + 1) * block
        counts = transfer_counts(int((x[end - block : end] == special.mask).sum()), per_block)
        for k in counts:
            masked = x == special.mask
            conf, tokens = confidence(logits_of(model, run, x), "low_confidence")
            conf[end:] = -math.inf
            conf = torch.where(masked, conf, -math.inf)
            commit = pick(conf, k, None, "count")
            x[commit] = torch.where(masked, tokens, x)[commit]
            nfe += 1
            yield Step(x, nfe)


def fast_dllm(model, special, prompt: torch.Tensor, cfg, run) -> Iterator[Step]:
    P, gen = prompt.shape[0], cfg.max_new_tokens
    block = block_size(cfg.block_size, model.cfg)
    mode = "dual" if cfg.cache == "auto" else cfg.cache
    x = torch.cat([prompt, masks(gen, special.mask, prompt.device)])  # [N]
    nfe = 0
    for b in range(gen // block):
        start = P + b * block
        cache = None if mode == "none" else KVCache(model.cfg.n_layers)
        for step in range(GUARD * block):
            if mode == "none" or step == 0:
                logits = logits_of(model, run, x, cache=cache, write=cache is not None)
                region = 0
                if cache is not None:
                    _keep_outside(cache, start, start + block, mode, x.shape[0])
            else:
                region = start
                stop = start + block if mode == "dual" else x.shape[0]
                logits = logits_of(model, run, x[start:stop], start, cache)
            _threshold_step(x, logits, region, start + block, special.mask, cfg.threshold)
            nfe += 1
            yield Step(x, nfe)
            # Fast-dLLM checks after the first step only without a cache; with one, a block that the
            # block-start pass finished still gets one (empty) step, which we count too.
            if (step or mode == "none") and not (x[start : start + block] == special.mask).any():
                break


def _keep_outside(cache: KVCache, start: int, end: int, mode: str, n: int) -> None:
    """After the block-start pass: keep the keys before the block, and for "dual" after it too."""
    keep = list(range(start)) + (list(range(end, n)) if mode == "dual" else [])
    cache.keep(torch.tensor(keep, dtype=torch.long))


def _threshold_step(x, logits, region: int, end: int, mask_id: int, threshold: float) -> None:
    """Fast-dLLM's get_transfer_index with a threshold, on x[region:] (logits: one row each, at
    least up to `end`); positions from `end` on are never committed. Commits in place."""
    view = x[region : region + logits.shape[0]]
    masked = view == mask_id
    masked[end - region :] = False
    conf, tokens = confidence(logits, "low_confidence", float64=True)
    conf = torch.where(masked, conf, -math.inf)
    commit = pick(conf, int(masked.sum()), threshold, "top1_or_at_least")
    view[commit] = torch.where(masked, tokens, view)[commit]


def dream(model, special, prompt: torch.Tensor, cfg, run) -> Iterator[Step]:
    gen = cfg.max_new_tokens
    steps = cfg.steps or gen
    x = torch.cat([prompt, masks(gen, special.mask, prompt.device)])  # [N]
    timesteps = torch.linspace(1, DREAM_EPS, steps + 1)  # float32, as Dream computes it
    for i in range(steps):
        masked = x == special.mask
        logits = logits_of(model, run, x)
        logits = torch.cat([logits[:1], logits[:-1]])  # output i - 1 predicts position i
        conf, tokens = confidence(_top_k(logits[masked], cfg.top_k), cfg.alg)
        n_masked = masked.sum() / 1  # a float32 tensor, as in Dream
        t, s = timesteps[i], timesteps[i + 1]
        k = int(n_masked * (1 - s / t)) if i < steps - 1 else int(n_masked)
        if k > 0:
            full = torch.full(x.shape, -math.inf, dtype=conf.dtype, device=x.device)
            full[masked] = conf
            proposal = torch.full_like(x, special.mask)
            proposal[masked] = tokens
            commit = pick(full, k, None, "count")
            x[commit] = proposal[commit]
        yield Step(x, i + 1)


def _top_k(logits: torch.Tensor, k: int | None) -> torch.Tensor:
    """Dream's top_k_logits: all but the k largest logits of each row set to the dtype's minimum."""
    if k is None:
        return logits
    kth = torch.topk(logits, min(k, logits.shape[-1])).values[..., -1:]
    return logits.masked_fill(logits < kth, torch.finfo(logits.dtype).min)


def fast_dllm_dream(model, special, prompt: torch.Tensor, cfg, run) -> Iterator[Step]:
    """NVlabs/Fast-dLLM `dream/model/generation_utils_block.py`: Dream in blocks with a prefix or
    dual cache. Each block starts with a pass over the whole canvas that commits the block's first
    token by argmax and fills the cache; then alg "confidence_threshold" commits the block's most
    confident token plus every one at least `threshold` confident, any other alg runs Dream's
    entropy schedule over the block's share of `steps`."""
    P, gen = prompt.shape[0], cfg.max_new_tokens
    block = block_size(cfg.block_size, model.cfg)
    per_block = check_schedule(gen, block, cfg.steps or gen, "fast_dllm_dream")
    dual = cfg.cache != "prefix"
    x = torch.cat([prompt, masks(gen, special.mask, prompt.device)])  # [N]
    timesteps = torch.linspace(1, DREAM_EPS, per_block + 1)
    nfe = 0
    for b in range(gen // block):
        start = P + b * block
        cache = KVCache(model.cfg.n_layers)
        logits = logits_of(model, run, x, cache=cache, write=True)
        x[start] = logits[start - 1].argmax()  # Dream's shifted logits: output i - 1 predicts i
        _keep_outside(cache, start, start + block, "dual" if dual else "prefix", x.shape[0])
        nfe += 1
        yield Step(x, nfe)
        for i in range(1, GUARD * block):
            view = x[start : start + block] if dual else x[start:]
            logits = logits_of(model, run, view, start, cache)
            logits = torch.cat([logits[:1], logits[:-1]])  # shifted inside the query
            nfe += 1
            if cfg.alg != "confidence_threshold" and i == per_block:
                break
            _dream_block_step(view, logits, block, special.mask, cfg, timesteps, i, per_block)
            yield Step(x, nfe)
            if not (x[start : start + block] == special.mask).any():
                break


def _dream_block_step(view, logits, block, mask_id, cfg, timesteps, i, per_block) -> None:
    """One step of Fast-dLLM's Dream block loop on the query `view` (the block first); in place."""
    masked = view == mask_id
    in_block = torch.zeros_like(masked)
    in_block[:block] = True
    threshold_rule = cfg.alg == "confidence_threshold"
    if not threshold_rule:
        masked &= in_block
    rule = "low_confidence" if threshold_rule else "entropy"
    conf, tokens = confidence(_top_k(logits[masked], cfg.top_k), rule)
    full = torch.full(view.shape, -math.inf, dtype=conf.dtype, device=view.device)
    full[masked] = conf
    full[~in_block] = -math.inf
    proposal = torch.full_like(view, mask_id)
    proposal[masked] = tokens
    if threshold_rule:
        commit = pick(full, int((view[:block] == mask_id).sum()), cfg.threshold, "top1_or_at_least")
    else:
        n_masked = masked.sum() / 1  # a float32 tensor, as in Dream
        t, s = timesteps[i], timesteps[i + 1]
        k = int(n_masked * (1 - s / t)) if i < per_block - 1 else int(n_masked)
        if k <= 0:
            return
        commit = pick(full, k, None, "count")
    view[commit] = proposal[commit]
