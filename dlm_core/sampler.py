"""Masked-diffusion samplers as generators of committed, left-contiguous text.

A third strategy, "faithful", is not ours: it runs the loaded family's authors' own decoder, token for
token (`dlm_core.faithful`; `SamplerConfig.for_family` picks it and its settings), and `generate` is
where the three are told apart. The two below run the same loop and the same selection kernel
(`select_tokens`); they differ by config only:

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

This file holds the config, the selection kernel and the loop; one reply's positions, canvas, cache
bookkeeping and frontier are `dlm_core.decode_state`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from dlm_core.cache import KVCache, PromptCache
from dlm_core.decode_state import DecodeState, Layout, plan_blocks
from dlm_core.decoding import CACHE_MODES, STRATEGIES, Committed, block_size, check_fits
from dlm_core.faithful import generate_faithful
from dlm_core.faithful_kernel import Runner, direct
from dlm_core.presets import (  # noqa: F401 -- re-exported
    DECODINGS,
    FAMILY_DECODING,
    FAST_DLLM,
    FAST_DLLM_DREAM,
    PRESET_NAMES,
    PRESETS,
    check_preset,
)


@dataclass
class SamplerConfig:
    strategy: str = "fast"  # "fast" (threshold + cache + early stop), "reference" (LLaDA-style
    #                         baseline) or "faithful" (the family authors' own decoder, `decoding`)
    max_new_tokens: int = 128  # length of the reply canvas
    block_size: int | None = None  # None: the model's block for block_causal models, else 32
    threshold: float = 0.9  # fast (and the threshold rules of faithful decoders): commit every
    #                         masked token at least this confident
    max_steps_per_block: int = 16  # fast: step cap per full block (forces >= block/cap tokens per step)
    steps: int | None = None  # reference/faithful: total steps over the canvas (SDAR: per block);
    #                           None = max_new_tokens (SDAR: block_size)
    temperature: float = 0.0  # 0 = greedy; > 0 samples from softmax(logits / temperature)
    early_stop: bool | None = (
        None  # stop once end-of-turn is committed; None = on for fast, off for reference
    )
    cache: str = "auto"  # fast: "auto" (exact prefix cache, or dual for bidirectional),
    #                                     "none", "prefix", "dual" (bidirectional only: caches the tail masks)
    seed: int | None = None  # seeds sampling when temperature > 0
    repetition_penalty: float = 1.0  # > 1 damps tokens the reply already holds (CTRL/HF rule); 1 = off
    # faithful only (fast/reference ignore them; faithful ignores max_steps_per_block, early_stop and
    # repetition_penalty, which no original has):
    decoding: str | None = None  # which published decoder: one of DECODINGS
    alg: str = "entropy"  # dream: "maskgit_plus", "topk_margin" or "entropy" (fast_dllm_dream:
    #                        "confidence_threshold" or "entropy")
    top_k: int | None = None  # dream: confidences from the top_k logits only (None = all)
    sub_block_size: int | None = None  # fast_dllm_v2: sub-block length (None = 8)
    use_block_cache: bool = False  # fast_dllm_v2: its sub-block cache (generate(use_block_cache=True))

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
        if self.strategy == "faithful" and self.decoding not in DECODINGS:
            raise ValueError(
                f"strategy='faithful' needs decoding, one of {DECODINGS} (got {self.decoding!r}); "
                f"SamplerConfig.for_family(family) fills it in"
            )

    @classmethod
    def preset(cls, name: str, **overrides) -> SamplerConfig:
        """A named speed/quality trade-off: "fastest", "balanced" (the default) or "quality"."""
        return cls(**{**PRESETS[check_preset(name)], **overrides})

    @classmethod
    def for_family(cls, family: str, **overrides) -> SamplerConfig:
        """The decoding a loaded family gets by default: for LLaDA, Dream, SDAR, Fast-dLLM v2 and
        BD3LM the authors' own decoder with their documented settings ("faithful"); for our bundled
        model and families without one, the "balanced" preset. Overrides change single fields, e.g.
        `for_family("llada", **FAST_DLLM)` for Fast-dLLM's threshold decoding with its dual cache."""
        if family not in FAMILY_DECODING:
            return cls.preset("balanced", **overrides)
        return cls(strategy="faithful", **{**FAMILY_DECODING[family], **overrides})

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


