"""The vector contract, as pure functions: chunking, content hash, vector keys, reserved metadata, limits.

Nothing here does I/O, so every rule of the vector contract (docs/internals.md) is tested
without a database or an endpoint:

* vector key: ``<key>`` without chunking, ``<key>#<n>`` with chunking (n from 0);
* content hash: first 32 hex digits of SHA-256 over the UTF-8 rendered text (the same value
  ``s3vl.sync_hash_sql`` computes in PostgreSQL);
* reserved metadata: ``s3vl_id``, ``s3vl_ev``, ``s3vl_chunk`` (filterable), ``s3vl_hash`` and
  ``s3vl_text`` (non-filterable);
* S3 Vectors' per-vector metadata limits, checked before a request so that one bad row fails
  alone instead of failing the whole PutVectors batch.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

import orjson

from sync.errors import RowError

T = TypeVar("T")

#: S3 Vectors limits per vector (AWS documentation, "Limitations and restrictions").
MAX_METADATA_BYTES = 40 * 1024
MAX_FILTERABLE_METADATA_BYTES = 2 * 1024
MAX_METADATA_KEYS = 50

#: Reserved metadata written on every vector; the non-filterable ones must be declared as such
#: when the index is created (``metadataConfiguration.nonFilterableMetadataKeys``).
RESERVED_NON_FILTERABLE = ("s3vl_hash", "s3vl_text")


def content_hash(text: str) -> str:
    """The ``s3vl_hash`` of a rendered text (equal to ``s3vl.sync_hash_sql`` in SQL)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def metadata_hash(metadata: Mapping[str, Any], store_text: bool) -> str:
    """A stable hash of what a row's metadata rewrite depends on (declared columns + options)."""
    blob = json.dumps({"m": metadata, "t": store_text}, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:32]


def vector_keys(key: str, count: int, chunked: bool) -> list[str]:
    """The vector keys of a source key with ``count`` vectors."""
    if not chunked:
        return [key] if count > 0 else []
    return [f"{key}#{n}" for n in range(count)]


def chunk_text(text: str, size: int | None, overlap: int = 0) -> list[str]:
    """Split ``text`` into pieces of at most ``size`` characters overlapping by ``overlap``.

    A cut is moved back to the last whitespace in the second half of the window, so words are
    not split when avoidable. ``size=None`` means no chunking: the whole text is one piece.
    Blank text gives no pieces (a row with nothing to embed has no vectors).
    """
    if not text.strip():
        return []
    if size is None or len(text) <= size:
        return [text]
    if size <= 0 or overlap < 0 or overlap >= size:
        raise ValueError(f"invalid chunking: size={size} overlap={overlap}")
    chunks: list[str] = []
    start = 0
    n = len(text)
    while start < n:
        end = min(start + size, n)
        if end < n:
            cut = text.rfind(" ", start + size // 2, end)
            cut = max(cut, text.rfind("\n", start + size // 2, end))
            if cut > start:
                end = cut
        piece = text[start:end].strip()
        if piece:
            chunks.append(piece)
        if end >= n:
            break
        start = max(end - overlap, start + 1)
    return chunks


def _json_bytes(value: Any) -> int:
    """The size of ``value`` as compact UTF-8 JSON (orjson's text; the stdlib for integers beyond 64 bits)."""
    try:
        return len(orjson.dumps(value, default=str))
    except TypeError:
        return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str).encode("utf-8"))


def vector_metadata(
    *,
    key: str,
    metadata: Mapping[str, Any],
    embedding_version: str,
    hash_: str,
    chunk: int,
    text: str | None,
) -> dict[str, Any]:
    """The metadata of one vector: declared columns plus the reserved ``s3vl_`` keys."""
    out: dict[str, Any] = dict(metadata)
    out["s3vl_id"] = key
    out["s3vl_ev"] = embedding_version
    out["s3vl_hash"] = hash_
    out["s3vl_chunk"] = chunk
    if text is not None:
        out["s3vl_text"] = text
    return out


def check_metadata(metadata: Mapping[str, Any], non_filterable: Iterable[str] = RESERVED_NON_FILTERABLE) -> None:
    """Raise :class:`RowError` naming the limit when a vector's metadata would be refused."""
    if len(metadata) > MAX_METADATA_KEYS:
        raise RowError(f"metadata has {len(metadata)} keys; S3 Vectors allows {MAX_METADATA_KEYS} per vector")
    nf = set(non_filterable)
    total = 0
    filterable = 0
    for name, value in metadata.items():
        if value is None:
            continue
        if isinstance(value, dict):
            raise RowError(f"metadata {name!r} is an object; S3 Vectors metadata values are "
                           "strings, numbers, booleans or lists")
        if isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value):
            raise RowError(f"metadata {name!r} is a nested list; S3 Vectors lists hold scalars only")
        if any(isinstance(v, float) and not math.isfinite(v) for v in (value if isinstance(value, list) else [value])):
            raise RowError(f"metadata {name!r} is not a finite number ({value!r}); S3 Vectors refuses NaN "
                           "and infinity (and numbers beyond a double's range)")
        size = len(name.encode("utf-8")) + _json_bytes(value)
        total += size
        if name not in nf:
            filterable += size
    if filterable > MAX_FILTERABLE_METADATA_BYTES:
        raise RowError(f"filterable metadata is {filterable} bytes; S3 Vectors allows "
                       f"{MAX_FILTERABLE_METADATA_BYTES} per vector (declare large columns non-filterable "
                       "or leave them out of metadata_columns)")
    if total > MAX_METADATA_BYTES:
        raise RowError(f"metadata is {total} bytes; S3 Vectors allows {MAX_METADATA_BYTES} per vector")
