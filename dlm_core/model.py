"""One top-down transformer for every diffusion LM family we run.

RMSNorm, RoPE (rotate-half convention, as in the Hugging Face Llama/Qwen code),
SwiGLU and grouped-query attention. What differs between families is config, not code:

- attention "bidirectional": every token sees every token (LLaDA, Dream, MDLM).
- attention "block_causal": full attention inside a block of `block_size` positions,
  causal across blocks (SDAR, Fast-dLLM v2, BD3-LM), so committed blocks keep an exact KV cache.
- attention "causal": plain autoregressive (the AR twin we measure against).

Attention visibility is a function of absolute positions only (see `visible`), so the same rule
holds whether keys come from this call or from a `KVCache` filled by an earlier call.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from dlm_core.cache import KVCache

ATTENTION_MODES = ("bidirectional", "block_causal", "causal")


@dataclass
class ModelConfig:
    vocab_size: int  # rows of the embedding table and the LM head
    dim: int  # hidden size
    n_layers: int  # transformer blocks
    n_heads: int  # query heads
    mlp_dim: int  # SwiGLU inner size
    n_kv_heads: int | None = None  # key/value heads (GQA); None means n_heads
    head_dim: int | None = None  # per-head size; None means dim // n_heads
    rope_theta: float = 10000.0  # RoPE base
    norm_eps: float = 1e-6  # RMSNorm epsilon
    max_seq_len: int = 2048  # longest canvas the RoPE table covers
    attention: str = "bidirectional"  # one of ATTENTION_MODES
    block_size: int = 32  # block length for "block_causal"
    qkv_bias: bool = False  # biases on q/k/v projections (Qwen2, Dream)
    qk_norm: bool = False  # per-head RMSNorm on q and k (Qwen3, SDAR)
    tie_embeddings: bool = False  # LM head shares the embedding matrix
    logits_shift: bool = False  # output at position i predicts token i+1 (Dream, AR-adapted models)
    extra: dict = field(default_factory=dict)  # family facts carried for the loader, not used here

    def __post_init__(self):
        if self.n_kv_heads is None:
            self.n_kv_heads = self.n_heads
        if self.head_dim is None:
            if self.dim % self.n_heads:
                raise ValueError(f"dim {self.dim} is not divisible by n_heads {self.n_heads}")
            self.head_dim = self.dim // self.n_heads
        if self.n_heads % self.n_kv_heads:
            raise ValueError(f"n_heads {self.n_heads} is not a multiple of n_kv_heads {self.n_kv_heads}")
        if self.attention not in ATTENTION_MODES:
            raise ValueError(f"attention must be one of {ATTENTION_MODES}, got {self.attention!r}")
        if self.block_size < 1:
            raise ValueError(f"block_size must be >= 1, got {self.block_size}")

    def to_dict(self) -> dict:
        return asdict(self)


def visible(q_pos: torch.Tensor, k_pos: torch.Tensor, mode: str, block_size: int) -> torch.Tensor:
    """Which keys each query may attend to. q_pos: [B, S], k_pos: [B, T] -> [B, S, T] bool."""
    q, k = q_pos[:, :, None], k_pos[:, None, :]
    if mode == "bidirectional":
        return torch.ones(q.shape[0], q.shape[1], k.shape[2], dtype=torch.bool, device=q_pos.device)
    if mode == "causal":
        return k <= q
    return torch.div(k, block_size, rounding_mode="floor") <= torch.div(q, block_size, rounding_mode="floor")


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Normalise in float32 like the reference implementations, then cast back.
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * h.to(x.dtype)


def rope_tables(head_dim: int, max_len: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
    angles = torch.outer(torch.arange(max_len, dtype=torch.float64), inv_freq)  # [L, D/2]
    angles = torch.cat([angles, angles], dim=-1)  # [L, D]
    return angles.cos().float(), angles.sin().float()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    # x: [B, H, S, D]; cos/sin: [B, 1, S, D]
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return (x.float() * cos + rotated.float() * sin).to(x.dtype)


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig, layer_idx: int):
        super().__init__()
        self.cfg, self.layer_idx = cfg, layer_idx
        hd = cfg.head_dim
        self.q_proj = nn.Linear(cfg.dim, cfg.n_heads * hd, bias=cfg.qkv_bias)
        self.k_proj = nn.Linear(cfg.dim, cfg.n_kv_heads * hd, bias=cfg.qkv_bias)
        self.v_proj = nn.Linear(cfg.dim, cfg.n_kv_heads * hd, bias=cfg.qkv_bias)
        self.o_proj = nn.Linear(cfg.n_heads * hd, cfg.dim, bias=False)
        if cfg.qk_norm:
            self.q_norm = RMSNorm(hd, cfg.norm_eps)
            self.k_norm = RMSNorm(hd, cfg.norm_eps)

    def forward(self, x, cos, sin, mask, cache: KVCache | None):
        # x: [B, S, dim]; mask: [B, 1, S, T_total] bool
        B, S, _ = x.shape
        hd = self.cfg.head_dim
        q = self.q_proj(x).view(B, S, self.cfg.n_heads, hd)
        k = self.k_proj(x).view(B, S, self.cfg.n_kv_heads, hd)
        v = self.v_proj(x).view(B, S, self.cfg.n_kv_heads, hd)
        if self.cfg.qk_norm:
            q, k = self.q_norm(q), self.k_norm(k)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # [B, H, S, hd]
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if cache is not None:
            k, v = cache.keys_values(self.layer_idx, k, v)  # [B, Hkv, T_total, hd]
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, enable_gqa=self.cfg.n_kv_heads != self.cfg.n_heads
        )
        return self.o_proj(out.transpose(1, 2).reshape(B, S, -1))


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.gate_proj = nn.Linear(cfg.dim, cfg.mlp_dim, bias=False)
        self.up_proj = nn.Linear(cfg.dim, cfg.mlp_dim, bias=False)
        self.down_proj = nn.Linear(cfg.mlp_dim, cfg.dim, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig, layer_idx: int):
        super().__init__()
        self.attn_norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.attn = Attention(cfg, layer_idx)
        self.mlp_norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.mlp = MLP(cfg)

    def forward(self, x, cos, sin, mask, cache):
        x = x + self.attn(self.attn_norm(x), cos, sin, mask, cache)
        return x + self.mlp(self.mlp_norm(x))


class Transformer(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.dim)
        self.layers = nn.ModuleList(Block(cfg, i) for i in range(cfg.n_layers))
        self.norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.lm_head = nn.Linear(cfg.dim, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.embed.weight
        cos, sin = rope_tables(cfg.head_dim, cfg.max_seq_len, cfg.rope_theta)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(
        self,
        tokens: torch.Tensor,
        positions: torch.Tensor | None = None,
        cache: KVCache | None = None,
        key_valid: torch.Tensor | None = None,
        hidden_only: bool = False,
        attn_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits for every input position.

        tokens: [B, S] ids. positions: [B, S] absolute positions (default 0..S-1, or right after
        the cache). cache: keys/values of earlier positions, read, and extended inside
        `cache.writing()` (see KVCache). key_valid: [B, S] False for padding that no query may see.
        attn_mask: [B, S, T] or [S, T] bool, which of the T keys (cached ones first) each query may
        see, in place of the attention rule `visible`; training's two-stream layout needs it, where
        two copies of a position see different keys. key_valid applies on top of either.
        Returns logits [B, S, V] (float32), or the final hidden states [B, S, dim] if hidden_only.
        With cfg.logits_shift the logits at position i predict token i+1; the sampler aligns them.
        """
        assert tokens.ndim == 2, tokens.shape
        B, S = tokens.shape
        positions = self._positions(tokens, positions, cache)
        if key_valid is None:
            key_valid = torch.ones(B, S, dtype=torch.bool, device=tokens.device)
        k_pos, k_valid = positions, key_valid
        if cache is not None:
            k_pos, k_valid = cache.begin(positions, key_valid)  # [B, T_total]
        if attn_mask is None:
            attn_mask = visible(positions, k_pos, self.cfg.attention, self.cfg.block_size)
        mask = sees_something(attn_mask & k_valid[:, None, :])[:, None]  # [B, 1, S, T]
        cos = self.rope_cos[positions][:, None]  # [B, 1, S, hd]
        sin = self.rope_sin[positions][:, None]
        x = self.embed(tokens)
        for layer in self.layers:
            x = layer(x, cos, sin, mask, cache)
        if cache is not None:
            cache.end()
        x = self.norm(x)
        if hidden_only:
            return x
        return self.lm_head(x).float()

    def _positions(self, tokens: torch.Tensor, positions: torch.Tensor | None, cache) -> torch.Tensor:
        """The given positions, checked against the RoPE table, or 0..S-1 right after the cache."""
        B, S = tokens.shape
        # The checks are skipped inside torch.compile, where they would break the graph (and CUDA
        # graphs) in two, and for given positions in training mode, where reading the device value
        # would stall a GPU every step (training builds its positions from the batch layout).
        checked = not torch.compiler.is_compiling()
        if positions is None:
            start = cache.length if cache is not None else 0
            if checked and start + S > self.cfg.max_seq_len:
                raise ValueError(f"position {start + S - 1} exceeds max_seq_len {self.cfg.max_seq_len}")
            return torch.arange(start, start + S, device=tokens.device).expand(B, S)
        assert positions.shape == (B, S), (positions.shape, tokens.shape)
        if checked and not self.training and int(positions.max()) >= self.cfg.max_seq_len:
            raise ValueError(f"position {int(positions.max())} exceeds max_seq_len {self.cfg.max_seq_len}")
        return positions


def sees_something(mask: torch.Tensor) -> torch.Tensor:
    """mask: [B, S, T] bool. A query row that may see no key (a padded query, whose output nobody
    reads) would get NaN from the softmax, and NaN gradients in training: let it see every key."""
    return mask | ~mask.any(-1, keepdim=True)
