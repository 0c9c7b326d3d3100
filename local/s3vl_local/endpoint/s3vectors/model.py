"""botocore's ``s3vectors`` service model as the specification of every request.

:func:`check_input` walks a request body against the operation's input shape and reports every
violated constraint the model states (required members, string and list lengths, integer
ranges, enums, ARN patterns, unknown types), in the Smithy server wording AWS services use::

    1 validation error detected. Value with length 64 at '/vectorBucketName' failed to satisfy
    constraint: Member must have length between 3 and 63, inclusive

botocore itself checks only minimums and types client-side; maximums are the server's job.
Large float lists (vector data) are not walked element by element here: :mod:`.backend`
converts them with numpy and checks them there.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import botocore.session
from botocore.model import ListShape, MapShape, OperationModel, ServiceModel, Shape, StructureShape


@functools.cache
def service_model() -> ServiceModel:
    return botocore.session.get_session().get_service_model("s3vectors")


@functools.cache
def operation(name: str) -> OperationModel:
    return service_model().operation_model(name)


def operation_names() -> list[str]:
    return list(service_model().operation_names)


def _bounds(shape: Shape) -> tuple[int | None, int | None]:
    return shape.metadata.get("min"), shape.metadata.get("max")


def _between(lo: int | None, hi: int | None) -> str:
    if lo is not None and hi is not None:
        return f"between {lo} and {hi}, inclusive"
    if lo is not None:
        return f"greater than or equal to {lo}"
    return f"less than or equal to {hi}"


def _fail(out: list[tuple[str, str]], path: str, value: str, constraint: str) -> None:
    """Record ``Value <value> at '<path>' failed to satisfy constraint: Member must <constraint>``."""
    prefix = f"Value {value} at" if value else "Value at"
    out.append((path, f"{prefix} '{path}' failed to satisfy constraint: Member must {constraint}"))


def check_input(op_name: str, params: dict[str, Any]) -> list[tuple[str, str]]:
    """Every constraint violation as ``(path, message)``; empty when the request is valid."""
    shape = operation(op_name).input_shape
    problems: list[tuple[str, str]] = []
    if shape is not None:
        _check_structure(shape, params, "", problems)
    return problems


def _check_structure(shape: StructureShape, value: Any, path: str, out: list[tuple[str, str]]) -> None:
    if not isinstance(value, dict):
        _fail(out, path or "/", "", "be a structure")
        return
    for name in shape.required_members:
        if value.get(name) is None:
            _fail(out, f"{path}/{name}", "null", "not be null")
    for name, member in shape.members.items():
        if name in value and value[name] is not None:
            _check(member, value[name], f"{path}/{name}", out)


def _check_length(shape: Shape, n: int, path: str, out: list[tuple[str, str]]) -> None:
    lo, hi = _bounds(shape)
    if (lo is not None and n < lo) or (hi is not None and n > hi):
        _fail(out, path, f"with length {n}", f"have length {_between(lo, hi)}")


def _check(shape: Shape, value: Any, path: str, out: list[tuple[str, str]]) -> None:
    t = shape.type_name
    if t == "structure":
        if shape.metadata.get("document"):
            return
        assert isinstance(shape, StructureShape)
        if (
            shape.metadata.get("union")
            and isinstance(value, dict)
            and len([v for v in value.values() if v is not None]) != 1
        ):
            _fail(out, path, "", "have exactly one member set")
        _check_structure(shape, value, path, out)
    elif t == "string":
        if not isinstance(value, str):
            _fail(out, path, "", "be a string")
            return
        _check_length(shape, len(value), path, out)
        enum = shape.metadata.get("enum")
        if enum and value not in enum:
            _fail(out, path, f"'{value}'", f"satisfy enum value set: [{', '.join(enum)}]")
        pattern = shape.metadata.get("pattern")
        if pattern and "\\p" not in pattern and not _fullmatch(pattern, value):
            _fail(out, path, f"'{value}'", f"satisfy regular expression pattern: {pattern}")
    elif t in ("integer", "long"):
        if isinstance(value, bool) or not isinstance(value, int):
            _fail(out, path, "", "be an integer")
            return
        lo, hi = _bounds(shape)
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            _fail(out, path, str(value), f"be {_between(lo, hi)}")
    elif t == "boolean":
        if not isinstance(value, bool):
            _fail(out, path, "", "be a boolean")
    elif t == "list":
        assert isinstance(shape, ListShape)
        if not isinstance(value, list):
            _fail(out, path, "", "be a list")
            return
        _check_length(shape, len(value), path, out)
        if shape.member.type_name in ("float", "double"):
            return  # vector data: checked with numpy by the backend
        for i, item in enumerate(value):
            _check(shape.member, item, f"{path}/{i}", out)
    elif t == "map":
        assert isinstance(shape, MapShape)
        if not isinstance(value, dict):
            _fail(out, path, "", "be a map")
            return
        _check_length(shape, len(value), path, out)
        for k, v in value.items():
            _check(shape.key, k, f"{path}/{k}", out)
            _check(shape.value, v, f"{path}/{k}", out)


@functools.cache
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _fullmatch(pattern: str, value: str) -> bool:
    return _compiled(pattern).fullmatch(value) is not None
