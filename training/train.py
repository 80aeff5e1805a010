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
training/config.py holds the run's settings; this file is the driver: initialisation, the loop,
checkpoints and export.
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
from dlm_core.model import Transformer
from dlm_core.tokenizer import DlmTokenizer
from training.batches import Batches
from training.config import TrainConfig
from training.objectives import batch_loss, held_out_loss
from training.tokenized import TokenizedSplit, prepare_data

# A resumed run may differ here; loss_weighting too (a run may switch to uniform weights mid-way).
RESUME_MAY_CHANGE = ("steps", "device", "threads", "log_every", "ckpt_every", "loss_weighting")
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
        group["lr"] = cfg.schedule.lr_at(run.step)
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
            f"step {run.step}/{cfg.steps} loss {mean_loss:.3f} lr {cfg.schedule.lr_at(run.step):.2e} "
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


def export(
    run_dir: str | Path,
    dest: str | Path,
    card: str | None = None,
    dtype=torch.bfloat16,
    weights: str = "best",
) -> Path:
    """Write a run's best weights (held-out; the last ones if it never evaluated, or `weights="last"`)
    in our "dlm_voice" layout via dlm_core.checkpoints.save_checkpoint. The held-out loss is measured on
    unseen templates and wordings and rises once a run fits its own; the usefulness of replies kept
    rising after that (data v2: the twin's best loss at step 1000, its most useful replies at 3000)."""
    if weights not in ("best", "last"):
        raise ValueError(f"weights must be 'best' or 'last', not {weights!r}")
    run = Path(run_dir)
    state = torch.load(run / CKPT, weights_only=False, map_location="cpu")
    cfg = TrainConfig(**state["config"])
    tok_dir = Path(cfg.tokenizer_dir) if cfg.tokenizer_dir else run / "tokenizer"
    model = Transformer(cfg.model_config(DlmTokenizer.from_dir(tok_dir).vocab_size))
    best = run / BEST
    use_best = weights == "best" and best.is_file()
    model.load_state_dict(torch.load(best, map_location="cpu")["model"] if use_best else state["model"])
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
        "--export-weights",
        choices=("best", "last"),
        default="best",
        help="the held-out best or the last weights",
    )
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
    dest, card, weights = args.pop("export"), args.pop("card"), args.pop("export_weights")
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
            export(cfg.out, dest, Path(card).read_text() if card else None, weights=weights)
            log(f"exported to {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