# forward(tokens [1, S], positions [1, S], cache, keep_q, want) -> logits [1, want_len, V]
# keep_q: query indices whose keys/values are appended to `cache`; want: (start, stop) query range.
ForwardFn = Callable[
    [torch.Tensor, torch.Tensor, "KVCache | None", "torch.Tensor | None", tuple], torch.Tensor
]


def model_forward(model) -> ForwardFn:
    """The plain single-request forward used when no engine batches requests."""

    def forward(tokens, positions, cache, keep_q, want):
        if cache is None or keep_q is None or not len(keep_q):
            hidden = model(tokens, positions, cache=cache, hidden_only=True)
        else:
            with cache.writing(keep_q):
                hidden = model(tokens, positions, cache=cache, hidden_only=True)
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
    run: Runner = direct,
) -> Iterator[Committed]:
    """Decode a reply to `prompt_ids`, yielding committed text after every step: the one place a
    decoding is dispatched by strategy.

    "fast" and "reference" run this file's loop: `forward` lets an engine batch this request with
    others (default: call `model` directly), and `prompt_cache` (cached strategies only) holds
    keys/values of earlier tokens of the same conversation, whose usable exact part is reused and
    extended in place. "faithful" runs the family's own decoder (`dlm_core.faithful`), which reaches
    the model through `run` and keeps no cache.
    """
    cfg = cfg or SamplerConfig()
    if cfg.strategy == "faithful":
        return generate_faithful(model, tokenizer, prompt_ids, cfg, run)
    layout = _layout(model, tokenizer, prompt_ids, cfg)  # validates now, not on the first next()
    if layout.cache_mode == "none":
        prompt_cache = None
    elif prompt_cache is None:
        prompt_cache = PromptCache(KVCache(model.cfg.n_layers))
    return _generate(tokenizer, list(prompt_ids), cfg, layout, forward or model_forward(model), prompt_cache)


def _layout(model, tokenizer, prompt_ids: list[int], cfg: SamplerConfig) -> Layout:
    """Where this reply lives, after checking that it fits the model."""
    mcfg = model.cfg
    check_fits(len(prompt_ids), cfg.max_new_tokens, mcfg.max_seq_len)
    block_causal = mcfg.attention == "block_causal"
    block = block_size(cfg.block_size, mcfg)
    if block_causal and block % mcfg.block_size:
        raise ValueError(f"block_size {block} must be a multiple of the model's block size {mcfg.block_size}")
    return Layout(
        prompt_len=len(prompt_ids),
        gen_end=len(prompt_ids) + cfg.max_new_tokens,
        block=block,
        model_block=mcfg.block_size if block_causal else None,
        shift=1 if mcfg.logits_shift else 0,
        bidirectional=mcfg.attention == "bidirectional",
        cache_mode=_cache_mode(cfg, mcfg.attention),
        mask_id=tokenizer.special.mask,
        stop_ids=frozenset(tokenizer.special.stop_ids),
        device=model.lm_head.weight.device,
        spared=tokenizer.letterless_ids if cfg.repetition_penalty != 1.0 else frozenset(),
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
    tokenizer,
    ids: list[int],
    cfg: SamplerConfig,
    layout: Layout,
    forward: ForwardFn,
    prompt_cache: PromptCache | None,
) -> Iterator[Committed]:
    """The decoding loop: per block, forward / commit / advance the frontier / yield, until done."""
    reference = cfg.strategy == "reference"
    generator = None
    if cfg.temperature > 0 and cfg.seed is not None:
        generator = torch.Generator(device=layout.device).manual_seed(cfg.seed)
    if reference:
        blocks = plan_blocks(layout, total_steps=cfg.steps or cfg.max_new_tokens)
    else:
        blocks = plan_blocks(layout, steps_per_block=cfg.max_steps_per_block)
    state = DecodeState.start(layout, ids, whole_canvas=reference, prompt_cache=prompt_cache)
    decoder = tokenizer.decoder()
    try:
        for block in blocks:
            state.open_block(block, whole_canvas=reference)
            while True:
                query = state.query()
                logits = forward(query.tokens, query.positions, state.cache, query.keep_q, query.want)
                state.after_forward(query)
                _commit_step(state, logits[0], cfg, generator)
                new_ids = state.advance_frontier()
                stopped = cfg.stops_early and state.finished
                block_done = stopped or not (state.block_tokens() == layout.mask_id).any()
                all_done = stopped or (block_done and block.end >= layout.gen_end)
                text = decoder.push(new_ids) if new_ids else ""
                yield Committed(text=text, token_ids=new_ids, nfe=state.nfe, done=all_done)
                if all_done:
                    return
                if block_done:
                    state.close_block()
                    break
        yield Committed(text="", token_ids=[], nfe=state.nfe, done=True)
    finally:
        state.release()


