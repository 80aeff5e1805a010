"""The two training objectives and the held-out score.

Diffusion (the ELBO of masked diffusion, per block for "block_causal"): each row draws t ~ U(0, 1),
masks each reply-canvas token with probability t and is scored on the masked ones with weight 1/t.
For "block_causal" a second, clean copy of the sequence is prepended (as in BD3-LM) so a noisy block
attends to clean earlier blocks, exactly what the sampler's KV cache shows it at inference. A shifted
model (`logits_shift`, a diffusion run started from AR weights) scores each position from the output
before it (`block_predictors`), as the sampler reads it; a shifted bidirectional one (Dream's layout,
which only the test kit's tiny models use) from the output before it too. Trailing
pads after <|eot_id|> get `pad_weight` (< 1) so they cannot dominate the loss, a guard against
collapsing onto one- or two-token replies. `loss_weighting="uniform"` drops the 1/t factor (every masked
token counts once): the ELBO's weights let a few rows with almost nothing masked dominate a batch, and the
high-noise predictions that few-step decoding relies on then learn slowly (a TinyStories diffusion model
became coherent only with uniform weights; see the project's reference notes).

AR: causal attention, logits shifted by one, next-token loss on reply tokens and <|eot_id|>.
Both report nats per reply token (reply + <|eot_id|>), so held-out figures compare directly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from dlm_core.model import Transformer
from dlm_core.tokenizer import DlmTokenizer
from training.batches import Batch, make_batch
from training.config import TrainConfig
from training.tokenized import TokenizedSplit

EVAL_T_SAMPLES = 4  # stratified noise levels per held-out row for the ELBO estimate
MIN_T = 1e-3  # keeps the 1/t weight finite
EVAL_SEED = 1234  # the same held-out noise at every evaluation, so the figures compare across steps


def two_stream_mask(L: int, s0: int, block: int, device=None) -> torch.Tensor:
    """Which keys each query sees in [clean sequence | noisy copy of positions s0..L-1] (BD3-LM style).

    Clean queries see clean keys block-causally. Noisy queries see clean keys of earlier blocks and
    noisy keys of their own block: what a block being denoised sees behind an exact KV cache.
    Returns [L + L - s0, L + L - s0] bool (query x key); padding is the model's `key_valid`.
    """
    pos = torch.arange(L, device=device)
    blk_c = pos // block  # [L]
    blk_n = pos[s0:] // block  # [L - s0]
    cc = blk_c[None, :] <= blk_c[:, None]  # [L, L]  query x key
    nc = blk_c[None, :] < blk_n[:, None]  # [Ln, L]
    nn_ = blk_n[None, :] == blk_n[:, None]  # [Ln, Ln]
    top = torch.cat([cc, torch.zeros(L, L - s0, dtype=torch.bool, device=device)], 1)
    bottom = torch.cat([nc, nn_], 1)
    return torch.cat([top, bottom], 0)


def two_stream_hidden(model: Transformer, clean: torch.Tensor, noisy: torch.Tensor, valid, s0: int):
    """Final hidden states of the clean sequence and of the noisy copy of positions s0..L-1, each noisy
    block seeing the clean earlier blocks. clean, noisy, valid: [B, L] -> ([B, L, dim], [B, L - s0, dim])."""
    B, L = clean.shape
    dev = clean.device
    seq = torch.cat([clean, noisy[:, s0:]], 1)  # [B, L + L - s0]
    positions = torch.cat([torch.arange(L, device=dev), torch.arange(s0, L, device=dev)]).expand(B, -1)
    hidden = model(
        seq,
        positions,
        key_valid=torch.cat([valid, valid[:, s0:]], 1),
        attn_mask=two_stream_mask(L, s0, model.cfg.block_size, dev),
        hidden_only=True,
    )
    return hidden[:, :L], hidden[:, L:]


def block_predictors(model: Transformer, clean: torch.Tensor, noisy: torch.Tensor, valid, s0: int):
    """The hidden state whose logits predict each of positions s0..L-1. [B, L - s0, dim]

    Unshifted models predict a position from its own noisy state. A shifted model (output i predicts
    token i + 1, as AR weights do) predicts a position from the one before it: inside a block that is
    the noisy stream's, and for a block's first position the clean last position of the block before,
    which is what the sampler queries there (the last committed token, never cached)."""
    clean_h, noisy_h = two_stream_hidden(model, clean, noisy, valid, s0)
    if not model.cfg.logits_shift:
        return noisy_h
    pos = torch.arange(s0, clean.shape[1], device=clean.device)
    prev = (pos - 1).clamp_min(0)  # position 0 is never a reply position, so its stand-in is unscored
    inside = (pos % model.cfg.block_size != 0)[None, :, None]
    return torch.where(inside, noisy_h[:, (prev - s0).clamp_min(0)], clean_h[:, prev])


def draw_noise(rows: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Each row's noise level t ~ U(0, 1), kept above MIN_T: [rows], on the CPU like `generator`."""
    return torch.rand(rows, generator=generator).clamp_min(MIN_T)


