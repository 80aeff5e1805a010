"""Masked-diffusion samplers as generators of committed, left-contiguous text.

Both strategies run the same loop and the same selection kernel (`select_tokens`); they differ by
config only:

- "reference": LLaDA's semi-autoregressive low-confidence remasking. The canvas is the prompt plus
  `max_new_tokens` masks, recomputed whole at every step (no cache); each block gets a fixed number
  of steps and each step commits the most confident tokens of the block. The reply is only cut at
  end-of-turn after the whole canvas is decoded. This is the baseline we measure against.
- "fast": confidence-threshold parallel commit (every token above `threshold`, at least enough
  tokens to finish the block within `max_steps_per_block` steps), a block-wise KV cache, and early
  stop as soon as end-of-turn is committed with no mask before it. The forward pass only sees the
  committed tokens the cache does not hold yet plus the current block (plus, for bidirectional
  models, the masks after it, which such models need to know how long the reply may be).

Cache exactness: for "block_causal" and "causal" models a cached prefix of whole committed blocks
is exact, so "fast" commits the same tokens as with `cache="none"` (tested). For "bidirectional"
models the prefix cache (and the dual cache, which also caches the masks after the block for the
duration of one block) is an approximation, as in Fast-dLLM: cached keys were computed when later
positions held other tokens.

Shifted models (`logits_shift`: output i predicts token i+1, Dream and AR-adapted families): the
last committed token before the block is never cached, so it is always a query and its output
predicts the block's first position; every block position j reads the output at j - 1.

Every fast step commits at least one token, so no step repeats an unchanged canvas; there is no
cached prediction to reuse (mdlm's trick pays off for samplers that may commit nothing in a step).

After every step the generator yields a `Committed` with the text that became left-contiguous in
that step (possibly empty) and the forward-pass count so far. End-of-turn and anything after it are
never yielded. Closing the generator stops work before the next forward pass.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch

from dlm_core.cache import KVCache

STRATEGIES = ("fast", "reference")
CACHE_MODES = ("auto", "none", "prefix", "dual")
DEFAULT_BLOCK_SIZE = 32  # block length when the model does not fix one (LLaDA's default)


@dataclass
class SamplerConfig:
    strategy: str = "fast"  # "fast" (threshold + cache + early stop) or "reference" (LLaDA)
    max_new_tokens: int = 128  # length of the reply canvas
    block_size: int | None = None  # None: the model's block for block_causal models, else 32
    threshold: float = 0.9  # fast: commit every masked token at least this confident
    max_steps_per_block: int = 16  # fast: step cap per full block (forces >= block/cap tokens per step)
    steps: int | None = None  # reference: total steps over the canvas; None = max_new_tokens
    temperature: float = 0.0  # 0 = greedy; > 0 samples from softmax(logits / temperature)
    early_stop: bool | None = (
        None  # stop once end-of-turn is committed; None = on for fast, off for reference
    )
    cache: str = "auto"  # fast: "auto" (exact prefix cache, or dual for bidirectional),
    #                                     "none", "prefix", "dual" (bidirectional only: caches the tail masks)
    seed: int | None = None  # seeds sampling when temperature > 0
    repetition_penalty: float = 1.2  # > 1 damps tokens the reply already holds (CTRL/HF rule); 1 = off

    def __post_init__(self):
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        if not isinstance(self.max_new_tokens, int) or self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be a positive integer, got {self.max_new_tokens!r}")
        if self.block_size is not None and (not isinstance(self.block_size, int) or self.block_size < 1):
            raise ValueError(f"block_size must be a positive integer or None, got {self.block_size!r}")
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must be between 0 and 1, got {self.threshold!r}")
        if not isinstance(self.max_steps_per_block, int) or self.max_steps_per_block < 1:
            raise ValueError(
                f"max_steps_per_block must be a positive integer, got {self.max_steps_per_block!r}"
            )
        if self.steps is not None and (not isinstance(self.steps, int) or self.steps < 1):
            raise ValueError(f"steps must be a positive integer or None, got {self.steps!r}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature!r}")
        if not self.repetition_penalty >= 1.0:
            raise ValueError(f"repetition_penalty must be >= 1, got {self.repetition_penalty!r}")
        if self.cache not in CACHE_MODES:
            raise ValueError(f"cache must be one of {CACHE_MODES}, got {self.cache!r}")

    @classmethod
    def preset(cls, name: str, **overrides) -> SamplerConfig:
        """A named speed/quality trade-off: "fastest", "balanced" (the default) or "quality"."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})

    def replace(self, **changes) -> SamplerConfig:
        """A validated copy with some fields changed."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = set(changes) - names
        if unknown:
            raise ValueError(f"unknown sampler option(s) {sorted(unknown)}")
        return dataclasses.replace(self, **changes)

    @property
    def stops_early(self) -> bool:
        return self.strategy == "fast" if self.early_stop is None else self.early_stop


# A mild repetition penalty in every preset: without it the bundled model sometimes says the same
# sentence again and again ("I don't know. I don't know."), in 6 of 52 test prompts; with 1.2, none.
PRESETS = {
    "fastest": {"threshold": 0.7, "max_steps_per_block": 4, "repetition_penalty": 1.2},
    "balanced": {"threshold": 0.9, "max_steps_per_block": 16, "repetition_penalty": 1.2},
    "quality": {"threshold": 0.97, "max_steps_per_block": 32, "repetition_penalty": 1.2},
}


@dataclass
class Committed:
    text: str  # text that became committed and left-contiguous since the last yield
    token_ids: list[int]  # the ids behind `text` (never end-of-turn or later)
    nfe: int  # forward passes so far in this reply
    done: bool = False  # the reply is finished (end-of-turn, canvas full, or stopped)


@dataclass
class PromptCache:
    """Keys/values of a conversation's earlier tokens, kept across turns by the engine.

    `ids` are the token ids whose keys/values `kv` holds, in order from position 0.
    """

    kv: KVCache
    ids: list[int] = field(default_factory=list)


# forward(tokens [1, S], positions [1, S], cache, keep_q, want) -> logits [1, want_len, V]
# keep_q: query indices whose keys/values are appended to `cache`; want: (start, stop) query range.
ForwardFn = Callable[
    [torch.Tensor, torch.Tensor, "KVCache | None", "torch.Tensor | None", tuple], torch.Tensor
]


def model_forward(model) -> ForwardFn:
    """The plain single-request forward used when no engine batches requests."""

    def forward(tokens, positions, cache, keep_q, want):
        if cache is None:
            hidden = model(tokens, positions, hidden_only=True)
        else:
            old = cache.length
            cache.write = keep_q is not None and len(keep_q) > 0
            try:
                hidden = model(tokens, positions, cache=cache, hidden_only=True)
            finally:
                cache.write = False
            if keep_q is not None and len(keep_q) and len(keep_q) < tokens.shape[1]:
                cache.keep(torch.cat([torch.arange(old), old + keep_q.cpu()]))
        return model.lm_head(hidden[:, want[0] : want[1]]).float()

    return forward


def select_tokens(
    logits: torch.Tensor,
    n_min: int,
    threshold: float | None,
    temperature: float,
    generator: torch.Generator | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The one selection kernel. logits: [M, V] for M masked positions.

    Returns (tokens [M], commit [M] bool): the proposed token per position, and which to commit:
    the `n_min` most confident plus every one whose confidence reaches `threshold`.
    """
    assert logits.ndim == 2 and logits.shape[0] > 0, logits.shape
    if temperature > 0:
        probs = torch.softmax(logits / temperature, dim=-1)
        tokens = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
        conf = probs.gather(-1, tokens[:, None]).squeeze(-1)
    else:
        conf, tokens = torch.softmax(logits, dim=-1).max(dim=-1)
    if threshold is None:
        commit = torch.zeros_like(conf, dtype=torch.bool)
    else:
        commit = conf >= threshold
    commit[conf.topk(min(max(n_min, 1), conf.shape[0])).indices] = True
    return tokens, commit


