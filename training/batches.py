"""Training rows laid out as tensors, and the endless shuffled stream of them.

Layout of one row (L = P + R positions, P the batch's prompt width):

    [pad .. pad | prompt tokens | reply tokens, <|eot_id|>, <|pad|> ..]
                                ^ position P: the reply canvas of R positions starts here
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from dlm_core.tokenizer import DlmTokenizer
from training.config import TrainConfig
from training.examples import REPEATS
from training.tokenized import TokenizedSplit


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

        def move(x: torch.Tensor) -> torch.Tensor:
            return x.pin_memory().to(device, non_blocking=True)

        return Batch(
            move(self.tokens), move(self.valid), self.reply_start, move(self.is_reply), move(self.is_pad)
        )


def make_batch(prompts, replies, reply_len: int, tok: DlmTokenizer, align: int = 0) -> Batch:
    """Left-pad prompts to a common width so every reply canvas starts at the same position.

    `align` shifts the canvas start (mod block_size) so the model sees replies starting both at and
    inside a block, whichever way a sampler lays out positions.
    """
    pad = tok.special.pad
    B, R = len(prompts), reply_len
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


# Rows are drawn in windows of this many batches and sorted by prompt length inside a window, so a
# batch holds prompts of similar length: every row is left-padded to the batch's longest prompt, and
# with tool lists (~150 tokens) beside two-line requests (~20) most positions would be padding.
BUCKET_BATCHES = 16


class Batches:
    """Endless shuffled batches, each source's rows repeated per training.examples.REPEATS, reproducible
    from a seed (and resumable from `state()`). Rows of similar prompt length are batched together
    (BUCKET_BATCHES), and the batches come in random order."""

    def __init__(self, split: TokenizedSplit, cfg: TrainConfig, seed: int):
        self.split, self.cfg = split, cfg
        self.index = [i for i, source in enumerate(split.sources) for _ in range(REPEATS[source])]
        self.rng = random.Random(seed)
        self.order, self.pos = [], 0

    def next(self, tok: DlmTokenizer) -> Batch:
        rows = []
        while len(rows) < self.cfg.batch_size:
            if self.pos >= len(self.order):
                self.order = self._bucketed()
                self.pos = 0
            rows.append(self.order[self.pos])
            self.pos += 1
        align = self.rng.randrange(self.cfg.block_size) if self.cfg.objective == "diffusion" else 0
        prompts, replies = [self.split.prompts[i] for i in rows], [self.split.replies[i] for i in rows]
        return make_batch(prompts, replies, self.cfg.reply_len, tok, align)

    def _bucketed(self) -> list[int]:
        """One epoch's row order: shuffled, sorted by prompt length within windows, whole batches
        shuffled."""
        order = self.index[:]
        self.rng.shuffle(order)
        size, window = self.cfg.batch_size, self.cfg.batch_size * BUCKET_BATCHES
        batches = []
        for start in range(0, len(order), window):
            chunk = sorted(order[start : start + window], key=lambda i: len(self.split.prompts[i]))
            batches += [chunk[k : k + size] for k in range(0, len(chunk), size)]
        self.rng.shuffle(batches)
        return [i for batch in batches for i in batch]

    def state(self) -> dict:
        return {"rng": self.rng.getstate(), "order": self.order, "pos": self.pos}

    def load(self, state: dict) -> None:
        self.rng.setstate(state["rng"])
        self.order, self.pos = state["order"], state["pos"]
