"""What the worker loads for a batch of leased keys: each key's current row (as PostgreSQL rendered
it) and what ``s3vl.sync_state`` records about the vectors the index holds for it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Row:
    """A source row as PostgreSQL rendered it: text, metadata and content hash."""

    content: str | None
    metadata: dict[str, Any]
    content_hash: str | None


@dataclass(frozen=True)
class State:
    """What the index holds for a key (``s3vl.sync_state``); content_hash None = unknown."""

    content_hash: str | None
    metadata_hash: str | None
    embedding_version: str | None
    chunk_count: int
    chunked: bool


@dataclass
class Loaded:
    """Current rows (absent key = row deleted), state, and rows that could not be rendered."""

    rows: dict[str, Row] = field(default_factory=dict)
    states: dict[str, State] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