def generate(
    model,
    tokenizer,
    prompt_ids: list[int],
    cfg: SamplerConfig | None = None,
    *,
    forward: ForwardFn | None = None,
    prompt_cache: PromptCache | None = None,
) -> Iterator[Committed]:
    """Decode a reply to `prompt_ids`, yielding committed text after every step.

    `forward` lets an engine batch this request with others (default: call `model` directly).
    `prompt_cache` (cached strategies only) holds keys/values of earlier tokens of the same
    conversation; the usable exact part is reused and the cache is extended in place.
    """
    cfg = cfg or SamplerConfig()
    if not prompt_ids:
        raise ValueError("prompt_ids is empty: a diffusion reply needs at least one prompt token")
    mcfg = model.cfg
    if len(prompt_ids) + cfg.max_new_tokens > mcfg.max_seq_len:
        raise ValueError(
            f"prompt ({len(prompt_ids)}) + max_new_tokens ({cfg.max_new_tokens}) exceeds the "
            f"model's context ({mcfg.max_seq_len})"
        )
    block = cfg.block_size or (mcfg.block_size if mcfg.attention == "block_causal" else DEFAULT_BLOCK_SIZE)
    if mcfg.attention == "block_causal" and block % mcfg.block_size:
        raise ValueError(f"block_size {block} must be a multiple of the model's block size {mcfg.block_size}")
    cache_mode = _cache_mode(cfg, mcfg.attention)
    return _generate(
        model,
        tokenizer,
        list(prompt_ids),
        cfg,
        block,
        cache_mode,
        forward or model_forward(model),
        prompt_cache,
    )


