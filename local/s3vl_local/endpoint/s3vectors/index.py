"""One vector index in memory: a float32 matrix, metadata columns and text indexes.

Slots: each key owns a row of the matrix; deleting frees the slot for reuse, growing doubles
the capacity. Queries are exact brute force (recall 1.0): one matrix-vector product over the
live rows, a filter mask from :mod:`.columns`, then ``argpartition`` for the top K. Ties are
broken by key (ascending), so results are deterministic.

Thread safety: callers hold :attr:`VectorIndex.lock` for every read and write.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from s3vl_local.endpoint.s3vectors import columns as columns_mod
from s3vl_local.endpoint.s3vectors.store import IndexRow
from s3vl_local.endpoint.s3vectors.text import TextIndex, text_of

F32 = npt.NDArray[np.float32]


@dataclass
class Hit:
    key: str
    slot: int
    distance: float


class VectorIndex:
    def __init__(self, row: IndexRow, capacity: int = 1024) -> None:
        self.row = row
        self.lock = threading.RLock()
        self.dim = row.dimension
        self.capacity = capacity
        self.matrix: F32 = np.zeros((capacity, self.dim), dtype=np.float32)
        self.sqnorm = np.zeros(capacity, dtype=np.float32)
        self.alive = np.zeros(capacity, dtype=bool)
        self.keys: list[str | None] = [None] * capacity
        self.metadata: list[dict[str, Any] | None] = [None] * capacity
        self.slots: dict[str, int] = {}
        self.free: list[int] = []
        self.high = 0  # slots [0, high) have been used
        self.columns: dict[str, columns_mod.Column] = {}
        self.text: dict[str, TextIndex] = {c["metadataKey"]: TextIndex() for c in row.text_search}

    # -- configuration --------------------------------------------------------------------
    @property
    def non_filterable(self) -> set[str]:
        return set(self.row.non_filterable)

    def rebuild_text(self, keys: Sequence[str]) -> None:
        """(Re)build text indexes for searchable ``keys`` from the stored metadata."""
        for mkey in keys:
            tix = TextIndex()
            for slot in range(self.high):
                md = self.metadata[slot]
                if self.alive[slot] and md is not None and mkey in md:
                    text = text_of(md[mkey])
                    if text is not None:
                        tix.add(slot, text)
            self.text[mkey] = tix

    # -- writes ---------------------------------------------------------------------------
    def _grow(self, needed: int) -> None:
        if needed <= self.capacity:
            return
        cap = self.capacity
        while cap < needed:
            cap *= 2
        matrix = np.zeros((cap, self.dim), dtype=np.float32)
        matrix[: self.capacity] = self.matrix
        self.matrix = matrix
        self.sqnorm = np.concatenate([self.sqnorm, np.zeros(cap - self.capacity, dtype=np.float32)])
        self.alive = np.concatenate([self.alive, np.zeros(cap - self.capacity, dtype=bool)])
        self.keys.extend([None] * (cap - self.capacity))
        self.metadata.extend([None] * (cap - self.capacity))
        for col in self.columns.values():
            col.grow(cap)
        self.capacity = cap

    def _slot_for(self, key: str) -> int:
        slot = self.slots.get(key)
        if slot is not None:
            return slot
        if self.free:
            slot = self.free.pop()
        else:
            self._grow(self.high + 1)
            slot = self.high
            self.high += 1
        self.slots[key] = slot
        self.keys[slot] = key
        return slot

    def put(self, keys: Sequence[str], data: F32, metadata: Sequence[dict[str, Any] | None]) -> None:
        """Insert or replace; ``data`` is ``(len(keys), dim)`` float32."""
        self._grow(self.high + len(keys))
        slots = [self._slot_for(k) for k in keys]
        idx = np.asarray(slots, dtype=np.int64)
        self.matrix[idx] = data
        self.sqnorm[idx] = np.einsum("ij,ij->i", data, data)
        self.alive[idx] = True
        non_filterable = self.non_filterable
        for slot, md in zip(slots, metadata, strict=True):
            self._clear_metadata(slot)
            self.metadata[slot] = md
            if not md:
                continue
            for mkey, value in md.items():
                if mkey in self.text:
                    text = text_of(value)
                    if text is not None:
                        self.text[mkey].add(slot, text)
                if mkey in non_filterable:
                    continue
                col = self.columns.get(mkey)
                if col is None:
                    col = self.columns[mkey] = columns_mod.Column(self.capacity)
                col.set(slot, value)

    def _clear_metadata(self, slot: int) -> None:
        old = self.metadata[slot]
        if old:
            for mkey in old:
                col = self.columns.get(mkey)
                if col is not None:
                    col.clear(slot)
                tix = self.text.get(mkey)
                if tix is not None:
                    tix.remove(slot)
        self.metadata[slot] = None

    def delete(self, keys: Sequence[str]) -> int:
        removed = 0
        for key in keys:
            slot = self.slots.pop(key, None)
            if slot is None:
                continue
            self._clear_metadata(slot)
            self.alive[slot] = False
            self.keys[slot] = None
            self.free.append(slot)
            removed += 1
        return removed

    def __len__(self) -> int:
        return len(self.slots)

    # -- reads ----------------------------------------------------------------------------
    def get(self, key: str) -> tuple[F32, dict[str, Any] | None] | None:
        slot = self.slots.get(key)
        if slot is None:
            return None
        return self.matrix[slot], self.metadata[slot]

    def filter_mask(self, flt: Mapping[str, Any] | None) -> npt.NDArray[np.bool_]:
        mask = self.alive[: self.high].copy()
        if flt:
            mask &= columns_mod.evaluate(flt, self.columns, self.capacity)[: self.high]
        return mask

    def distances(self, query: F32, slots: npt.NDArray[np.intp] | None = None) -> F32:
        """Distance to ``query`` of every used slot (dead ones included: mask them), or of
        ``slots`` only (a selective filter then reads a fraction of the matrix)."""
        if slots is None:
            m = self.matrix[: self.high]
            sqnorm = self.sqnorm[: self.high]
        else:
            m = self.matrix[slots]
            sqnorm = self.sqnorm[slots]
        dots = m @ query
        if self.row.metric == "cosine":
            qn = float(np.sqrt(np.dot(query, query)))
            norms = np.sqrt(sqnorm) * qn
            with np.errstate(invalid="ignore", divide="ignore"):
                sim = np.where(norms > 0, dots / norms, 0.0)
            return (1.0 - sim).astype(np.float32)
        sq = sqnorm - 2.0 * dots + float(np.dot(query, query))
        return np.sqrt(np.maximum(sq, 0.0)).astype(np.float32)

    def nearest(self, query: F32, k: int, mask: npt.NDArray[np.bool_]) -> list[Hit]:
        """The ``k`` nearest live slots passing ``mask``, ties broken by key."""
        candidates = np.flatnonzero(mask)
        if candidates.size == 0:
            return []
        if candidates.size * 2 < self.high:
            dist = self.distances(query, candidates)
        else:
            dist = self.distances(query)[candidates]
        if candidates.size > k:
            # Take everything tied with the k-th distance so the key tie-break is exact.
            part = np.argpartition(dist, k - 1)
            kth = dist[part[k - 1]]
            chosen = np.flatnonzero(dist <= kth)
        else:
            chosen = np.arange(candidates.size)
        if self.row.metric == "euclidean":
            # Recompute the chosen few exactly (the expanded form above loses digits).
            rows = self.matrix[candidates[chosen]] - query
            dist[chosen] = np.sqrt(np.einsum("ij,ij->i", rows, rows))
        hits = [Hit(self.keys[int(candidates[i])] or "", int(candidates[i]), float(dist[i])) for i in chosen]
        hits.sort(key=lambda h: (h.distance, h.key))
        return hits[:k]
