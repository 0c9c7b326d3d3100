"""Validate every request before any AWS call: types, sizes, NaN/Inf, topK, filter shape.

One frozen dataclass per operation, built by :func:`parse`. Plain Python (no pydantic) so the
function needs nothing beyond the Lambda runtime's boto3. A bad request raises
:class:`~s3vl_query.errors.InvalidRequestError` / ``InvalidArgumentError`` /
``InvalidFilterError`` / ``DimensionMismatchError`` naming the offending field.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from s3vl_query.errors import (
    DimensionMismatchError,
    InvalidArgumentError,
    InvalidFilterError,
    InvalidRequestError,
)

# Limits (S3 Vectors service limits where they exist; ours otherwise, stated here once).
MAX_DIMENSION = 4096  # S3 Vectors: index dimension 1..4096
MAX_TOP_K = 10_000  # s3vl: QueryVectors pages followed through nextToken up to this many results
MAX_GET_KEYS = 1_000  # s3vl: GetVectors takes 100 keys per call; we batch up to this many
MAX_LIST_RESULTS = 1_000  # S3 Vectors: ListVectors maxResults 1..1000
MAX_KEY_LENGTH = 1_024  # S3 Vectors: vector key 1..1024 characters
MAX_NEXT_TOKEN = 4_096  # S3 Vectors: nextToken 1..4096 characters
MAX_FILTER_BYTES = 64 * 1024  # s3vl: a filter bigger than this is a mistake, not a query
MAX_FILTER_DEPTH = 8  # s3vl: filter objects nested in $and/$or (the SQL side checks the same)
MAX_TEXT_CHARS = 50_000  # Bedrock Titan v2: inputText up to 50,000 characters
MAX_QUERY_TEXT_CHARS = 1_024  # S3 Vectors: a queryTexts entry is 1..1024 characters
MAX_SOURCE_IDS = 10_000  # s3vl: candidate source IDs for pre-filtering
MAX_IN_FILTER_IDS = 500  # s3vl: above this many IDs, 'auto' pre-filtering over-fetches instead
FLOAT32_MAX = 3.4028234663852886e38

INDEX_ARN_RE = re.compile(
    r"^arn:aws[-a-z0-9]*:s3vectors:[a-z0-9-]+:[0-9]{12}:"
    r"bucket/[a-z0-9][a-z0-9-.]{1,61}[a-z0-9]/index/[a-z0-9][a-z0-9-.]{1,61}[a-z0-9]$"
)
MODEL_ID_RE = re.compile(r"^[a-zA-Z0-9._:/-]{1,2048}$")
COMPARISON_OPS = {"$eq", "$ne", "$gt", "$gte", "$lt", "$lte"}
LIST_OPS = {"$in", "$nin"}
LOGICAL_OPS = {"$and", "$or"}
PREFILTER_MODES = ("auto", "filter", "overfetch")


# --- field helpers ---------------------------------------------------------------------------


def _field(event: Mapping[str, Any], name: str, default: Any = ..., *, required: bool = False) -> Any:
    if name in event and event[name] is not None:
        return event[name]
    if required or default is ...:
        raise InvalidArgumentError(f"{name} is required")
    return default


def _bool(event: Mapping[str, Any], name: str, default: bool) -> bool:
    value = _field(event, name, default)
    if not isinstance(value, bool):
        raise InvalidArgumentError(f"{name} must be a boolean, got {type(value).__name__}")
    return value


def _int(event: Mapping[str, Any], name: str, default: Any, low: int, high: int) -> int:
    value = _field(event, name, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgumentError(f"{name} must be an integer, got {type(value).__name__}")
    if not low <= value <= high:
        raise InvalidArgumentError(f"{name} must be between {low} and {high}, got {value}")
    return value


def _str(event: Mapping[str, Any], name: str, default: Any, max_len: int, *, min_len: int = 1) -> str:
    value = _field(event, name, default)
    if not isinstance(value, str):
        raise InvalidArgumentError(f"{name} must be a string, got {type(value).__name__}")
    if not min_len <= len(value) <= max_len:
        raise InvalidArgumentError(f"{name} must be {min_len} to {max_len} characters long, got {len(value)}")
    return value


def _opt_str(event: Mapping[str, Any], name: str, max_len: int) -> str | None:
    if event.get(name) is None:
        return None
    return _str(event, name, None, max_len)


def index_arn(event: Mapping[str, Any]) -> str:
    value = _str(event, "index_arn", ..., 2048)
    if not INDEX_ARN_RE.match(value):
        raise InvalidArgumentError(
            "index_arn is not an S3 Vectors index ARN "
            "(arn:aws:s3vectors:<region>:<account>:bucket/<bucket>/index/<index>)"
        )
    return value


def region_of(arn: str) -> str:
    return arn.split(":")[3]


def vector(value: Any, name: str, expected_dimension: int | None) -> tuple[float, ...]:
    if not isinstance(value, list):
        raise InvalidArgumentError(f"{name} must be an array of numbers, got {type(value).__name__}")
    if not 1 <= len(value) <= MAX_DIMENSION:
        raise InvalidArgumentError(f"{name} must have 1 to {MAX_DIMENSION} elements, got {len(value)}")
    out: list[float] = []
    for i, item in enumerate(value):
        if isinstance(item, bool) or not isinstance(item, int | float):
            raise InvalidArgumentError(f"{name}[{i + 1}] must be a number, got {type(item).__name__}")
        number = float(item)
        if math.isnan(number) or math.isinf(number):
            raise InvalidArgumentError(f"{name}[{i + 1}] is {number}: NaN and infinity are not allowed")
        if abs(number) > FLOAT32_MAX:
            raise InvalidArgumentError(f"{name}[{i + 1}] = {number} does not fit in float32")
        out.append(number)
    if expected_dimension is not None and len(out) != expected_dimension:
        raise DimensionMismatchError(
            f"{name} has {len(out)} dimensions but the index has {expected_dimension}"
        )
    return tuple(out)


def _dimension(event: Mapping[str, Any]) -> int | None:
    if event.get("dimension") is None:
        return None
    return _int(event, "dimension", None, 1, MAX_DIMENSION)


# --- metadata filters --------------------------------------------------------------------------


def _scalar(value: Any) -> bool:
    return isinstance(value, str | bool | int | float) and not (
        isinstance(value, float) and (math.isnan(value) or math.isinf(value))
    )


def _finite_numbers(value: Any, path: str) -> None:
    for v in value if isinstance(value, list) else [value]:
        if isinstance(v, float) and (math.isnan(v) or math.isinf(v)):
            raise InvalidFilterError(f"{path}: numbers must be finite (within a double's range)")


def _check_condition(key: str, cond: Any, path: str) -> None:
    _finite_numbers(cond, path)
    if isinstance(cond, dict):
        for op, operand in cond.items():
            _finite_numbers(operand, f"{path}.{op}")
    if cond is None:
        raise InvalidFilterError(f"{path}: null matches nothing; use {{\"$exists\": false}} for a missing key")
    if _scalar(cond):
        return  # {"category": "test"} is {"category": {"$eq": "test"}}
    if not isinstance(cond, dict) or not cond:
        raise InvalidFilterError(
            f"{path}: a condition must be a string, number, boolean or a non-empty operator object"
        )
    for op, operand in cond.items():
        where = f"{path}.{op}"
        if op in COMPARISON_OPS:
            if not _scalar(operand):
                raise InvalidFilterError(f"{where}: operand must be a string, number or boolean")
            if op in {"$gt", "$gte", "$lt", "$lte"} and (
                isinstance(operand, bool) or not isinstance(operand, int | float)
            ):
                raise InvalidFilterError(f"{where}: range operators take a number")
        elif op in LIST_OPS:
            if not isinstance(operand, list) or not operand:
                raise InvalidFilterError(f"{where}: operand must be a non-empty array")
            if not all(_scalar(v) for v in operand):
                raise InvalidFilterError(f"{where}: array items must be strings, numbers or booleans")
        elif op == "$exists":
            if not isinstance(operand, bool):
                raise InvalidFilterError(f"{where}: operand must be true or false")
        else:
            raise InvalidFilterError(
                f"{where}: unknown operator; use $eq $ne $gt $gte $lt $lte $in $nin $exists $and $or"
            )


def _check_filter(node: Any, path: str, depth: int) -> None:
    if depth > MAX_FILTER_DEPTH:
        raise InvalidFilterError(f"{path}: nested deeper than {MAX_FILTER_DEPTH} levels")
    if not isinstance(node, dict) or not node:
        raise InvalidFilterError(f"{path}: must be a non-empty JSON object")
    for key, value in node.items():
        where = f"{path}.{key}"
        if key in LOGICAL_OPS:
            if not isinstance(value, list) or not value:
                raise InvalidFilterError(f"{where}: operand must be a non-empty array of filters")
            for i, sub in enumerate(value):
                _check_filter(sub, f"{where}[{i}]", depth + 1)
        elif key.startswith("$"):
            raise InvalidFilterError(f"{where}: only $and and $or may appear at this level")
        elif not key or len(key) > 63:
            raise InvalidFilterError(f"{where}: metadata keys are 1 to 63 characters")
        else:
            _check_condition(key, value, where)


def metadata_filter(event: Mapping[str, Any]) -> dict[str, Any] | None:
    value = event.get("metadata_filter")
    if value is None:
        return None
    _check_filter(value, "metadata_filter", 1)  # depth first: json.dumps recurses without a limit
    if len(json.dumps(value)) > MAX_FILTER_BYTES:
        raise InvalidFilterError(f"metadata_filter is larger than {MAX_FILTER_BYTES} bytes")
    assert isinstance(value, dict)
    return value


# --- requests ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Prefilter:
    """Restrict a query to vectors whose ``s3vl_id`` is one of ``source_ids``."""

    source_ids: tuple[str, ...]
    mode: str  # "filter" ($in on s3vl_id) | "overfetch" (query more, keep matches, re-rank)
    overfetch_factor: int


def _prefilter(event: Mapping[str, Any]) -> Prefilter | None:
    ids = event.get("source_ids")
    if ids is None:
        return None
    if not isinstance(ids, list):
        raise InvalidArgumentError("source_ids must be an array of strings")
    if len(ids) > MAX_SOURCE_IDS:
        raise InvalidArgumentError(f"source_ids has {len(ids)} items; at most {MAX_SOURCE_IDS}")
    for i, item in enumerate(ids):
        if not isinstance(item, str) or not item:
            raise InvalidArgumentError(f"source_ids[{i + 1}] must be a non-empty string")
    mode = _str(event, "prefilter", "auto", 16)
    if mode not in PREFILTER_MODES:
        raise InvalidArgumentError(f"prefilter must be one of {', '.join(PREFILTER_MODES)}, got {mode!r}")
    if mode == "auto":
        mode = "filter" if len(ids) <= MAX_IN_FILTER_IDS else "overfetch"
    factor = _int(event, "overfetch_factor", 10, 1, 100)
    return Prefilter(tuple(dict.fromkeys(ids)), mode, factor)


@dataclass(frozen=True)
class Ping:
    pass


@dataclass(frozen=True)
class GetIndex:
    index_arn: str


@dataclass(frozen=True)
class QueryVectors:
    index_arn: str
    query_vector: tuple[float, ...]
    top_k: int
    return_metadata: bool
    metadata_filter: dict[str, Any] | None
    prefilter: Prefilter | None


@dataclass(frozen=True)
class QueryText:
    index_arn: str
    query_text: str
    embedding_model: str
    dimension: int
    top_k: int
    return_metadata: bool
    metadata_filter: dict[str, Any] | None
    prefilter: Prefilter | None
    hybrid: bool | None  # None: hybrid when the index has searchable keys
    text_keys: tuple[str, ...] | None  # searchable keys to use; None: ask GetIndex


@dataclass(frozen=True)
class SimilarTo:
    index_arn: str
    vector_id: str
    top_k: int
    return_metadata: bool
    metadata_filter: dict[str, Any] | None
    include_self: bool


@dataclass(frozen=True)
class GetVectors:
    index_arn: str
    keys: tuple[str, ...]
    return_data: bool
    return_metadata: bool


@dataclass(frozen=True)
class ListVectors:
    index_arn: str
    max_results: int
    next_token: str | None
    return_data: bool
    return_metadata: bool
    segment_count: int | None
    segment_index: int | None


Request = Ping | GetIndex | QueryVectors | QueryText | SimilarTo | GetVectors | ListVectors


def _key(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise InvalidArgumentError(f"{name} must be a string, got {type(value).__name__}")
    if not 1 <= len(value) <= MAX_KEY_LENGTH:
        raise InvalidArgumentError(f"{name} must be 1 to {MAX_KEY_LENGTH} characters long")
    return value


def _query_vectors(event: Mapping[str, Any]) -> QueryVectors:
    return QueryVectors(
        index_arn=index_arn(event),
        query_vector=vector(_field(event, "query_vector", required=True), "query_vector", _dimension(event)),
        top_k=_int(event, "top_k", 10, 1, MAX_TOP_K),
        return_metadata=_bool(event, "return_metadata", True),
        metadata_filter=metadata_filter(event),
        prefilter=_prefilter(event),
    )


def _query_text(event: Mapping[str, Any]) -> QueryText:
    model = _str(event, "embedding_model", ..., 2048)
    if not MODEL_ID_RE.match(model):
        raise InvalidArgumentError("embedding_model is not a Bedrock model id")
    dimension = _dimension(event)
    if dimension is None:
        raise InvalidArgumentError("dimension is required")
    hybrid = event.get("hybrid")
    if hybrid is not None and not isinstance(hybrid, bool):
        raise InvalidArgumentError("hybrid must be a boolean or null")
    keys_raw = event.get("text_keys")
    text_keys: tuple[str, ...] | None = None
    if keys_raw is not None:
        if not isinstance(keys_raw, list) or len(keys_raw) > 10:
            raise InvalidArgumentError("text_keys must be an array of at most 10 metadata keys")
        text_keys = tuple(_str({"k": k}, "k", ..., 63) for k in keys_raw)
    text = _str(event, "query_text", ..., MAX_TEXT_CHARS)
    if not text.strip():
        raise InvalidArgumentError("query_text must not be blank")
    return QueryText(
        index_arn=index_arn(event),
        query_text=text,
        embedding_model=model,
        dimension=dimension,
        top_k=_int(event, "top_k", 10, 1, MAX_TOP_K),
        return_metadata=_bool(event, "return_metadata", True),
        metadata_filter=metadata_filter(event),
        prefilter=_prefilter(event),
        hybrid=hybrid,
        text_keys=text_keys,
    )


def _similar_to(event: Mapping[str, Any]) -> SimilarTo:
    return SimilarTo(
        index_arn=index_arn(event),
        vector_id=_key(_field(event, "vector_id", required=True), "vector_id"),
        top_k=_int(event, "top_k", 10, 1, MAX_TOP_K - 1),
        return_metadata=_bool(event, "return_metadata", True),
        metadata_filter=metadata_filter(event),
        include_self=_bool(event, "include_self", False),
    )


def _get_vectors(event: Mapping[str, Any]) -> GetVectors:
    keys = _field(event, "vector_ids", required=True)
    if not isinstance(keys, list) or not keys:
        raise InvalidArgumentError("vector_ids must be a non-empty array of strings")
    if len(keys) > MAX_GET_KEYS:
        raise InvalidArgumentError(f"vector_ids has {len(keys)} items; at most {MAX_GET_KEYS}")
    return GetVectors(
        index_arn=index_arn(event),
        keys=tuple(_key(k, f"vector_ids[{i + 1}]") for i, k in enumerate(keys)),
        return_data=_bool(event, "return_data", True),
        return_metadata=_bool(event, "return_metadata", True),
    )


def _list_vectors(event: Mapping[str, Any]) -> ListVectors:
    segment_count = None if event.get("segment_count") is None else _int(event, "segment_count", None, 1, 16)
    segment_index = None
    if segment_count is not None:
        segment_index = _int(event, "segment_index", ..., 0, segment_count - 1)
    elif event.get("segment_index") is not None:
        raise InvalidArgumentError("segment_index needs segment_count")
    return ListVectors(
        index_arn=index_arn(event),
        max_results=_int(event, "max_results", 100, 1, MAX_LIST_RESULTS),
        next_token=_opt_str(event, "next_token", MAX_NEXT_TOKEN),
        return_data=_bool(event, "return_data", False),
        return_metadata=_bool(event, "return_metadata", True),
        segment_count=segment_count,
        segment_index=segment_index,
    )


_PARSERS: dict[str, Callable[[Mapping[str, Any]], Request]] = {
    "ping": lambda e: Ping(),
    "availability_check": lambda e: Ping(),  # the published sample's name for ping
    "get_index": lambda e: GetIndex(index_arn(e)),
    "query_vectors": _query_vectors,
    "query_text": _query_text,
    "similar_to": _similar_to,
    "get_vectors": _get_vectors,
    "list_vectors": _list_vectors,
}
OPERATIONS: tuple[str, ...] = tuple(_PARSERS)


def parse(event: Any) -> Request:
    """The validated request for ``event``, or an error naming what is wrong."""
    if not isinstance(event, dict):
        raise InvalidRequestError(f"the event must be a JSON object, got {type(event).__name__}")
    operation = event.get("operation")
    if not isinstance(operation, str) or operation not in _PARSERS:
        raise InvalidRequestError(f"operation must be one of: {', '.join(OPERATIONS)}; got {operation!r}")
    return _PARSERS[operation](event)