def _cache_mode(cfg: SamplerConfig, attention: str) -> str:
    if cfg.strategy == "reference" or cfg.cache == "none":
        return "none"
    if attention != "bidirectional":
        if cfg.cache == "dual":
            raise ValueError(
                "cache='dual' is for bidirectional models; block-causal/causal models use "
                "the exact prefix cache"
            )
        return "prefix"
    return "dual" if cfg.cache == "auto" else cfg.cache


@torch.inference_mode()
def _generate(
    model,
    tokenizer,
    ids: list[int],
    cfg: SamplerConfig,
    block: int,
    cache_mode: str,
    forward: ForwardFn,
    prompt_cache: PromptCache | None,
) -> Iterator[Committed]:
    mcfg = model.cfg
    device = model.lm_head.weight.device
    special = tokenizer.special
    mask_id, stop_ids = special.mask, special.stop_ids
    shift = 1 if mcfg.logits_shift else 0
    P = len(ids)
    gen_end = P + cfg.max_new_tokens
    reference = cfg.strategy == "reference"
    # Bidirectional models see the masks after the block; causal ones cannot, so skip them.
    with_suffix = mcfg.attention == "bidirectional"
    generator = None
    if cfg.temperature > 0 and cfg.seed is not None:
        generator = torch.Generator(device=device).manual_seed(cfg.seed)

    def block_end(start: int) -> int:
        if mcfg.attention == "block_causal":  # keep sampler blocks on the model's block grid
            return min((start // block + 1) * block, gen_end)
        return min(start + block, gen_end)

    def exact_limit(n: int) -> int:
        """How much of a committed prefix of length n may be cached exactly (or at all)."""
        if mcfg.attention == "block_causal":
            return n // mcfg.block_size * mcfg.block_size
        return n

    # The KV cache: reuse what the conversation already has where that is exact.
    cache = None
    if cache_mode != "none":
        if prompt_cache is None:
            prompt_cache = PromptCache(KVCache(mcfg.n_layers))
        reuse = 0
        if mcfg.attention != "bidirectional":
            lcp = _common_prefix(prompt_cache.ids, ids)
            reuse = exact_limit(min(lcp, P - shift))
        prompt_cache.kv.truncate(reuse)
        prompt_cache.ids = ids[:reuse]
        cache = prompt_cache.kv
    cached = cache.length if cache is not None else 0  # committed positions the cache holds

    if reference:
        total_steps = cfg.steps or cfg.max_new_tokens
        canvas_start = P
        canvas = torch.full((gen_end - P,), mask_id, dtype=torch.long, device=device)
    decoder = tokenizer.decoder()
    nfe = 0
    frontier = P  # absolute position of the first uncommitted (or unyielded) token
    finished = False  # end-of-turn reached the frontier
    stop_at = None  # absolute position of the first committed stop token, once known
    b_start = P
    try:
        while b_start < gen_end:
            b_end = block_end(b_start)
            if not reference:
                canvas_start = b_start
                canvas = torch.full((b_end - b_start,), mask_id, dtype=torch.long, device=device)
                suffix_len = gen_end - b_end if with_suffix else 0
                if cache_mode == "dual":
                    cache.truncate(cached)  # drop the previous block's cached suffix
                # The cap is for a full block; a shorter one (the first, or the last) gets its share.
                steps_cap = max(1, math.ceil(cfg.max_steps_per_block * (b_end - b_start) / block))
            else:
                # LLaDA splits the steps evenly over equal blocks; a block's share follows its length.
                suffix_len = 0
                steps_cap = max(1, math.ceil(total_steps * (b_end - b_start) / cfg.max_new_tokens))
            b0, b1 = b_start - canvas_start, b_end - canvas_start  # block inside the canvas
            step = 0
            while True:
                # Query: committed tokens the cache lacks, the canvas, and (maybe) suffix masks.
                tail = ids[cached:canvas_start]
                n_tail = len(tail)
                first_step = step == 0
                n_suffix = suffix_len if (cache_mode != "dual" or first_step) else 0
                parts = [torch.tensor(tail, dtype=torch.long, device=device), canvas]
                if n_suffix:
                    parts.append(torch.full((n_suffix,), mask_id, dtype=torch.long, device=device))
                tokens = torch.cat(parts)[None]  # [1, S]
                q_pos = list(range(cached, canvas_start + canvas.shape[0]))
                if n_suffix:
                    q_pos += range(gen_end - n_suffix, gen_end)
                positions = torch.tensor(q_pos, device=device)[None]  # [1, S]
                keep_q = None
                if cache is not None and first_step:
                    n_write = max(0, exact_limit(min(b_start - shift, canvas_start)) - cached)
                    keep = list(range(n_write))
                    if cache_mode == "dual" and n_suffix:
                        keep += range(tokens.shape[1] - n_suffix, tokens.shape[1])
                    keep_q = torch.tensor(keep, dtype=torch.long)
                want = (n_tail + b0 - shift, n_tail + b1 - shift)
                logits = forward(tokens, positions, cache, keep_q, want)[0]  # [L_block, V]
                nfe += 1
                if keep_q is not None and len(keep_q):
                    n_write = int((keep_q < n_tail).sum())
                    cached += n_write
                    prompt_cache.ids = ids[:cached]
                blk = canvas[b0:b1]
                masked = blk == mask_id
                if stop_at is not None and cfg.stops_early:
                    masked[max(0, stop_at - b_start) :] = False  # nothing after end-of-turn matters
                n_masked = int(masked.sum())
                if n_masked:
                    step += 1
                    steps_left = max(1, steps_cap - step + 1)
                    n_min = math.ceil(n_masked / steps_left)
                    block_logits = logits[masked]
                    block_logits[:, mask_id] = -math.inf
                    if cfg.repetition_penalty != 1.0:
                        penalize_repeats(
                            block_logits, ids[P:] + blk[blk != mask_id].tolist(), cfg.repetition_penalty
                        )
                    proposed, commit = select_tokens(
                        block_logits, n_min, None if reference else cfg.threshold, cfg.temperature, generator
                    )
                    idx = masked.nonzero().squeeze(-1)[commit]
                    blk[idx] = proposed[commit]
                    if stop_at is None or cfg.stops_early:
                        for pos in idx.tolist():
                            if int(blk[pos]) in stop_ids and (stop_at is None or b_start + pos < stop_at):
                                stop_at = b_start + pos
                # Advance the left-contiguous frontier and yield what it passed.
                new_ids = []
                while frontier < b_end and not finished:
                    tok = int(canvas[frontier - canvas_start])
                    if tok == mask_id:
                        break
                    if tok in stop_ids:
                        finished = True
                        break
                    new_ids.append(tok)
                    frontier += 1
                still_masked = bool((blk == mask_id).any())
                block_done = not still_masked or (cfg.stops_early and finished)
                all_done = (finished and cfg.stops_early) or (block_done and b_end >= gen_end)
                text = decoder.push(new_ids) if new_ids else ""
                yield Committed(text=text, token_ids=new_ids, nfe=nfe, done=all_done)
                if all_done:
                    return
                if block_done:
                    ids.extend(canvas[b0:b1].tolist())
                    break
            b_start = b_end
        yield Committed(text="", token_ids=[], nfe=nfe, done=True)
    finally:
        if cache is not None:
            cache.truncate(cached)  # leave only exact committed prefix columns behind


@torch.inference_mode()
def generate_autoregressive(
    model,
    tokenizer,
    prompt_ids: list[int],
    max_new_tokens: int = 128,
    repetition_penalty: float = SamplerConfig.repetition_penalty,
) -> Iterator[Committed]:
    """Greedy left-to-right decoding with a KV cache, for causal models with shifted logits (the AR
    twin): the baseline every diffusion figure is measured against, under the same repetition rule.
    Same contract as `generate`: one `Committed` per forward pass, end-of-turn never yielded."""
    device = model.lm_head.weight.device
    cache = KVCache(model.cfg.n_layers)
    cache.write = True
    decoder = tokenizer.decoder()
    x = torch.tensor([prompt_ids], device=device)
    reply: list[int] = []
    for nfe in range(1, max_new_tokens + 1):
        logits = model.lm_head(model(x, cache=cache, hidden_only=True)[:, -1]).float()  # [1, V]
        penalize_repeats(logits, reply, repetition_penalty)
        nxt = int(logits.argmax(-1))
        if nxt in tokenizer.special.stop_ids:
            yield Committed(text="", token_ids=[], nfe=nfe, done=True)
            return
        reply.append(nxt)
        yield Committed(text=decoder.push([nxt]), token_ids=[nxt], nfe=nfe, done=nfe == max_new_tokens)
        x = torch.tensor([[nxt]], device=device)


def penalize_repeats(logits: torch.Tensor, seen: list[int], penalty: float) -> None:
    """Make tokens the reply already holds less likely, in place: positive logits divided by
    `penalty`, negative ones multiplied (the rule of CTRL, as in transformers' generate)."""
    if not seen:
        return
    idx = torch.tensor(sorted(set(seen)), device=logits.device)
    sel = logits[:, idx]
    logits[:, idx] = torch.where(sel > 0, sel / penalty, sel * penalty)


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i