def _commit_step(state: DecodeState, logits: torch.Tensor, cfg: SamplerConfig, generator) -> None:
    """Apply the selection kernel to the block's masked positions and commit its choice in place.
    logits: [L_block, V], one row per block position."""
    lay = state.layout
    blk = state.block_tokens()
    masked = blk == lay.mask_id
    if state.stop_at is not None and cfg.stops_early:
        masked[max(0, state.stop_at - state.block.start) :] = False  # nothing after end-of-turn matters
    n_masked = int(masked.sum())
    if not n_masked:
        return
    state.step += 1
    steps_left = max(1, state.block.steps_cap - state.step + 1)
    n_min = math.ceil(n_masked / steps_left)
    block_logits = logits[masked]
    block_logits[:, lay.mask_id] = -math.inf
    if cfg.repetition_penalty != 1.0:
        reply = state.ids[lay.prompt_len :] + blk[blk != lay.mask_id].tolist()
        penalize_repeats(block_logits, reply, cfg.repetition_penalty, lay.spared)
    threshold = None if cfg.strategy == "reference" else cfg.threshold
    proposed, commit = select_tokens(block_logits, n_min, threshold, cfg.temperature, generator)
    idx = masked.nonzero().squeeze(-1)[commit]
    blk[idx] = proposed[commit]
    if cfg.stops_early:  # where end-of-turn sits matters only when the reply stops there
        state.note_stops(idx.tolist())


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
    decoder = tokenizer.decoder()
    spared = tokenizer.letterless_ids if repetition_penalty != 1.0 else frozenset()
    x = torch.tensor([prompt_ids], device=device)
    reply: list[int] = []
    for nfe in range(1, max_new_tokens + 1):
        with cache.writing():
            hidden = model(x, cache=cache, hidden_only=True)
        logits = model.lm_head(hidden[:, -1]).float()  # [1, V]
        penalize_repeats(logits, reply, repetition_penalty, spared)
        nxt = int(logits.argmax(-1))
        if nxt in tokenizer.special.stop_ids:
            yield Committed(text="", token_ids=[], nfe=nfe, done=True)
            return
        reply.append(nxt)
        yield Committed(text=decoder.push([nxt]), token_ids=[nxt], nfe=nfe, done=nfe == max_new_tokens)
        x = torch.tensor([[nxt]], device=device)


def penalize_repeats(
    logits: torch.Tensor, seen: list[int], penalty: float, spared: frozenset[int] = frozenset()
) -> None:
    """Make tokens the reply already holds less likely, in place: positive logits divided by
    `penalty`, negative ones multiplied (the rule of CTRL, as in transformers' generate). `spared`
    tokens are left alone."""
    seen = set(seen) - spared
    if not seen:
        return
    idx = torch.tensor(sorted(seen), device=logits.device)
    sel = logits[:, idx]
    logits[:, idx] = torch.where(sel > 0, sel / penalty, sel * penalty)
