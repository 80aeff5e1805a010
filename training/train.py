"""Train the bundled voice-assistant LM: masked (block) diffusion, or its autoregressive twin.

    python -m training.train --out runs/default --objective diffusion --steps 3000
    python -m training.train --out runs/twin --objective ar --tokenizer-dir runs/default/tokenizer
    python -m training.train ... --device cuda --bf16 true --export dlm_core/weights/default   # on a GPU

The shipped models were trained on a GPU by `training/gpu_run.py`; their model cards give the exact
commands. One command reproduces a model from its seed: data (training/), tokenizer, batches, noise
and initialisation all derive from `TrainConfig.seed` and are drawn on the CPU, whatever the device.
Runs checkpoint to `out/ckpt.pt` and resume from it; the best held-out weights go to `out/best.pt`.

The pieces: training/tokenized.py (tokenizer and tokenized splits), training/batches.py (row layout
and the shuffled batch stream), training/objectives.py (the diffusion and AR losses, held-out score).
This file is the driver: config, initialisation, the loop, checkpoints and export.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch

from dlm_core.checkpoints import save_checkpoint
from dlm_core.model import ModelConfig, Transformer
from dlm_core.tokenizer import DlmTokenizer
from training.batches import Batches
from training.objectives import batch_loss, held_out_loss
from training.tokenized import TokenizedSplit, prepare_data

OBJECTIVES = ("diffusion", "ar")
DEVICES = ("cpu", "cuda")
# A resumed run may differ here; loss_weighting too (a run may switch to uniform weights mid-way).
RESUME_MAY_CHANGE = ("steps", "device", "threads", "log_every", "ckpt_every", "loss_weighting")
WEIGHTINGS = ("elbo", "uniform")
# The shipped models' context: training rows (max_prompt + reply_len) are far shorter, but the server
# keeps longer conversations, up to this many positions.
MAX_SEQ_LEN = 512
# GPT-2's initialisation: N(0, INIT_STD) for every matrix, and the two projections that write into the
# residual stream scaled by 1/sqrt(2 * n_layers), so the stream's variance does not grow with depth.
INIT_STD = 0.02
RESIDUAL_PROJECTIONS = ("o_proj.weight", "down_proj.weight")
# beta2 0.98 rather than PyTorch's 0.999: the second-moment estimate follows the gradients faster, the
# usual choice for transformers with a short warmup (the original Transformer, RoBERTa).
ADAM_BETAS = (0.9, 0.98)
# A clipped global gradient norm: a batch whose few masked tokens carry large 1/t weights cannot throw
# the weights off.
GRAD_CLIP_NORM = 1.0
# Noise draws come from cfg.seed + NOISE_SEED_OFFSET, a stream apart from the initialisation's cfg.seed.
NOISE_SEED_OFFSET = 1
CKPT, CKPT_TMP, BEST = "ckpt.pt", "ckpt.tmp", "best.pt"


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
    # Output i predicts token i + 1. None: only for "ar". A diffusion run that starts from AR weights
    # keeps it (as Dream and Fast-dLLM v2 do), so what the AR model learned still lines up.
    logits_shift: bool | None = None
    init_from: str | None = (
        None  # start from these weights (a run's ckpt.pt or best.pt): e.g. AR -> diffusion
    )
    max_prompt: int = 48  # prompt tokens kept (oldest turns dropped to fit)
    reply_len: int = 32  # reply canvas: reply + <|eot_id|> + pads
    batch_size: int = 32
    steps: int = 2000
    lr: float = 2e-3
    min_lr_ratio: float = 0.1  # cosine decay floor
    warmup: int = 100
    weight_decay: float = 0.05
    pad_weight: float = 0.1  # loss weight of trailing pads after <|eot_id|>
    loss_weighting: str = "elbo"  # diffusion: "elbo" (1/t per masked token) or "uniform" (1 per masked token)
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
        if self.logits_shift is None:
            self.logits_shift = self.objective == "ar"
        if self.objective == "ar" and (self.attention != "causal" or not self.logits_shift):
            raise ValueError("the AR objective needs attention='causal' and logits_shift")
        if self.objective == "diffusion" and self.logits_shift and self.attention != "block_causal":
            raise ValueError("a shifted diffusion model needs attention='block_causal'")
        if self.reply_len < 2 or self.max_prompt < 4:
            raise ValueError("reply_len must be >= 2 and max_prompt >= 4")
        if self.loss_weighting not in WEIGHTINGS:
            raise ValueError(f"loss_weighting must be one of {WEIGHTINGS}, got {self.loss_weighting!r}")
        if not 0.0 <= self.pad_weight <= 1.0:
            raise ValueError(f"pad_weight must be in [0, 1], got {self.pad_weight}")
        if self.device not in DEVICES:
            raise ValueError(f"device must be 'cpu' or 'cuda', got {self.device!r}")

    def model_config(self, vocab_size: int) -> ModelConfig:
        return ModelConfig(
            vocab_size=vocab_size,
            dim=self.dim,
            n_layers=self.n_layers,
            n_heads=self.n_heads,
            mlp_dim=self.mlp_dim,
            max_seq_len=MAX_SEQ_LEN,
            attention=self.attention,
            block_size=self.block_size,
            tie_embeddings=True,
            logits_shift=self.logits_shift,
        )


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
            residual = name.endswith(RESIDUAL_PROJECTIONS)
            std = INIT_STD / math.sqrt(2 * cfg.n_layers) if residual else INIT_STD
            torch.nn.init.normal_(p, std=std)
    if cfg.init_from:
        model.load_state_dict(torch.load(cfg.init_from, map_location="cpu", weights_only=False)["model"])
    return model


# ---------------------------------------------------------------- the run and its checkpoint


@dataclass
class Run:
    """Everything a checkpoint holds: weights, optimiser, batch and noise streams, progress."""

    model: Transformer
    opt: torch.optim.Optimizer
    batches: Batches
    gen: torch.Generator  # noise levels and masks (on the CPU)
    step: int = 0
    tokens: int = 0  # sequence tokens trained on
    elapsed: float = 0.0  # training seconds, evaluations excluded
    history: list[dict] = field(default_factory=list)  # one entry per evaluation

    @classmethod
    def start(cls, cfg: TrainConfig, vocab_size: int, train_split: TokenizedSplit) -> Run:
        model = build_model(cfg, vocab_size).to(cfg.device)
        decay = [p for p in model.parameters() if p.ndim == 2]
        no_decay = [p for p in model.parameters() if p.ndim < 2]
        opt = torch.optim.AdamW(
            [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=cfg.lr,
            betas=ADAM_BETAS,
        )
        gen = torch.Generator().manual_seed(cfg.seed + NOISE_SEED_OFFSET)
        return cls(model, opt, Batches(train_split, cfg, cfg.seed), gen)

    def save(self, cfg: TrainConfig, out: Path) -> None:
        state = {
            "model": self.model.state_dict(),
            "opt": self.opt.state_dict(),
            "sampler": self.batches.state(),  # the batch stream, under its name in older checkpoints
            "gen": self.gen.get_state(),
            "step": self.step,
            "tokens": self.tokens,
            "elapsed": self.elapsed,
            "history": self.history,
            "config": asdict(cfg),
        }
        torch.save(state, out / CKPT_TMP)
        os.replace(out / CKPT_TMP, out / CKPT)  # a run killed mid-write keeps its last checkpoint

    def resume(self, cfg: TrainConfig, ckpt: Path) -> None:
        state = torch.load(ckpt, weights_only=False, map_location=cfg.device)
        saved = asdict(TrainConfig(**state["config"]))  # a field added since then has its default
        same = {k: saved[k] for k in RESUME_MAY_CHANGE}
        if saved != asdict(cfg) | same:
            raise ValueError(f"{ckpt} was made with another config; use a new --out")
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["opt"])  # loads onto the parameters' device
        self.batches.load(state["sampler"])
        self.gen.set_state(state["gen"])
        self.step, self.tokens = state["step"], state["tokens"]
        self.elapsed, self.history = state["elapsed"], state["history"]


# ---------------------------------------------------------------- the loop


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
    run = Run.start(cfg, tok.vocab_size, train_split)
    if (out / CKPT).is_file():
        run.resume(cfg, out / CKPT)
        log(f"resumed from {out / CKPT} at step {run.step}")
    (out / "train_config.json").write_text(json.dumps(asdict(cfg), indent=2) + "\n")
    log(
        f"{cfg.objective} model: {run.model.num_params() / 1e6:.2f}M params, "
        f"{len(train_split.prompts)} train rows, {len(test_split.prompts)} held-out rows, "
        f"vocab {tok.vocab_size}"
    )
    _loop(run, cfg, tok, test_split, log, stop_at, time_limit_s)
    return run.model


def _loop(run: Run, cfg: TrainConfig, tok, test_split, log, stop_at, time_limit_s) -> None:
    out = Path(cfg.out)
    run.model.train()
    started = time.perf_counter()
    window = _Window(cfg.device)
    while run.step < min(cfg.steps, stop_at or cfg.steps):
        seq_tokens, loss = _step(run, cfg, tok)
        run.step += 1
        run.tokens += seq_tokens
        window.add(seq_tokens, loss)
        out_of_time = time_limit_s is not None and time.perf_counter() - started > time_limit_s
        last = run.step in (cfg.steps, stop_at) or out_of_time
        if run.step % cfg.log_every == 0 or run.step == cfg.steps or out_of_time:
            window.report(run, cfg, log)
        if run.step % cfg.eval_every == 0 or last:
            _evaluate(run, cfg, tok, test_split, log)
            window.started = time.perf_counter()  # evaluation time is not training time
        if run.step % cfg.ckpt_every == 0 or last:
            run.save(cfg, out)
        if out_of_time:
            log(f"time limit of {time_limit_s:.0f} s reached at step {run.step}")
            break


def _step(run: Run, cfg: TrainConfig, tok) -> tuple[int, torch.Tensor]:
    """One optimiser step. Returns (sequence tokens in the batch, the loss, left on the device)."""
    for group in run.opt.param_groups:
        group["lr"] = lr_at(run.step, cfg)
    cpu_batch = run.batches.next(tok)
    batch = cpu_batch.to(cfg.device)
    with torch.autocast(cfg.device, dtype=torch.bfloat16, enabled=cfg.bf16):
        loss_sum, n_tok = batch_loss(run.model, batch, tok, cfg, run.gen)
    loss = loss_sum / n_tok
    run.opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(run.model.parameters(), GRAD_CLIP_NORM)
    run.opt.step()
    return int(cpu_batch.valid.sum()), loss.detach()


class _Window:
    """Loss and throughput since the last log line. The loss is summed on the device: no host sync
    per step."""

    def __init__(self, device: str):
        self.loss = torch.zeros((), device=device)
        self.started, self.tokens, self.steps = time.perf_counter(), 0, 0

    def add(self, tokens: int, loss: torch.Tensor) -> None:
        self.tokens += tokens
        self.loss += loss
        self.steps += 1

    def report(self, run: Run, cfg: TrainConfig, log) -> None:
        """Log the window's figures, count its time as training time, and start a new window."""
        mean_loss = float(self.loss) / self.steps
        dt = time.perf_counter() - self.started
        run.elapsed += dt
        eta = (cfg.steps - run.step) * dt / self.steps
        log(
            f"step {run.step}/{cfg.steps} loss {mean_loss:.3f} lr {lr_at(run.step, cfg):.2e} "
            f"{self.tokens / dt:,.0f} tok/s {1000 * dt / self.steps:.1f} ms/step "
            f"elapsed {run.elapsed / 60:.1f} min ETA {eta / 60:.1f} min"
        )
        self.started, self.tokens, self.steps = time.perf_counter(), 0, 0
        self.loss.zero_()


