"""Train the bundled voice-assistant LM: masked (block) diffusion, or its autoregressive twin.

    python -m dlm_core.train --out runs/default --objective diffusion --steps 3000
    python -m dlm_core.train --out runs/twin --objective ar --steps 3000 --tokenizer-dir runs/default/tokenizer
    python -m dlm_core.train ... --device cuda --bf16 true --export dlm_core/weights/default   # on a GPU

The shipped models were trained on a GPU by `training/gpu_run.py`; their model cards give the exact
commands. One command reproduces a model from its seed: data (training/), tokenizer, batches, noise
and initialisation all derive from `TrainConfig.seed` and are drawn on the CPU, whatever the device.
Runs checkpoint to `out/ckpt.pt` and resume from it; the best held-out weights go to `out/best.pt`.

Layout of one training row (L = P + R positions, P the batch's prompt width):

    [pad .. pad | prompt tokens | reply tokens, <|eot_id|>, <|pad|> ..]
                                ^ position P: the reply canvas of R positions starts here

Diffusion objective (the ELBO of masked diffusion, per block for "block_causal"): each row draws
t ~ U(0, 1), masks each reply-canvas token with probability t and is scored on the masked ones with
weight 1/t. For "block_causal" a second, clean copy of the sequence is prepended (as in BD3-LM) so a
noisy block attends to clean earlier blocks, exactly what the sampler's KV cache shows it at inference.
Trailing pads after <|eot_id|> get `pad_weight` (< 1) so they cannot dominate the loss, a guard against
collapsing onto one- or two-token replies.

AR objective: causal attention, logits shifted by one, next-token loss on reply tokens and <|eot_id|>.
Both objectives report nats per reply token (reply + <|eot_id|>), so held-out figures compare directly.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import random
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch
import torch.nn.functional as F

from dlm_core.model import ModelConfig, Transformer, visible
from dlm_core.tokenizer import DlmTokenizer

OBJECTIVES = ("diffusion", "ar")
SOURCE_REPEATS = {"chitchat": 1, "chatterbot": 6, "templates": 16}  # oversample assistant-style data
EVAL_T_SAMPLES = 4  # stratified noise levels per held-out row for the ELBO estimate
MIN_T = 1e-3  # keeps the 1/t weight finite
RESUME_MAY_CHANGE = ("steps", "device", "threads", "log_every", "ckpt_every")  # a resumed run may differ here


@dataclass
class TrainConfig:
    out: str = "runs/default"  # run folder: tokenizer/, data cache, ckpt.pt, log
    objective: str = "diffusion"  # "diffusion" (masked diffusion ELBO) or "ar" (next-token)
    seed: int = 0  # everything derives from it
    vocab_size: int = 3072  # byte-level BPE size including special tokens
    tokenizer_dir: str | None = None  # reuse this tokenizer instead of training one (the twin shares it)
    dim: int = 128  # small and long beats big and short on a shared CPU
    n_layers: int = 4
    n_heads: int = 2
    mlp_dim: int = 384
    attention: str | None = None  # None: "block_causal" for diffusion, "causal" for ar
    block_size: int = 8  # diffusion block length (small blocks: first words sooner)
    max_prompt: int = 48  # prompt tokens kept (oldest turns dropped to fit)
    reply_len: int = 32  # reply canvas: reply + <|eot_id|> + pads
    batch_size: int = 32
    steps: int = 2000
    lr: float = 2e-3
    min_lr_ratio: float = 0.1  # cosine decay floor
    warmup: int = 100
    weight_decay: float = 0.05
    pad_weight: float = 0.1  # loss weight of trailing pads after <|eot_id|>
    threads: int = 1  # torch threads (the machine is shared)
    device: str = "cpu"  # "cpu" or "cuda"; batches and noise are drawn on the CPU either way
    bf16: bool = False  # bf16 autocast (pays off on GPUs and CPUs with AVX512-BF16/AMX)
    eval_rows: int = 256  # held-out rows scored at each evaluation (the best one is kept)
    eval_every: int = 250
    ckpt_every: int = 100
    log_every: int = 20

    def __post_init__(self):
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {self.objective!r}")
        if self.attention is None:
            self.attention = "block_causal" if self.objective == "diffusion" else "causal"
        if self.objective == "ar" and self.attention != "causal":
            raise ValueError("the AR objective needs attention='causal'")
        if self.reply_len < 2 or self.max_prompt < 4:
            raise ValueError("reply_len must be >= 2 and max_prompt >= 4")
        if not 0.0 <= self.pad_weight <= 1.0:
            raise ValueError(f"pad_weight must be in [0, 1], got {self.pad_weight}")
        if self.device not in ("cpu", "cuda"):
            raise ValueError(f"device must be 'cpu' or 'cuda', got {self.device!r}")

    def model_config(self, vocab_size: int) -> ModelConfig:
        return ModelConfig(
            vocab_size=vocab_size,
            dim=self.dim,
            n_layers=self.n_layers,
            n_heads=self.n_heads,
            mlp_dim=self.mlp_dim,
            max_seq_len=512,
            attention=self.attention,
            block_size=self.block_size,
            tie_embeddings=True,
            logits_shift=self.objective == "ar",
        )


# ---------------------------------------------------------------- data


@dataclass
class TokenizedSplit:
    prompts: list[list[int]]
    replies: list[list[int]]  # reply ids followed by <|eot_id|>
    weights: list[int] = field(default_factory=list)  # sampling repeats per row
    texts: list[tuple[list[dict], str]] = field(default_factory=list)  # (messages, reply) for samples


def build_tokenizer(cfg: TrainConfig, train_examples) -> Path:
    from training.bpe import save_tokenizer, train_bpe

    if cfg.tokenizer_dir:
        return Path(cfg.tokenizer_dir)
    out = Path(cfg.out) / "tokenizer"
    if not (out / "tokenizer.json").is_file():
        texts = (c for ex in train_examples for c in [ex.reply] + [m[1] for m in ex.messages])
        save_tokenizer(train_bpe(texts, cfg.vocab_size), out)
    return out


def tokenize(examples, tok: DlmTokenizer, cfg: TrainConfig) -> TokenizedSplit:
    split = TokenizedSplit([], [], [], [])
    eot = tok.special.end_of_turn
    for ex in examples:
        reply = tok.encode(ex.reply) + [eot]
        if len(reply) > cfg.reply_len:
            continue
        messages = ex.chat()
        prompt = tok.chat_prompt(messages)
        while len(prompt) > cfg.max_prompt and len(messages) > 1:
            messages = messages[1:]  # drop the oldest turn
            prompt = tok.chat_prompt(messages)
        if len(prompt) > cfg.max_prompt:
            continue
        split.prompts.append(prompt)
        split.replies.append(reply)
        split.weights.append(SOURCE_REPEATS[ex.source])
        split.texts.append((messages, ex.reply))
    return split


def prepare_data(cfg: TrainConfig) -> tuple[DlmTokenizer, Path, TokenizedSplit, TokenizedSplit]:
    """Tokenizer and tokenized splits, cached in the run folder."""
    from training.data import load_examples

    out = Path(cfg.out)
    cache = out / "data.pt"
    train_ex = test_ex = None
    if cfg.tokenizer_dir is None and not (out / "tokenizer" / "tokenizer.json").is_file():
        train_ex, test_ex = load_examples(cfg.seed)
    tok_dir = build_tokenizer(cfg, train_ex)
    tok = DlmTokenizer.from_dir(tok_dir)
    key = {
        "seed": cfg.seed,
        "max_prompt": cfg.max_prompt,
        "reply_len": cfg.reply_len,
        "format": 2,
        "tokenizer": (Path(tok_dir) / "tokenizer.json").read_text()[-2000:],
    }
    if cache.is_file():
        saved = torch.load(cache, weights_only=False)  # plain dicts, lists and int tensors only
        if saved["key"] == key:
            return tok, tok_dir, _unpack(saved["train"]), _unpack(saved["test"])
    if train_ex is None:
        train_ex, test_ex = load_examples(cfg.seed)
    train, test = tokenize(train_ex, tok, cfg), tokenize(test_ex, tok, cfg)
    train.texts = []  # only held-out texts are read (sample prompts); keeps the cache small
    torch.save(
        {"key": key, "train": _pack(train, tok.vocab_size), "test": _pack(test, tok.vocab_size)}, cache
    )
    return tok, tok_dir, train, test


def _pack(split: TokenizedSplit, vocab_size: int) -> dict:
    """Token rows as one flat int16 tensor plus lengths: a third of the size of pickled lists, so the
    data can travel to a GPU machine beside the repository."""
    assert vocab_size <= 2**15

    def flat(rows):
        return torch.tensor([t for r in rows for t in r], dtype=torch.int16), torch.tensor(
            [len(r) for r in rows]
        )

    return asdict(split) | {"prompts": flat(split.prompts), "replies": flat(split.replies)}


def _unpack(saved: dict) -> TokenizedSplit:
    def rows(pair):
        values, lengths = pair[0].tolist(), pair[1].tolist()
        ends = list(itertools.accumulate(lengths))
        return [values[e - n : e] for e, n in zip(ends, lengths)]

    return TokenizedSplit(**saved | {"prompts": rows(saved["prompts"]), "replies": rows(saved["replies"])})


@dataclass
class Batch:
    tokens: torch.Tensor  # [B, L] clean sequence
    valid: torch.Tensor  # [B, L] False on left padding
    reply_start: int  # P: first position of the reply canvas
    is_reply: torch.Tensor  # [B, L] reply tokens including <|eot_id|>
    is_pad: torch.Tensor  # [B, L] canvas pads after <|eot_id|>

    def to(self, device: str) -> Batch:
        if device == "cpu":
            return self
        move = lambda x: x.pin_memory().to(device, non_blocking=True)
        return Batch(
            move(self.tokens), move(self.valid), self.reply_start, move(self.is_reply), move(self.is_pad)
        )


def make_batch(prompts, replies, cfg: TrainConfig, tok: DlmTokenizer, align: int = 0) -> Batch:
    """Left-pad prompts to a common width so every reply canvas starts at the same position.

    `align` shifts the canvas start (mod block_size) so the model sees replies starting both at and
    inside a block, whichever way a sampler lays out positions.
    """
    pad = tok.special.pad
    B, R = len(prompts), cfg.reply_len
    P = max(len(p) for p in prompts) + align
    tokens = torch.full((B, P + R), pad, dtype=torch.long)
    valid = torch.zeros(B, P + R, dtype=torch.bool)
    is_reply = torch.zeros(B, P + R, dtype=torch.bool)
    for i, (p, r) in enumerate(zip(prompts, replies)):
        tokens[i, P - len(p) : P] = torch.tensor(p)
        tokens[i, P : P + len(r)] = torch.tensor(r)
        valid[i, P - len(p) :] = True
        is_reply[i, P : P + len(r)] = True
    is_pad = valid.clone()
    is_pad[:, :P] = False
    is_pad &= ~is_reply
    return Batch(tokens, valid, P, is_reply, is_pad)


class Sampler:
    """Endless shuffled batches with per-source repeats, reproducible from a seed."""

    def __init__(self, split: TokenizedSplit, cfg: TrainConfig, seed: int):
        self.split, self.cfg = split, cfg
        self.index = [i for i, w in enumerate(split.weights) for _ in range(w)]
        self.rng = random.Random(seed)
        self.order, self.pos = [], 0

    def next(self, tok: DlmTokenizer) -> Batch:
        rows = []
        while len(rows) < self.cfg.batch_size:
            if self.pos >= len(self.order):
                self.order = self.index[:]
                self.rng.shuffle(self.order)
                self.pos = 0
            rows.append(self.order[self.pos])
            self.pos += 1
        align = self.rng.randrange(self.cfg.block_size) if self.cfg.objective == "diffusion" else 0
        return make_batch(
            [self.split.prompts[i] for i in rows], [self.split.replies[i] for i in rows], self.cfg, tok, align
        )

    def state(self) -> dict:
        return {"rng": self.rng.getstate(), "order": self.order, "pos": self.pos}

    def load(self, state: dict) -> None:
        self.rng.setstate(state["rng"])
        self.order, self.pos = state["order"], state["pos"]


# ---------------------------------------------------------------- objectives


def _forward_layers(model: Transformer, tokens, positions, mask) -> torch.Tensor:
    """The model's own layers with an explicit attention mask [B, 1, S, T]; returns hidden [B, S, dim]."""
    cos = model.rope_cos[positions][:, None]
    sin = model.rope_sin[positions][:, None]
    x = model.embed(tokens)
    for layer in model.layers:
        x = layer(x, cos, sin, mask, None)
    return model.norm(x)


