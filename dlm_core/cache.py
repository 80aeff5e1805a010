"""Key/value cache passed into the model, never threaded through layer signatures.

A KVCache holds, per layer, keys and values for a set of earlier positions (with their absolute
positions and a validity mask, so batched rows may be padded). A forward call reads the cache; inside
`with cache.writing(keep):` it also appends the keys/values it computed (all of them, or only the
query columns in `keep`). The writes are staged during the forward and land together at its end, so a
forward that fails half way leaves the cache as it was.

Which entries stay is the sampler's business: `truncate(n)` drops the tail, `keep(index)` keeps
chosen columns (for a dual cache). The engine batches row caches with `KVCache.batched` and hands
each row its new columns back with `append_row`.

Exactness: for "block_causal" and "causal" models a cached prefix of whole committed blocks is
exact. For "bidirectional" models a prefix cache is an approximation (the prefix's keys were
computed when later positions held other tokens), as in Fast-dLLM.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F


class KVCache:
    def __init__(self, n_layers: int):
        self.n_layers = n_layers
        self.k: list[torch.Tensor | None] = [None] * n_layers  # each [B, Hkv, T, hd]
        self.v: list[torch.Tensor | None] = [None] * n_layers
        self.positions: torch.Tensor | None = None  # [B, T]
        self.valid: torch.Tensor | None = None  # [B, T] bool
        self._writing = False  # inside `writing()`: the forward's keys/values are kept
        self._keep: torch.Tensor | None = None  # query columns to keep (None: all)
        self._staged: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * n_layers
        self._pending: tuple[torch.Tensor, torch.Tensor] | None = None  # this call's positions, valid

    @property
    def length(self) -> int:
        return 0 if self.positions is None else self.positions.shape[1]

    @contextmanager
    def writing(self, keep: torch.Tensor | None = None) -> Iterator[KVCache]:
        """Forward passes inside this block append their keys/values: every query column, or only the
        query columns in `keep` (1-D indices into the forward's tokens)."""
        self._writing, self._keep = True, keep
        try:
            yield self
        finally:
            self._writing, self._keep = False, None
            self._staged = [None] * self.n_layers

    # ---- the model's side: begin, keys_values per layer, end ------------------------------------

    def begin(self, positions: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Called by the model before its layers: returns key positions/validity for this call."""
        self._pending = (positions, valid)
        if self.positions is None:
            return positions, valid
        return torch.cat([self.positions, positions], 1), torch.cat([self.valid, valid], 1)

    def keys_values(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Cached keys/values of `layer` followed by this call's. k, v: [B, Hkv, S, hd]."""
        old_k, old_v = self.k[layer], self.v[layer]
        full_k = k if old_k is None else torch.cat([old_k, k], 2)
        full_v = v if old_v is None else torch.cat([old_v, v], 2)
        if self._writing:
            self._staged[layer] = (full_k, full_v)
        return full_k, full_v

    def end(self) -> None:
        """Called by the model after its layers: lands the staged writes."""
        positions, valid = self._pending
        self._pending = None
        if not self._writing:
            return
        old = self.length
        full_pos = positions if self.positions is None else torch.cat([self.positions, positions], 1)
        full_valid = valid if self.valid is None else torch.cat([self.valid, valid], 1)
        for layer, staged in enumerate(self._staged):
            if staged is not None:
                self.k[layer], self.v[layer] = staged
        self._staged = [None] * self.n_layers
        self.positions, self.valid = full_pos, full_valid
        if self._keep is not None and len(self._keep) < positions.shape[1]:
            self.keep(torch.cat([torch.arange(old), old + self._keep.cpu()]))

    # ---- the sampler's side: which columns stay -------------------------------------------------

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

    # ---- the engine's side: one batched cache from row caches, and back -------------------------

    @classmethod
    def batched(cls, caches: list[KVCache | None], n_layers: int) -> KVCache:
        """One cache of len(caches) rows, each row's columns left-padded with invalid keys to the
        longest row's length T (rows without a cache are all padding)."""
        merged = cls(n_layers)
        T = max((c.length for c in caches if c is not None), default=0)
        if T == 0:
            return merged
        full = next(c for c in caches if c is not None and c.length == T)
        lengths = [c.length if c is not None else 0 for c in caches]
        device = full.positions.device
        rows_pos, rows_valid = [], []
        for c, n in zip(caches, lengths):
            pos = torch.zeros(1, T, dtype=torch.long, device=device)
            val = torch.zeros(1, T, dtype=torch.bool, device=device)
            if n:
                pos[:, T - n :] = c.positions
                val[:, T - n :] = c.valid
            rows_pos.append(pos)
            rows_valid.append(val)
        merged.positions = torch.cat(rows_pos)  # [B, T]
        merged.valid = torch.cat(rows_valid)
        for layer in range(n_layers):
            template = full.k[layer]  # [1, Hkv, T, hd]: the shape and dtype of a padding row
            rows = [(c.k[layer], c.v[layer]) if n else (None, None) for c, n in zip(caches, lengths)]
            merged.k[layer] = torch.cat([_left_pad(k, n, template) for (k, _), n in zip(rows, lengths)])
            merged.v[layer] = torch.cat([_left_pad(v, n, template) for (_, v), n in zip(rows, lengths)])
        assert merged.positions.shape == (len(caches), T), merged.positions.shape
        return merged

    def append_row(self, batched: KVCache, row: int, cols: torch.Tensor) -> None:
        """Append columns `cols` of row `row` of a batched cache to this one-row cache."""
        for layer in range(self.n_layers):
            k = batched.k[layer][row : row + 1, :, cols]
            v = batched.v[layer][row : row + 1, :, cols]
            self.k[layer] = k if self.k[layer] is None else torch.cat([self.k[layer], k], 2)
            self.v[layer] = v if self.v[layer] is None else torch.cat([self.v[layer], v], 2)
        pos = batched.positions[row : row + 1, cols]
        val = batched.valid[row : row + 1, cols]
        if self.positions is None:
            self.positions, self.valid = pos, val
        else:
            self.positions = torch.cat([self.positions, pos], 1)
            self.valid = torch.cat([self.valid, val], 1)


def _left_pad(x: torch.Tensor | None, n: int, template: torch.Tensor) -> torch.Tensor:
    """A row's n cached columns, x: [1, Hkv, n, hd], left-padded with zeros to template's length."""
    T = template.shape[2]
    if n == T:
        return x
    if n == 0:
        return torch.zeros(template.shape, dtype=template.dtype, device=template.device)
    return F.pad(x, (0, 0, T - n, 0))


@dataclass
class PromptCache:
    """Keys/values of a conversation's earlier tokens, kept across turns by the engine.

    `ids` are the token ids whose keys/values `kv` holds, in order from position 0.
    """

    kv: KVCache
    ids: list[int] = field(default_factory=list)
