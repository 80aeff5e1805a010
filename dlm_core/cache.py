"""Key/value cache passed into the model, never threaded through layer signatures.

A KVCache holds, per layer, keys and values for a set of earlier positions (with their absolute
positions and a validity mask, so batched rows may be padded). A forward call reads the cache and,
when `write` is on, appends the keys/values it computed. Which entries are kept is the sampler's
business: `truncate(n)` drops the tail, `keep(index)` keeps chosen columns (for a dual cache).

Exactness: for "block_causal" and "causal" models a cached prefix of whole committed blocks is
exact. For "bidirectional" models a prefix cache is an approximation (the prefix's keys were
computed when later positions held other tokens), as in Fast-dLLM.
"""

from __future__ import annotations

import torch


class KVCache:
    def __init__(self, n_layers: int):
        self.n_layers = n_layers
        self.k: list[torch.Tensor | None] = [None] * n_layers  # each [B, Hkv, T, hd]
        self.v: list[torch.Tensor | None] = [None] * n_layers
        self.positions: torch.Tensor | None = None  # [B, T]
        self.valid: torch.Tensor | None = None  # [B, T] bool
        self.write = False  # when True the next forward appends its keys/values
        self._pending: tuple[torch.Tensor, torch.Tensor] | None = None

    @property
    def length(self) -> int:
        return 0 if self.positions is None else self.positions.shape[1]

    def begin(self, positions: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Called by the model before its layers: returns key positions/validity for this call."""
        self._pending = (positions, valid)
        if self.positions is None:
            return positions, valid
        return torch.cat([self.positions, positions], 1), torch.cat([self.valid, valid], 1)

    def keys_values(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        old_k, old_v = self.k[layer], self.v[layer]
        full_k = k if old_k is None else torch.cat([old_k, k], 2)
        full_v = v if old_v is None else torch.cat([old_v, v], 2)
        if self.write:
            self.k[layer], self.v[layer] = full_k, full_v
        return full_k, full_v

    def end(self) -> None:
        positions, valid = self._pending
        self._pending = None
        if self.write:
            if self.positions is None:
                self.positions, self.valid = positions, valid
            else:
                self.positions = torch.cat([self.positions, positions], 1)
                self.valid = torch.cat([self.valid, valid], 1)

    def truncate(self, n: int) -> None:
        """Keep the first n cached positions."""
        self.keep(torch.arange(min(n, self.length)))

    def keep(self, index: torch.Tensor) -> None:
        """Keep only the cached columns in `index` (1-D, shared by all rows)."""
        if self.positions is None:
            return
        for i in range(self.n_layers):
            if self.k[i] is not None:
                self.k[i] = self.k[i][:, :, index]
                self.v[i] = self.v[i][:, :, index]
        self.positions = self.positions[:, index]
        self.valid = self.valid[:, index]
        if self.positions.shape[1] == 0:
            self.positions = self.valid = None
            self.k = [None] * self.n_layers
            self.v = [None] * self.n_layers