def two_stream_mask(valid: torch.Tensor, s0: int, block: int) -> torch.Tensor:
    """Attention mask for [clean sequence | noisy copy of positions s0..L-1] (BD3-LM style).

    Clean queries see clean keys block-causally. Noisy queries see clean keys of earlier blocks and
    noisy keys of their own block: what a block being denoised sees behind an exact KV cache.
    valid: [B, L] -> [B, 1, L + L - s0, L + L - s0] bool.
    """
    L = valid.shape[1]
    pos = torch.arange(L, device=valid.device)
    blk_c = pos // block  # [L]
    blk_n = pos[s0:] // block  # [L - s0]
    cc = blk_c[None, :] <= blk_c[:, None]  # [L, L]  query x key
    nc = blk_c[None, :] < blk_n[:, None]  # [Ln, L]
    nn_ = blk_n[None, :] == blk_n[:, None]  # [Ln, Ln]
    top = torch.cat([cc, torch.zeros(L, L - s0, dtype=torch.bool, device=valid.device)], 1)
    bottom = torch.cat([nc, nn_], 1)
    mask = torch.cat([top, bottom], 0)[None] & torch.cat([valid, valid[:, s0:]], 1)[:, None, :]
    mask = mask | ~mask.any(-1, keepdim=True)  # padded query rows: avoid an all-masked softmax
    return mask[:, None]


