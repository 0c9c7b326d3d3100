"""Float-heavy S3 Vectors bodies without botocore's per-float Python work, on an unmodified boto3 client.

botocore validates and serialises every float of a PutVectors request one Python call at a time
(82% of a worker's CPU before this module), and parses every float of GetVectors/ListVectors
responses the same way. :func:`install` registers handlers on one client's own event emitter,
so that the float arrays skip that work while everything else (endpoint resolution,
``AWS_ENDPOINT_URL*``, user agent, retries, SigV4 signing, Content-Length) stays botocore's:

PutVectors requests
  1. ``before-parameter-build``: each ``vectors[i].data.float32`` that is a 1-D numpy array
     whose float32 values are all finite is stashed, as a float32 ndarray, in the per-call
     ``context`` dict; the request gets a copy of that vector whose array is the placeholder
     ``[0.0]``. botocore then validates and serialises everything else as usual (keys, metadata,
     required members, unknown fields) and one float instead of 1,024. The caller's objects are
     never changed.
  2. ``before-call``: botocore's (now small) body is parsed back with the stdlib ``json`` (the
     exact inverse of the ``json.dumps`` botocore used, so NaN and big integers in metadata
     survive), each placeholder becomes a random per-call token, the document is dumped again
     with botocore's ``json`` defaults, and each token is replaced by ``orjson.dumps(array)``.
     Every byte but the float lists' is what botocore would send. ``before-call`` runs after
     serialisation and before request compression, checksums, Content-Length and signing, so
     those are computed over these bytes; botocore's own retries resend the same body.

  Floats are written as the shortest text that reads back as the same float32 (about half the
  size of botocore's double text). Read as a double and then narrowed, as a service may,
  exactly two float32 values come back one unit off (double rounding; found by checking all
  4.28 billion finite float32 values): a vector holding one of them is written as doubles.

GetVectors / ListVectors responses
  3. ``before-parse``: a 2xx body is parsed with orjson and walked by a shape-driven parser
     equivalent to botocore's rest-json one (only modelled members, nulls dropped, documents as
     they are, float lists converted in one C loop); the result goes into
     ``customized_response_dict`` and the body seen by botocore becomes ``{}``, so botocore only
     adds ``ResponseMetadata``. Anything unusual (non-JSON, NaN literals, unknown union members,
     integers beyond 2**63) is left to botocore. Errors (>= 300) are never touched.

Lists of Python floats are botocore's as before; arrays the fast path does not take (NaN,
infinity, values beyond float32's range, 2-D) are handed to botocore as plain lists, so its
validation and error messages apply.
Handlers keep no state outside the per-call ``context``: one client may serve many threads.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

import numpy as np
import orjson

__all__ = ["install"]

#: Key of the per-call stash in botocore's request context.
_STASH = "s3vl_fastbody"
#: What botocore validates and serialises in place of each array (one float, so a future
#: ``min`` on Float32VectorData still passes).
_PLACEHOLDER = [0.0]
#: The finite float32 values whose shortest text, read as a double, narrows to a neighbour.
_DOUBLE_ROUNDING = np.float32(7.038530691851209e-26)
#: orjson reads integers beyond 64 bits as floats; a float this large in a metadata document may
#: have been one, so such a response is left to botocore (stdlib json keeps integers exact).
_EXACT_INT_LIMIT = 2.0**63
_RESPONSE_OPERATIONS = ("GetVectors", "ListVectors")


# --- requests ---------------------------------------------------------------------------------
def _as_float32(arr: np.ndarray) -> np.ndarray | None:
    """``arr`` as a 1-D contiguous float32 array, or None if botocore should handle it."""
    if arr.ndim != 1 or arr.dtype.kind not in "fiu":
        return None
    if arr.dtype != np.float32:
        with np.errstate(over="ignore", invalid="ignore"):
            arr = arr.astype(np.float32)
    if not np.isfinite(arr).all():  # NaN, infinity, or beyond float32's range
        return None
    return np.ascontiguousarray(arr)


def _put_vectors_params(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    vectors = params.get("vectors")
    if not isinstance(vectors, list | tuple):
        return
    stash: dict[int, np.ndarray] = {}
    out: list[Any] = []
    for i, vector in enumerate(vectors):
        data = vector.get("data") if isinstance(vector, dict) else None
        if isinstance(data, dict) and any(isinstance(v, np.ndarray) for v in data.values()):
            values = data.get("float32")
            arr = _as_float32(values) if list(data) == ["float32"] and isinstance(values, np.ndarray) else None
            if arr is not None:
                stash[i] = arr
                vector = {**vector, "data": {"float32": _PLACEHOLDER}}
            else:  # not ours to send (NaN, 2-D, two union members): botocore's, as plain lists
                vector = {**vector, "data": {k: v.tolist() if isinstance(v, np.ndarray) else v
                                             for k, v in data.items()}}
        out.append(vector)
    params["vectors"] = out  # this call's own kwargs: the caller's list is untouched
    if stash:
        context[_STASH] = stash


def _float_text(arr: np.ndarray) -> bytes:
    if np.any(np.abs(arr) == _DOUBLE_ROUNDING):
        return orjson.dumps(arr.astype(np.float64), option=orjson.OPT_SERIALIZE_NUMPY)
    return orjson.dumps(arr, option=orjson.OPT_SERIALIZE_NUMPY)


def _put_vectors_body(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    """``params`` is botocore's request dict here; its body is serialised, not yet signed."""
    stash: dict[int, np.ndarray] | None = context.pop(_STASH, None)
    if not stash:
        return
    doc = json.loads(params["body"])
    token = "s3vl-fastbody-" + secrets.token_hex(16)  # cannot occur in the caller's data
    order = sorted(stash)
    for i in order:
        data = doc["vectors"][i]["data"]
        if data != {"float32": _PLACEHOLDER}:
            raise RuntimeError(f"fastbody: vectors[{i}].data serialised as {data!r}, not the placeholder")
        data["float32"] = token
    pieces = json.dumps(doc).encode("utf-8").split(b'"' + token.encode() + b'"')
    if len(pieces) != len(order) + 1:
        raise RuntimeError("fastbody: the placeholders did not come back one for one")
    out = [pieces[0]]
    for i, piece in zip(order, pieces[1:], strict=True):
        out.append(_float_text(stash[i]))
        out.append(piece)
    params["body"] = b"".join(out)


