"""The S3 Vectors metadata filter language: validation and a reference evaluator (pure).

Operators (AWS User Guide, "Metadata filtering"):

==========  ===================================  ===========================================
``$eq``     string, number, boolean              exact match; on an array value, matches if
                                                 any element equals the operand
``$ne``     string, number, boolean              not equal
``$gt`` ``$gte`` ``$lt`` ``$lte``  number        numeric comparison
``$in``     non-empty array of primitives        matches any value in the array
``$nin``    non-empty array of primitives        matches none of the values
``$exists`` boolean                              whether the key is present
``$and`` ``$or``  non-empty array of filters     logical AND / OR
==========  ===================================  ===========================================

``{"genre": "drama"}`` is an implicit ``$eq``; several keys in one object are an implicit
``$and``; ``{"year": {"$gte": 2019, "$lt": 2024}}`` applies both operators.

Decisions where AWS does not document the behaviour (kept identical in :mod:`.columns`):

* Types never coerce: ``true`` does not equal ``1`` and ``"5"`` does not equal ``5``.
* Range operators match number values only (an array value matches if any number in it does).
* ``$ne`` / ``$nin`` match a vector only when the key is present (and, for an array value, when
  no element equals an operand). Combine with ``{"$exists": false}`` through ``$or`` for the
  MongoDB reading.
* Filtering on a non-filterable key is a ValidationException (the AWS User Guide: 400).

:func:`validate_filter` raises :class:`FilterError` with the message returned to the client;
:func:`matches` evaluates a validated filter against one vector's metadata (used by tests as the
reference for the vectorised evaluator in :mod:`.columns`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

COMPARISON_OPS = frozenset({"$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists"})
LOGICAL_OPS = frozenset({"$and", "$or"})
RANGE_OPS = frozenset({"$gt", "$gte", "$lt", "$lte"})


class FilterError(ValueError):
    """The filter is not valid; ``str(exc)`` is the message for the ValidationException."""


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_primitive(value: Any) -> bool:
    return isinstance(value, str | bool) or is_number(value)


def validate_filter(flt: Any, non_filterable: Collection[str] = ()) -> None:
    """Check the filter's shape, operators and operand types; raise :class:`FilterError`."""
    if not isinstance(flt, dict):
        raise FilterError("Invalid filter: the filter must be a JSON object")
    if not flt:
        raise FilterError("Invalid filter: the filter must not be empty")
    _validate_object(flt, non_filterable)


def _validate_object(obj: Mapping[str, Any], non_filterable: Collection[str]) -> None:
    for key, value in obj.items():
        if key in LOGICAL_OPS:
            if not isinstance(value, list) or not value:
                raise FilterError(f"Invalid filter: {key} requires a non-empty array of filters")
            for sub in value:
                if not isinstance(sub, dict) or not sub:
                    raise FilterError(f"Invalid filter: each element of {key} must be a non-empty object")
                _validate_object(sub, non_filterable)
        elif key.startswith("$"):
            raise FilterError(f"Invalid filter: unsupported operator {key}")
        else:
            if key in non_filterable:
                raise FilterError(f"Invalid filter: metadata key '{key}' is not filterable")
            _validate_condition(key, value)


def _validate_condition(key: str, cond: Any) -> None:
    if is_primitive(cond):
        return
    if not isinstance(cond, dict) or not cond:
        raise FilterError(f"Invalid filter: invalid condition for metadata key '{key}'")
    for op, operand in cond.items():
        if op not in COMPARISON_OPS:
            raise FilterError(f"Invalid filter: unsupported operator {op} for metadata key '{key}'")
        if op in ("$eq", "$ne"):
            if not is_primitive(operand):
                raise FilterError(f"Invalid filter: {op} requires a string, number or boolean")
        elif op in RANGE_OPS:
            if not is_number(operand):
                raise FilterError(f"Invalid filter: {op} requires a number")
        elif op in ("$in", "$nin"):
            if not isinstance(operand, list) or not operand or not all(is_primitive(v) for v in operand):
                raise FilterError(f"Invalid filter: {op} requires a non-empty array of primitives")
        elif op == "$exists" and not isinstance(operand, bool):
            raise FilterError("Invalid filter: $exists requires a boolean")


def same(a: Any, b: Any) -> bool:
    """Equality without type coercion (``True != 1``, ``1 == 1.0``)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, str) or isinstance(b, str):
        return isinstance(a, str) and isinstance(b, str) and a == b
    return is_number(a) and is_number(b) and float(a) == float(b)


def _elements(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


def _eq(value: Any, operand: Any) -> bool:
    return any(same(v, operand) for v in _elements(value))


def _range(value: Any, op: str, operand: float) -> bool:
    for v in _elements(value):
        if not is_number(v):
            continue
        x = float(v)
        if (
            (op == "$gt" and x > operand)
            or (op == "$gte" and x >= operand)
            or (op == "$lt" and x < operand)
            or (op == "$lte" and x <= operand)
        ):
            return True
    return False


def matches(flt: Mapping[str, Any], metadata: Mapping[str, Any] | None) -> bool:
    """Does ``metadata`` satisfy the (validated) filter?"""
    md = metadata or {}
    for key, cond in flt.items():
        if key == "$and":
            if not all(matches(sub, md) for sub in cond):
                return False
        elif key == "$or":
            if not any(matches(sub, md) for sub in cond):
                return False
        elif not _condition(md, key, cond):
            return False
    return True


def _condition(md: Mapping[str, Any], key: str, cond: Any) -> bool:
    present = key in md
    value = md.get(key)
    if not isinstance(cond, dict):
        return present and _eq(value, cond)
    for op, operand in cond.items():
        if op == "$exists":
            ok = present == operand
        elif not present:
            ok = False
        elif op == "$eq":
            ok = _eq(value, operand)
        elif op == "$ne":
            ok = not _eq(value, operand)
        elif op in RANGE_OPS:
            ok = _range(value, op, float(operand))
        elif op == "$in":
            ok = any(_eq(value, o) for o in operand)
        elif op == "$nin":
            ok = not any(_eq(value, o) for o in operand)
        else:  # pragma: no cover - validated
            raise FilterError(f"unsupported operator {op}")
        if not ok:
            return False
    return True


def referenced_keys(flt: Mapping[str, Any]) -> set[str]:
    """Every metadata key the filter mentions."""
    keys: set[str] = set()
    for key, cond in flt.items():
        if key in LOGICAL_OPS:
            for sub in cond:
                keys |= referenced_keys(sub)
        else:
            keys.add(key)
    return keys
