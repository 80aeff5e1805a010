"""A training run's settings (`TrainConfig`, one field per command-line flag of `python -m
training.train`) and its learning-rate schedule. A leaf of `training/`: the data, batch and objective
modules read the config without importing the driver."""

from __future__ import annotations

import math
from dataclasses import dataclass

from dlm_core.model import ModelConfig

OBJECTIVES = ("diffusion", "ar")
DEVICES = ("cpu", "cuda")
WEIGHTINGS = ("elbo", "uniform")
# The shipped models' context: training rows (max_prompt + reply_len) are far shorter, but the server
# keeps longer conversations, up to this many positions.
MAX_SEQ_LEN = 512


@dataclass(frozen=True)
class Schedule:
    """The learning rate over a run: linear warmup over `warmup` steps, then a cosine decay to
    min_lr_ratio * lr at `steps`."""

    lr: float
    steps: int
    warmup: int
    min_lr_ratio: float

    def lr_at(self, step: int) -> float:
        if step < self.warmup:
            return self.lr * (step + 1) / self.warmup
        frac = min(1.0, (step - self.warmup) / max(1, self.steps - self.warmup))
        return self.lr * (self.min_lr_ratio + (1 - self.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * frac)))


@dataclass
class TrainConfig:
    out: str = "runs/default"  # run folder: tokenizer/, data cache, ckpt.pt, log
    objective: str = "diffusion"  # "diffusion" (masked diffusion ELBO) or "ar" (next-token)
    seed: int = 0  # everything derives from it
    vocab_size: int = 3072  # byte-level BPE size including special tokens
    tokenizer_dir: str | None = None  # reuse this tokenizer instead of training one (the twin shares it)
    # Training rows drawn from the generated sources (intents, tools) per unit of their counts: fresh
    # slot values instead of more epochs of the same rows. At least 1: held-out rows stay the same.
    data_scale: float = 1.0
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
        if self.data_scale < 1:
            raise ValueError(f"data_scale adds training rows: it must be >= 1, got {self.data_scale}")
        if self.reply_len < 2 or self.max_prompt < 4:
            raise ValueError("reply_len must be >= 2 and max_prompt >= 4")
        if self.loss_weighting not in WEIGHTINGS:
            raise ValueError(f"loss_weighting must be one of {WEIGHTINGS}, got {self.loss_weighting!r}")
        if not 0.0 <= self.pad_weight <= 1.0:
            raise ValueError(f"pad_weight must be in [0, 1], got {self.pad_weight}")
        if self.device not in DEVICES:
            raise ValueError(f"device must be 'cpu' or 'cuda', got {self.device!r}")

    @property
    def schedule(self) -> Schedule:
        return Schedule(lr=self.lr, steps=self.steps, warmup=self.warmup, min_lr_ratio=self.min_lr_ratio)

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