def diffusion_loss(
    model: Transformer,
    batch: Batch,
    tok: DlmTokenizer,
    t: torch.Tensor,
    pad_weight: float,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted masked-diffusion loss. t: [B] noise levels (on the CPU, like `generator`).
    Returns (sum of weighted nats, reply tokens). Every canvas position is scored and unmasked ones
    get weight 0, so no shape depends on the draw and a GPU never waits for the host."""
    cfg = model.cfg
    tokens, valid, P = batch.tokens, batch.valid, batch.reply_start
    B, L = tokens.shape
    dev = tokens.device
    draw = torch.rand(B, L, generator=generator).to(dev, non_blocking=True)
    t = t.to(dev, non_blocking=True)
    masked = (draw < t[:, None]) & (batch.is_reply | batch.is_pad)  # [B, L]
    noisy = torch.where(masked, torch.full_like(tokens, tok.special.mask), tokens)
    if cfg.attention == "block_causal":
        s0 = (P // cfg.block_size) * cfg.block_size
        seq = torch.cat([tokens, noisy[:, s0:]], 1)
        positions = torch.cat([torch.arange(L, device=dev), torch.arange(s0, L, device=dev)]).expand(B, -1)
        hidden = _forward_layers(model, seq, positions, two_stream_mask(valid, s0, cfg.block_size))[:, L:]
        masked, target, is_pad = masked[:, s0:], tokens[:, s0:], batch.is_pad[:, s0:]
    else:
        mask = (valid[:, None, :] & valid[:, :, None]) | ~valid[:, :, None]
        hidden = _forward_layers(model, noisy, torch.arange(L, device=dev).expand(B, -1), mask[:, None])
        target, is_pad = tokens, batch.is_pad
    logits = model.lm_head(hidden).float()  # [B, Ln, V]
    nll = F.cross_entropy(logits.flatten(0, 1), target.flatten(), reduction="none").view_as(target)
    w = masked * (1.0 / t)[:, None] * torch.where(is_pad, pad_weight, 1.0)
    return (nll * w).sum(), batch.is_reply.sum()


def ar_loss(model: Transformer, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """Next-token NLL on reply tokens (+ <|eot_id|>). Returns (sum of nats, reply tokens)."""
    tokens, valid = batch.tokens, batch.valid
    B, L = tokens.shape
    positions = torch.arange(L, device=tokens.device).expand(B, L)
    mask = visible(positions, positions, "causal", 1) & valid[:, None, :]
    mask = mask | ~mask.any(-1, keepdim=True)
    logits = model.lm_head(_forward_layers(model, tokens, positions, mask[:, None])).float()  # i predicts i+1
    nll = F.cross_entropy(logits[:, :-1].flatten(0, 1), tokens[:, 1:].flatten(), reduction="none")
    return (nll * batch.is_reply[:, 1:].flatten()).sum(), batch.is_reply.sum()


def batch_loss(model, batch, tok, cfg: TrainConfig, generator=None, t=None, pad_weight=None):
    if cfg.objective == "ar":
        return ar_loss(model, batch)
    if t is None:
        t = torch.rand(batch.tokens.shape[0], generator=generator).clamp_min(MIN_T)
    return diffusion_loss(
        model, batch, tok, t, cfg.pad_weight if pad_weight is None else pad_weight, generator
    )


@torch.no_grad()
def held_out_loss(model, split: TokenizedSplit, tok, cfg: TrainConfig, rows: int | None = None) -> float:
    """Nats per reply token on held-out rows: exact NLL (ar) or the diffusion ELBO bound (pads unweighted)."""
    model.eval()
    gen = torch.Generator().manual_seed(1234)
    n = min(rows or cfg.eval_rows, len(split.prompts))
    device = next(model.parameters()).device.type
    spread = [i * len(split.prompts) // n for i in range(n)]  # evenly across sources, not the first n
    total, count = 0.0, 0
    for start in range(0, n, cfg.batch_size):
        idx = spread[start : start + cfg.batch_size]
        batch = make_batch([split.prompts[i] for i in idx], [split.replies[i] for i in idx], cfg, tok).to(
            device
        )
        reps = 1 if cfg.objective == "ar" else EVAL_T_SAMPLES
        for k in range(reps):
            t = ((k + torch.rand(len(idx), generator=gen)) / reps).clamp_min(MIN_T)  # stratified
            with torch.autocast(device, dtype=torch.bfloat16, enabled=cfg.bf16):
                loss, toks = batch_loss(model, batch, tok, cfg, gen, t=t, pad_weight=1.0)
            total += float(loss) / reps
        count += int(toks)
    model.train()
    return total / max(count, 1)


# ---------------------------------------------------------------- loop


def lr_at(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    frac = min(1.0, (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup))
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * frac)))


def build_model(cfg: TrainConfig, vocab_size: int) -> Transformer:
    torch.manual_seed(cfg.seed)
    model = Transformer(cfg.model_config(vocab_size))
    for name, p in model.named_parameters():
        if p.ndim == 2:
            std = (
                0.02 / math.sqrt(2 * cfg.n_layers)
                if name.endswith(("o_proj.weight", "down_proj.weight"))
                else 0.02
            )
            torch.nn.init.normal_(p, std=std)
    return model


def train(
    cfg: TrainConfig, log=print, data=None, stop_at: int | None = None, time_limit_s: float | None = None
) -> Transformer:
    """Train (or resume) the run in cfg.out. `data`: (tokenizer, train split, test split) instead of
    prepare_data(cfg), for tests. `stop_at`: leave after this step (checkpointed), as an interruption
    would; `time_limit_s`: leave (checkpointed) once this much wall time has passed.

    Every evaluation that beats the best held-out loss so far writes the weights to `out/best.pt`,
    which `export` ships: a small model on few data can overfit late in a long run."""
    torch.set_num_threads(cfg.threads)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    tok, train_split, test_split = data if data is not None else _drop_dir(prepare_data(cfg))
    model = build_model(cfg, tok.vocab_size).to(cfg.device)
    decay = [p for p in model.parameters() if p.ndim == 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr,
        betas=(0.9, 0.98),
    )
    sampler = Sampler(train_split, cfg, cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    step, tokens_seen, elapsed, history = 0, 0, 0.0, []
    ckpt = out / "ckpt.pt"
    if ckpt.is_file():
        state = torch.load(ckpt, weights_only=False, map_location=cfg.device)
        same = {k: state["config"][k] for k in RESUME_MAY_CHANGE}
        if state["config"] != asdict(cfg) | same:
            raise ValueError(f"{ckpt} was made with another config; use a new --out")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])  # loads onto the parameters' device
        sampler.load(state["sampler"])
        gen.set_state(state["gen"])
        step, tokens_seen, elapsed, history = (
            state["step"],
            state["tokens"],
            state["elapsed"],
            state["history"],
        )
        log(f"resumed from {ckpt} at step {step}")
    (out / "train_config.json").write_text(json.dumps(asdict(cfg), indent=2) + "\n")
    log(
        f"{cfg.objective} model: {model.num_params() / 1e6:.2f}M params, {len(train_split.prompts)} train rows, "
        f"{len(test_split.prompts)} held-out rows, vocab {tok.vocab_size}"
    )

    def save():
        state = {
            "model": model.state_dict(),
            "opt": opt.state_dict(),
            "sampler": sampler.state(),
            "gen": gen.get_state(),
            "step": step,
            "tokens": tokens_seen,
            "elapsed": elapsed,
            "history": history,
            "config": asdict(cfg),
        }
        torch.save(state, out / "ckpt.tmp")
        os.replace(out / "ckpt.tmp", ckpt)

    model.train()
    started = time.perf_counter()
    window_t, window_tok, window_n = time.perf_counter(), 0, 0
    window_loss = torch.zeros((), device=cfg.device)  # summed on the device: no host sync per step
    while step < min(cfg.steps, stop_at or cfg.steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg)
        cpu_batch = sampler.next(tok)
        batch = cpu_batch.to(cfg.device)
        with torch.autocast(cfg.device, dtype=torch.bfloat16, enabled=cfg.bf16):
            loss_sum, n_tok = batch_loss(model, batch, tok, cfg, gen)
        loss = loss_sum / n_tok
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        seq_tokens = int(cpu_batch.valid.sum())
        tokens_seen += seq_tokens
        window_tok += seq_tokens
        window_loss += loss.detach()
        window_n += 1
        out_of_time = time_limit_s is not None and time.perf_counter() - started > time_limit_s
        if step % cfg.log_every == 0 or step == cfg.steps or out_of_time:
            mean_loss = float(window_loss) / window_n
            now = time.perf_counter()
            dt = now - window_t
            elapsed += dt
            eta = (cfg.steps - step) * dt / window_n
            log(
                f"step {step}/{cfg.steps} loss {mean_loss:.3f} lr {lr_at(step, cfg):.2e} "
                f"{window_tok / dt:,.0f} tok/s {1000 * dt / window_n:.1f} ms/step "
                f"elapsed {elapsed / 60:.1f} min ETA {eta / 60:.1f} min"
            )
            window_t, window_tok, window_n = time.perf_counter(), 0, 0
            window_loss.zero_()
        if step % cfg.eval_every == 0 or step in (cfg.steps, stop_at) or out_of_time:
            t0 = time.perf_counter()
            held = held_out_loss(model, test_split, tok, cfg)
            best = min((h["held_out"] for h in history), default=math.inf)
            history.append({"step": step, "tokens": tokens_seen, "minutes": elapsed / 60, "held_out": held})
            if held < best:
                torch.save({"model": model.state_dict(), "step": step, "held_out": held}, out / "best.pt")
            log(
                f"step {step} held-out {held:.3f} nats/token{' (best)' if held < best else ''} "
                f"({time.perf_counter() - t0:.0f} s)"
            )
            window_t = time.perf_counter()
        if step % cfg.ckpt_every == 0 or step in (cfg.steps, stop_at) or out_of_time:
            save()
        if out_of_time:
            log(f"time limit of {time_limit_s:.0f} s reached at step {step}")
            break
    return model


def _drop_dir(prepared):
    tok, _, train_split, test_split = prepared
    return tok, train_split, test_split


# ---------------------------------------------------------------- export


def export(run_dir: str | Path, dest: str | Path, card: str | None = None, dtype=torch.bfloat16) -> Path:
    """Write a run's best weights (held-out; the last ones if it never evaluated) in our "dlm_voice"
    layout via dlm_core.checkpoints.save_checkpoint."""
    from dlm_core.checkpoints import save_checkpoint

    run = Path(run_dir)
    state = torch.load(run / "ckpt.pt", weights_only=False, map_location="cpu")
    cfg = TrainConfig(**state["config"])
    tok_dir = Path(cfg.tokenizer_dir) if cfg.tokenizer_dir else run / "tokenizer"
    model = Transformer(cfg.model_config(DlmTokenizer.from_dir(tok_dir).vocab_size))
    best = run / "best.pt"
    model.load_state_dict(torch.load(best, map_location="cpu")["model"] if best.is_file() else state["model"])
    return save_checkpoint(model.to(dtype), tok_dir, dest, card)  # 16-bit halves the shipped size


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dlm_core.train", description=__doc__.split("\n")[0])
    for f in fields(TrainConfig):
        kind = {"int": int, "float": float, "bool": lambda s: s.lower() in ("1", "true", "yes")}.get(
            str(f.type), str
        )
        parser.add_argument("--" + f.name.replace("_", "-"), type=kind, default=None)
    parser.add_argument("--export", default=None, help="after training, write the model to this folder")
    parser.add_argument("--card", default=None, help="model card file copied as README.md on export")
    parser.add_argument(
        "--time-limit",
        type=float,
        default=None,
        help="seconds of wall time after which the run checkpoints and stops",
    )
    parser.add_argument(
        "--stop-at",
        type=int,
        default=None,
        help="stop (checkpointed) after this step, keeping the --steps schedule",
    )
    args = vars(parser.parse_args(argv))
    dest, card = args.pop("export"), args.pop("card")
    time_limit, stop_at = args.pop("time_limit"), args.pop("stop_at")
    cfg = TrainConfig(**{k: v for k, v in args.items() if v is not None})
    Path(cfg.out).mkdir(parents=True, exist_ok=True)
    with open(Path(cfg.out) / "train.log", "a") as log_file:

        def log(msg: str):
            line = f"{time.strftime('%H:%M:%S')} {msg}"
            print(line, flush=True)
            log_file.write(line + "\n")
            log_file.flush()

        train(cfg, log, stop_at=stop_at, time_limit_s=time_limit)
        if dest:
            export(cfg.out, dest, Path(card).read_text() if card else None)
            log(f"exported to {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
