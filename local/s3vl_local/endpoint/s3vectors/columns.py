"""Columnar metadata for fast filtered queries: one :class:`Column` per filterable key.

A filter is evaluated into a boolean mask over an index's slots with numpy, so a filtered
query over 100,000 vectors costs a few milliseconds instead of 100,000 Python dict walks.
Semantics are exactly :func:`.filters.matches` (the reference evaluator; tests compare them).

Per column: ``present`` (bool), ``num`` (float64, NaN if not a number), ``code`` (int32 string
code, -1 if not a string, codes from a per-column vocabulary), ``boo`` (int8: -1/0/1), and
``lists`` (slot -> list) for array values, which are evaluated element-wise in Python (they
are rare in practice, and the vectorised path still handles the scalar rows).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from s3vl_local.endpoint.s3vectors.filters import RANGE_OPS, is_number, matches

BoolArray = npt.NDArray[np.bool_]


class Column:
    def __init__(self, capacity: int) -> None:
        self.present = np.zeros(capacity, dtype=bool)
        self.num = np.full(capacity, np.nan, dtype=np.float64)
        self.code = np.full(capacity, -1, dtype=np.int32)
        self.boo = np.full(capacity, -1, dtype=np.int8)
        self.lists: dict[int, list[Any]] = {}
        self.vocab: dict[str, int] = {}

    def grow(self, capacity: int) -> None:
        n = len(self.present)
        if capacity <= n:
            return
        self.present = np.concatenate([self.present, np.zeros(capacity - n, dtype=bool)])
        self.num = np.concatenate([self.num, np.full(capacity - n, np.nan)])
        self.code = np.concatenate([self.code, np.full(capacity - n, -1, dtype=np.int32)])
        self.boo = np.concatenate([self.boo, np.full(capacity - n, -1, dtype=np.int8)])

    def clear(self, slot: int) -> None:
        self.present[slot] = False
        self.num[slot] = np.nan
        self.code[slot] = -1
        self.boo[slot] = -1
        self.lists.pop(slot, None)

    def set(self, slot: int, value: Any) -> None:
        self.clear(slot)
        self.present[slot] = True
        if isinstance(value, list):
            self.lists[slot] = list(value)
        elif isinstance(value, bool):
            self.boo[slot] = int(value)
        elif isinstance(value, str):
            self.code[slot] = self.vocab.setdefault(value, len(self.vocab))
        elif is_number(value):
            self.num[slot] = float(value)

    def _scalar_eq(self, operand: Any) -> BoolArray:
        if isinstance(operand, bool):
            eq: BoolArray = self.boo == int(operand)
            return eq
        if isinstance(operand, str):
            code = self.vocab.get(operand)
            if code is None:
                return np.zeros(len(self.present), dtype=bool)
            eq = self.code == code
            return eq
        eq = self.num == float(operand)
        return eq

    def _list_mask(self, predicate: Any) -> BoolArray:
        mask = np.zeros(len(self.present), dtype=bool)
        for slot, values in self.lists.items():
            if predicate(values):
                mask[slot] = True
        return mask

    def eq(self, operand: Any) -> BoolArray:
        mask = self._scalar_eq(operand)
        if self.lists:
            mask |= self._list_mask(lambda vs: matches({"k": {"$eq": operand}}, {"k": vs}))
        return mask

    def in_(self, operands: list[Any]) -> BoolArray:
        mask = np.zeros(len(self.present), dtype=bool)
        for operand in operands:
            mask |= self.eq(operand)
        return mask

    def range(self, op: str, operand: float) -> BoolArray:
        with np.errstate(invalid="ignore"):
            if op == "$gt":
                mask = self.num > operand
            elif op == "$gte":
                mask = self.num >= operand
            elif op == "$lt":
                mask = self.num < operand
            else:
                mask = self.num <= operand
        if self.lists:
            mask |= self._list_mask(lambda vs: matches({"k": {op: operand}}, {"k": vs}))
        return mask


def evaluate(flt: Mapping[str, Any], columns: Mapping[str, Column], capacity: int) -> BoolArray:
    """The mask of slots matching a validated filter (dead slots are the caller's to mask)."""
    mask = np.ones(capacity, dtype=bool)
    for key, cond in flt.items():
        if key == "$and":
            for sub in cond:
                mask &= evaluate(sub, columns, capacity)
        elif key == "$or":
            any_mask = np.zeros(capacity, dtype=bool)
            for sub in cond:
                any_mask |= evaluate(sub, columns, capacity)
            mask &= any_mask
        else:
            mask &= _condition(columns.get(key), cond, capacity)
    return mask


def _condition(col: Column | None, cond: Any, capacity: int) -> BoolArray:
    if col is None:
        # No vector has (or ever had) this key: only {"$exists": false} can match.
        ok = isinstance(cond, dict) and all(op == "$exists" and v is False for op, v in cond.items())
        return np.full(capacity, ok, dtype=bool)
    if not isinstance(cond, dict):
        return col.present & col.eq(cond)
    mask = np.ones(capacity, dtype=bool)
    for op, operand in cond.items():
        if op == "$exists":
            mask &= col.present if operand else ~col.present
        elif op == "$eq":
            mask &= col.present & col.eq(operand)
        elif op == "$ne":
            mask &= col.present & ~col.eq(operand)
        elif op in RANGE_OPS:
            mask &= col.present & col.range(op, float(operand))
        elif op == "$in":
            mask &= col.present & col.in_(operand)
        elif op == "$nin":
            mask &= col.present & ~col.in_(operand)
    return mask