def _evaluate(run: Run, cfg: TrainConfig, tok, test_split, log) -> None:
    """Score the held-out split; keep the weights in best.pt if they beat every earlier evaluation."""
    t0 = time.perf_counter()
    held = held_out_loss(run.model, test_split, tok, cfg)
    best = min((h["held_out"] for h in run.history), default=math.inf)
    run.history.append(
        {"step": run.step, "tokens": run.tokens, "minutes": run.elapsed / 60, "held_out": held}
    )
    if held < best:
        torch.save(
            {"model": run.model.state_dict(), "step": run.step, "held_out": held}, Path(cfg.out) / BEST
        )
    log(
        f"step {run.step} held-out {held:.3f} nats/token{' (best)' if held < best else ''} "
        f"({time.perf_counter() - t0:.0f} s)"
    )


def _drop_dir(prepared):
    tok, _, train_split, test_split = prepared
    return tok, train_split, test_split


# ---------------------------------------------------------------- export


def export(run_dir: str | Path, dest: str | Path, card: str | None = None, dtype=torch.bfloat16) -> Path:
    """Write a run's best weights (held-out; the last ones if it never evaluated) in our "dlm_voice"
    layout via dlm_core.checkpoints.save_checkpoint."""
    run = Path(run_dir)
    state = torch.load(run / CKPT, weights_only=False, map_location="cpu")
    cfg = TrainConfig(**state["config"])
    tok_dir = Path(cfg.tokenizer_dir) if cfg.tokenizer_dir else run / "tokenizer"
    model = Transformer(cfg.model_config(DlmTokenizer.from_dir(tok_dir).vocab_size))
    best = run / BEST
    model.load_state_dict(torch.load(best, map_location="cpu")["model"] if best.is_file() else state["model"])
    return save_checkpoint(model.to(dtype), tok_dir, dest, card)  # 16-bit halves the shipped size


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.train", description=__doc__.split("\n")[0])
    for f in fields(TrainConfig):
        kind = {"int": int, "float": float, "bool": lambda s: s.lower() in ("1", "true", "yes")}.get(
            str(f.type).removesuffix(" | None"), str
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
