"""The worker's side of the database: the queue protocol, and reading definitions, rows and state.

Every consistency-critical step is one SQL function of ``sql/idempotent/240-sync-queue.sql``
called by name (``s3vl.lease``, ``s3vl.load_v2``, ``s3vl.complete``, ``s3vl.fail``, ...) through
the named queries of ``sql/queries/worker.sql``, and every call is its own short transaction: the
worker never holds a transaction open across a network call. The lease (with its expiry) and the
per-key version checked at completion are what make that safe.

:class:`Outbox` is the whole of the pipeline's database side, so a fake of it is enough to test
the worker's branches without PostgreSQL. Errors arrive translated by :mod:`sync.db.connection`;
a batch whose rows the sync itself cannot render (its source gone, a privilege revoked) is a
:class:`SyncDefinitionError`, which pauses the sync instead of failing its rows.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import orjson

from sync.datapath.definitions import SyncDef
from sync.datapath.rows import Loaded, Row, State
from sync.db.connection import Database
from sync.db.connection import Row as DbRow
from sync.errors import DatabaseError, DatabaseUnavailableError, SyncDefinitionError, UnknownSyncError


@dataclass(frozen=True)
class LeasedKey:
    key: str
    version: int


@dataclass
class Lease:
    """A batch of keys of one sync, leased by this worker until the lease expires."""

    sync_name: str
    keys: list[LeasedKey]


@dataclass(frozen=True)
class Result:
    """What the worker did for one key, recorded by ``s3vl.complete``."""

    key: str
    version: int
    deleted: bool
    content_hash: str | None = None
    metadata_hash: str | None = None
    embedding_version: str | None = None
    chunk_count: int = 0
    chunked: bool = False


@dataclass(frozen=True)
class Paused:
    """A sync that failed as a whole, not leased until ``until``."""

    sync: str
    until: datetime
    error: str


class Outbox:
    """Database operations of the sync worker, by name, over one :class:`Database` connection."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def close(self) -> None:
        self.db.close()

    # --- definitions ----------------------------------------------------------------------
    def sync(self, name: str) -> SyncDef:
        row = self.db.one("sync_definition", {"name": name})
        if row is None:
            raise SyncDefinitionError(f"sync {name!r} does not exist (or its index is not registered)")
        return SyncDef.model_validate(row)

    def require_syncs(self, names: Sequence[str]) -> None:
        """Raise :class:`UnknownSyncError` naming the ones of ``names`` that are not syncs."""
        known = {str(r["name"]) for r in self.db.all("sync_names", {"names": list(names)})}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise UnknownSyncError(f"no such sync: {', '.join(unknown)} (SELECT name FROM s3vl.syncs lists them)")

    # --- the queue protocol ---------------------------------------------------------------
    def lease(self, worker: str, batch: int, lease_seconds: float, only_sync: str | None = None) -> Lease | None:
        rows = self.db.all("lease", {"worker": worker, "batch": batch, "lease_seconds": lease_seconds,
                                     "only_sync": only_sync})
        if not rows:
            return None
        return Lease(str(rows[0]["sync_name"]), [LeasedKey(str(r["key"]), int(r["version"])) for r in rows])

    def load(self, sync: str, keys: Sequence[str]) -> Loaded:
        """Current rows and state of ``keys`` in one call; a row that could not be rendered (e.g.
        a division by zero in its text expression) is in ``errors`` alone."""
        try:
            rows = self.db.all("load", {"sync": sync, "keys": list(keys)})
        except DatabaseUnavailableError:
            raise
        except DatabaseError as exc:
            raise SyncDefinitionError(f"sync {sync!r} cannot load its rows: {exc}") from exc
        out = Loaded()
        for r in rows:
            key = str(r["key"])
            if r["error"] is not None:
                out.errors[key] = str(r["error"])
            elif r["present"]:
                out.rows[key] = Row(r["content"], dict(r["metadata"] or {}), r["content_hash"])
            if r["has_state"]:
                out.states[key] = State(r["state_hash"], r["metadata_hash"], r["embedding_version"],
                                        int(r["chunk_count"]), bool(r["chunked"]))
        return out

    def begin_write(self, sync: str, results: Sequence[Result]) -> int:
        """Before a PutVectors: mark the keys about to be written unknown in the state, their
        chunk count widened (``s3vl.begin_write``), so a crash before :meth:`complete` cannot
        leave a state that claims the old vectors."""
        writes = [{"key": r.key, "embedding_version": r.embedding_version, "chunk_count": r.chunk_count,
                   "chunked": r.chunked} for r in results]
        return int(self.db.value("begin_write", {"sync": sync, "writes": json.dumps(writes)}) or 0)

    def complete(self, sync: str, worker: str, results: Sequence[Result]) -> tuple[int, int]:
        """Record state and complete keys whose version is unchanged; returns (completed, requeued)."""
        row = self.db.one("complete", {"sync": sync, "worker": worker,
                                       "results": orjson.dumps([vars(r) for r in results]).decode()})
        assert row is not None
        return int(row["completed"]), int(row["requeued"])

    def fail(self, sync: str, worker: str, failures: Sequence[tuple[str, int, str]], retry_after: float = 0.0) -> int:
        payload = json.dumps([{"key": k, "version": v, "error": e} for k, v, e in failures])
        return int(self.db.value("fail", {"sync": sync, "worker": worker, "failures": payload,
                                          "retry_after": retry_after}) or 0)

    def release(self, sync: str, worker: str, keys: Sequence[str]) -> int:
        return int(self.db.value("release", {"sync": sync, "worker": worker, "keys": list(keys)}) or 0)

    def extend(self, sync: str, worker: str, keys: Sequence[str], lease_seconds: float) -> int:
        return int(self.db.value("extend_lease", {"sync": sync, "worker": worker, "keys": list(keys),
                                                  "lease_seconds": lease_seconds}) or 0)

    def pause(self, sync: str, error: str, seconds: float) -> None:
        """The sync failed as a whole: no worker leases it for ``seconds`` (``s3vl.pause_sync``)."""
        self.db.execute("pause_sync", {"sync": sync, "error": error, "seconds": seconds})

    def paused(self, sync: str | None = None) -> list[Paused]:
        return [Paused(str(r["name"]), r["paused_until"], str(r["last_error"] or ""))
                for r in self.db.all("paused_syncs", {"sync": sync})]

    def retry_failed(self, sync: str | None = None) -> int:
        return int(self.db.value("retry_failed", {"sync": sync}) or 0)

    def resync(self, sync: str) -> int:
        return int(self.db.value("resync", {"sync": sync}) or 0)

    def status(self) -> list[DbRow]:
        """Every sync's row of ``s3vl.sync_status`` (the worker's gauges come from it)."""
        return self.db.all("sync_status")

    def pending(self, sync: str | None = None) -> int:
        """Keys not yet applied (pending, including leased)."""
        return int(self.db.value("pending", {"sync": sync}) or 0)