# --- responses --------------------------------------------------------------------------------
class _Fallback(Exception):  # noqa: N818 - control flow, never raised to a caller
    """Leave this response to botocore's own parser."""


_SCALARS = {"string", "float", "double", "integer", "long", "boolean"}


def _supported(shape: Any, seen: set[str] | None = None) -> bool:
    """Whether :func:`_parse` handles every shape reachable from ``shape`` (checked at install)."""
    seen = set() if seen is None else seen
    if shape is None:
        return False
    if shape.name in seen:
        return True
    seen.add(shape.name)
    kind = shape.type_name
    if kind == "structure":
        if shape.is_document_type:
            return True
        if shape.serialization.get("payload") or shape.serialization.get("eventstream"):
            return False
        return all(_supported(m, seen) for m in shape.members.values())
    if kind == "list":
        return _supported(shape.member, seen)
    if kind == "map":
        return _supported(shape.key, seen) and _supported(shape.value, seen)
    return kind in _SCALARS  # blobs and timestamps are botocore's


def _document(value: Any) -> Any:
    """A document as orjson read it, unless it may have lost an exact integer."""
    if isinstance(value, float):
        if abs(value) >= _EXACT_INT_LIMIT:
            raise _Fallback
    elif isinstance(value, dict):
        for v in value.values():
            _document(v)
    elif isinstance(value, list):
        for v in value:
            _document(v)
    return value


def _parse(shape: Any, value: Any) -> Any:
    """botocore's rest-json parsing rules for one (non-null) value of ``shape``."""
    kind = shape.type_name
    if kind == "structure":
        if shape.is_document_type:
            return _document(value)
        if not isinstance(value, dict):
            raise _Fallback
        if shape.is_tagged_union:
            present = [k for k, v in value.items() if k != "__type" and v is not None]
            names = {m.serialization.get("name", n) for n, m in shape.members.items()}
            if len(present) != 1 or present[0] not in names:
                raise _Fallback  # botocore raises, or returns SDK_UNKNOWN_MEMBER
        out = {}
        for name, member in shape.members.items():
            if member.serialization.get("location"):
                continue  # headers and status: botocore parses them
            raw = value.get(member.serialization.get("name", name))
            if raw is not None:
                out[name] = _parse(member, raw)
        return out
    if kind == "list":
        if not isinstance(value, list):
            raise _Fallback
        if shape.member.type_name in ("float", "double"):
            try:
                return list(map(float, value))  # the hot path: one C loop per vector
            except TypeError:  # a null element: botocore keeps None
                return [None if x is None else float(x) for x in value]
        return [None if x is None else _parse(shape.member, x) for x in value]
    if kind == "map":
        if not isinstance(value, dict):
            raise _Fallback
        return {_parse(shape.key, k): _parse(shape.value, v) for k, v in value.items()}
    if kind in ("float", "double"):
        return float(value)
    if kind in ("integer", "long"):
        return int(value)
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        return value.lower() == "true" if isinstance(value, str) else False
    return value


def _before_parse(operation_model: Any, response_dict: dict[str, Any],
                  customized_response_dict: dict[str, Any] | None = None, **_: Any) -> None:
    if customized_response_dict is None or not 200 <= response_dict.get("status_code", 0) < 300:
        return
    body = response_dict.get("body")
    if not isinstance(body, bytes | bytearray) or not body:
        return
    try:
        doc = orjson.loads(body)
        if not isinstance(doc, dict):
            return
        parsed = _parse(operation_model.output_shape, doc)
    except (orjson.JSONDecodeError, _Fallback, ValueError, TypeError, AttributeError):
        return  # the body is untouched: botocore parses (and raises) exactly as without us
    customized_response_dict.update(parsed)
    response_dict["body"] = b"{}"


# --- install ----------------------------------------------------------------------------------
def install(client: Any) -> Any:
    """Register the handlers on ``client`` (an ``s3vectors`` client); returns the client.

    Call it once, right after creating the client and before sharing it across threads; a
    second call changes nothing (the handlers have unique ids).
    """
    model = client.meta.service_model
    if model.service_name != "s3vectors":
        raise ValueError(f"fastbody handles s3vectors clients, not {model.service_name}")
    sid = model.service_id.hyphenize()
    events = client.meta.events

    def register(event: str, handler: Any) -> None:
        events.register(event, handler, unique_id=f"s3vl-fastbody:{event}")

    register(f"before-parameter-build.{sid}.PutVectors", _put_vectors_params)
    register(f"before-call.{sid}.PutVectors", _put_vectors_body)
    for op in _RESPONSE_OPERATIONS:
        if op in model.operation_names and _supported(model.operation_model(op).output_shape):
            register(f"before-parse.{sid}.{op}", _before_parse)
    return client
