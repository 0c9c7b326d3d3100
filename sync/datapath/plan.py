"""The pure steps of a batch: what each leased key needs (``diff``), the vectors of a row
(``build_vectors``) and the state to record for it (``result_of``). No I/O: every rule is unit-tested."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from sync.aws.s3vectors import Vector
from sync.datapath.contract import (
    RESERVED_NON_FILTERABLE,
    check_metadata,
    chunk_text,
    metadata_hash,
    vector_keys,
    vector_metadata,
)
from sync.datapath.definitions import SyncDef
from sync.datapath.outbox import LeasedKey, Result
from sync.datapath.rows import Loaded, Row, State

Kind = Literal["unchanged", "metadata", "embed", "delete", "failed"]


@dataclass
class Work:
    """The plan for one leased key."""

    key: str
    version: int
    kind: Kind
    row: Row | None = None
    chunks: list[str] = field(default_factory=list)
    metadata_hash: str | None = None
    #: vector keys to delete once the new vectors are in (deleted row, vanished chunks)
    delete_keys: list[str] = field(default_factory=list)
    #: vector keys this row will have
    new_keys: list[str] = field(default_factory=list)
    vectors: list[Vector] = field(default_factory=list)
    error: str | None = None
    state: State | None = None

    def fail(self, error: str) -> None:
        self.kind = "failed"
        self.error = error


def diff(sync: SyncDef, leased: Sequence[LeasedKey], loaded: Loaded) -> list[Work]:
    """Decide, per key, what must happen, from the current row and the recorded state."""
    plan: list[Work] = []
    for lk in leased:
        key = lk.key
        state = loaded.states.get(key)
        old_keys = vector_keys(key, state.chunk_count, state.chunked) if state else []
        if key in loaded.errors:
            plan.append(Work(key, lk.version, "failed", error=loaded.errors[key], state=state))
            continue
        row = loaded.rows.get(key)
        chunks = chunk_text(row.content, sync.chunk_size, sync.chunk_overlap) if row and row.content else []
        if row is None or not chunks:
            # deleted row, or nothing to embed: the key has no vectors
            plan.append(Work(key, lk.version, "delete", row=row, delete_keys=old_keys, state=state))
            continue
        mhash = metadata_hash(row.metadata, sync.store_text)
        new_keys = vector_keys(key, len(chunks), sync.chunked)
        same_vectors = (
            state is not None
            and state.content_hash is not None
            and state.content_hash == row.content_hash
            and state.embedding_version == sync.embedding_version
            and state.chunked == sync.chunked
            and state.chunk_count == len(chunks)
        )
        if same_vectors and state is not None and state.metadata_hash == mhash:
            kind: Kind = "unchanged"
        elif same_vectors:
            kind = "metadata"
        else:
            kind = "embed"
        stale = [k for k in old_keys if k not in set(new_keys)]
        plan.append(Work(key, lk.version, kind, row=row, chunks=chunks, metadata_hash=mhash,
                         delete_keys=stale, new_keys=new_keys, state=state))
    return plan


def build_vectors(sync: SyncDef, work: Work, data: Sequence[np.ndarray],
                  non_filterable: Iterable[str] = RESERVED_NON_FILTERABLE) -> list[Vector]:
    """The vectors of one row (keys, reserved metadata); RowError when metadata breaks a limit."""
    assert work.row is not None
    assert work.row.content_hash is not None
    nf = list(non_filterable)
    out: list[Vector] = []
    for n, (vkey, chunk, vec) in enumerate(zip(work.new_keys, work.chunks, data, strict=True)):
        md = vector_metadata(key=work.key, metadata=work.row.metadata, embedding_version=sync.embedding_version,
                             hash_=work.row.content_hash, chunk=n, text=chunk if sync.store_text else None)
        check_metadata(md, nf)
        out.append(Vector(vkey, vec, md))
    return out


def result_of(sync: SyncDef, work: Work) -> Result:
    """The state to record for a key that succeeded."""
    if work.kind == "delete":
        return Result(work.key, work.version, deleted=True)
    assert work.row is not None
    return Result(work.key, work.version, deleted=False, content_hash=work.row.content_hash,
                  metadata_hash=work.metadata_hash, embedding_version=sync.embedding_version,
                  chunk_count=len(work.chunks), chunked=sync.chunked)