def diffusion_loss(
    model: Transformer,
    batch: Batch,
    tok: DlmTokenizer,
    t: torch.Tensor,
    *,
    pad_weight: float,
    generator: torch.Generator | None = None,
    weighting: str = "elbo",
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
        hidden = block_predictors(model, tokens, noisy, valid, s0)
        masked, target, is_pad = masked[:, s0:], tokens[:, s0:], batch.is_pad[:, s0:]
    else:
        # Every real token sees every real token, whatever cfg.attention says (as this objective
        # always has); a padded query sees nothing here, which the model turns into everything.
        pairs = valid[:, :, None] & valid[:, None, :]  # [B, L, L]
        hidden = model(noisy, key_valid=valid, attn_mask=pairs, hidden_only=True)
        target, is_pad = tokens, batch.is_pad
        if cfg.logits_shift:  # Dream's convention: output i predicts token i + 1
            hidden, masked, target, is_pad = hidden[:, :-1], masked[:, 1:], tokens[:, 1:], is_pad[:, 1:]
    logits = model.lm_head(hidden).float()  # [B, Ln, V]
    nll = F.cross_entropy(logits.flatten(0, 1), target.flatten(), reduction="none").view_as(target)
    if weighting == "elbo":
        w = masked * (1.0 / t)[:, None] * torch.where(is_pad, pad_weight, 1.0)
    else:  # "uniform": every masked token counts once, whatever its row's noise level
        # Rescaled so that the sum keeps the ELBO's scale: nats per reply token.
        scale = batch.is_reply.sum() / masked.sum().clamp_min(1)
        w = masked * torch.where(is_pad, pad_weight, 1.0) * scale
    return (nll * w).sum(), batch.is_reply.sum()


def ar_loss(model: Transformer, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """Next-token NLL on reply tokens (+ <|eot_id|>). Returns (sum of nats, reply tokens)."""
    tokens = batch.tokens
    logits = model(tokens, key_valid=batch.valid)  # [B, L, V]; i predicts i+1
    nll = F.cross_entropy(logits[:, :-1].flatten(0, 1), tokens[:, 1:].flatten(), reduction="none")
    return (nll * batch.is_reply[:, 1:].flatten()).sum(), batch.is_reply.sum()


def batch_loss(model, batch, tok, cfg: TrainConfig, generator=None, t=None, pad_weight=None, weighting=None):
    """The objective's (loss sum, reply tokens). `weighting`: the diffusion loss weights, cfg.loss_weighting
    unless given (the held-out score is always the ELBO's)."""
    if cfg.objective == "ar":
        return ar_loss(model, batch)
    if t is None:
        t = draw_noise(batch.tokens.shape[0], generator)
    return diffusion_loss(
        model,
        batch,
        tok,
        t,
        pad_weight=cfg.pad_weight if pad_weight is None else pad_weight,
        generator=generator,
        weighting=weighting or cfg.loss_weighting,
    )


@torch.no_grad()
def held_out_loss(model, split: TokenizedSplit, tok, cfg: TrainConfig, rows: int | None = None) -> float:
    """Nats per reply token on held-out rows: exact NLL (ar) or the diffusion ELBO bound (pads unweighted)."""
    model.eval()
    gen = torch.Generator().manual_seed(EVAL_SEED)
    n = min(rows or cfg.eval_rows, len(split.prompts))
    device = next(model.parameters()).device.type
    spread = [i * len(split.prompts) // n for i in range(n)]  # evenly across sources, not the first n
    total, count = 0.0, 0
    for start in range(0, n, cfg.batch_size):
        idx = spread[start : start + cfg.batch_size]
        prompts, replies = [split.prompts[i] for i in idx], [split.replies[i] for i in idx]
        batch = make_batch(prompts, replies, cfg.reply_len, tok).to(device)
        reps = 1 if cfg.objective == "ar" else EVAL_T_SAMPLES
        for k in range(reps):
            t = ((k + torch.rand(len(idx), generator=gen)) / reps).clamp_min(MIN_T)  # stratified
            with torch.autocast(device, dtype=torch.bfloat16, enabled=cfg.bf16):
                loss, toks = batch_loss(model, batch, tok, cfg, gen, t=t, pad_weight=1.0, weighting="elbo")
            total += float(loss) / reps
        count += int(toks)
    model.train()
    return total / max(count, 1)
