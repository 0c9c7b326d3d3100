"""Paging tokens and ListVectors segments (pure).

* List tokens carry the last key returned (plus the request's segment parameters), so the next
  page starts strictly after it in key order: stable under concurrent writes. Every key present
  for the whole listing is returned exactly once; keys written meanwhile appear if they sort
  after the cursor; deleted keys simply vanish.
* A key's segment is ``crc32(key) % segmentCount``: stable, independent of insertion order and
  of the other keys, so segments are disjoint and their union is every key.
* Tokens are URL-safe base64 of compact JSON, opaque to clients; a token that does not decode,
  or was issued for different segment parameters, is a ValidationException.
"""

from __future__ import annotations

import base64
import binascii
import json
import zlib
from typing import Any


class TokenError(ValueError):
    """The pagination token is invalid."""


def segment_of(key: str, segment_count: int) -> int:
    return zlib.crc32(key.encode("utf-8")) % segment_count


def key_hash(key: str) -> int:
    return zlib.crc32(key.encode("utf-8"))


def encode_token(state: dict[str, Any]) -> str:
    raw = json.dumps(state, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii")


def decode_token(token: str) -> dict[str, Any]:
    try:
        state = json.loads(base64.urlsafe_b64decode(token.encode("ascii")))
    except (ValueError, UnicodeError, binascii.Error) as exc:
        raise TokenError("The provided pagination token is invalid") from exc
    if not isinstance(state, dict):
        raise TokenError("The provided pagination token is invalid")
    return state
