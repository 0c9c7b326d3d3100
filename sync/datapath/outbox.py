"""The worker's side of the database: the outbox protocol, and reading definitions, rows and state.

This is the only module that knows the outbox's SQL. Every consistency-critical step is one
PL/pgSQL function of ``sql/idempotent/200-sync.sql`` called by name (``s3vl.lease``,
``s3vl.complete``, ``s3vl.fail``, ...), and every call is its own short transaction: the worker
never holds a transaction open across a network call. The lease (with its expiry) and the
per-key version checked at completion are what make that safe.

psycopg errors are translated here: connection trouble becomes :class:`DatabaseError` (the
worker waits and reconnects); a definition that cannot be read becomes
:class:`SyncDefinitionError`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import dict_row

from sync.datapath.definitions import SyncDef
from sync.datapath.rows import Loaded, Row, State
from sync.errors import DatabaseError, SyncDefinitionError


@dataclass(frozen=True)
class LeasedKey:
    key: str
    version: int
    attempts: int


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


_LOAD = """
SELECT k.key, r.key IS NOT NULL AS present, r.content, r.metadata, r.content_hash,
       st.key IS NOT NULL AS has_state, st.content_hash AS state_hash, st.metadata_hash,
       st.embedding_version, st.chunk_count, st.chunked
FROM unnest(%(keys)s::text[]) AS k(key)
LEFT JOIN s3vl.load_rows(%(sync)s, %(keys)s::text[]) AS r ON r.key = k.key
LEFT JOIN s3vl.sync_state AS st ON st.sync_name = %(sync)s AND st.key = k.key
"""

_SYNCS = """
SELECT s.name, s.source::text AS source, s.key_columns, s.index_name, i.index_arn, s.text_expression,
       s.metadata_columns, s.embedding_model, s.dimensions, s.normalize_vectors, s.chunk_size,
       s.chunk_overlap, s.store_text, s.embedding_version, s.max_attempts
FROM s3vl.syncs s JOIN s3vl.indexes i ON i.name = s.index_name
"""


class Outbox:
    """Database operations of the sync worker, by name, over one autocommit connection."""

    def __init__(self, conninfo: str) -> None:
        self.conninfo = conninfo
        self._conn: psycopg.Connection[dict[str, Any]] | None = None

    # --- connection -----------------------------------------------------------------------
    @contextmanager
    def _cursor(self) -> Iterator[psycopg.Cursor[dict[str, Any]]]:
        try:
            if self._conn is None or self._conn.closed:
                self._conn = psycopg.connect(self.conninfo, autocommit=True, row_factory=dict_row)
            with self._conn.cursor() as cur:
                yield cur
        except psycopg.OperationalError as exc:
            self.close()
            raise DatabaseError(f"database unavailable: {str(exc).strip()}") from exc

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None

    # --- definitions ----------------------------------------------------------------------
    def syncs(self) -> list[SyncDef]:
        with self._cursor() as cur:
            cur.execute(_SYNCS + " ORDER BY s.name")
            return [SyncDef.model_validate(r) for r in cur.fetchall()]

    def sync(self, name: str) -> SyncDef:
        with self._cursor() as cur:
            cur.execute(_SYNCS + " WHERE s.name = %s", (name,))
            row = cur.fetchone()
        if row is None:
            raise SyncDefinitionError(f"sync {name!r} does not exist (or its index is not registered)")
        return SyncDef.model_validate(row)

    # --- the outbox protocol --------------------------------------------------------------
    def lease(self, worker: str, batch: int, lease_seconds: float, only_sync: str | None = None) -> Lease | None:
        with self._cursor() as cur:
            cur.execute("SELECT sync_name, key, version, attempts FROM s3vl.lease(%s, %s, %s, %s)",
                        (worker, batch, lease_seconds, only_sync))
            rows = cur.fetchall()
        if not rows:
            return None
        return Lease(str(rows[0]["sync_name"]),
                     [LeasedKey(str(r["key"]), int(r["version"]), int(r["attempts"])) for r in rows])

    def load(self, sync: str, keys: Sequence[str]) -> Loaded:
        """Current rows and state of ``keys`` in one query. A row whose text expression fails
        (e.g. a division by zero in it) is reported in ``errors`` alone: the batch is retried
        key by key to find it."""
        try:
            with self._cursor() as cur:
                cur.execute(_LOAD, {"sync": sync, "keys": list(keys)})
                return self._loaded(cur.fetchall())
        except psycopg.Error as exc:
            if isinstance(exc, psycopg.OperationalError):
                raise
            if len(keys) == 1:
                return Loaded(errors={keys[0]: f"rendering the row failed: {str(exc).strip()}"})
        merged = Loaded()
        for key in keys:
            one = self.load(sync, [key])
            merged.rows.update(one.rows)
            merged.states.update(one.states)
            merged.errors.update(one.errors)
        return merged

    @staticmethod
    def _loaded(rows: list[dict[str, Any]]) -> Loaded:
        out = Loaded()
        for r in rows:
            key = str(r["key"])
            if r["present"]:
                out.rows[key] = Row(r["content"], dict(r["metadata"] or {}), r["content_hash"])
            if r["has_state"]:
                out.states[key] = State(r["state_hash"], r["metadata_hash"], r["embedding_version"],
                                        int(r["chunk_count"]), bool(r["chunked"]))
        return out

    def complete(self, sync: str, worker: str, results: Sequence[Result]) -> tuple[int, int]:
        """Record state and complete keys whose version is unchanged; returns (completed, requeued)."""
        payload = json.dumps([r.__dict__ for r in results])
        with self._cursor() as cur:
            cur.execute("SELECT completed, requeued FROM s3vl.complete(%s, %s, %s::jsonb)", (sync, worker, payload))
            row = cur.fetchone()
        assert row is not None
        return int(row["completed"]), int(row["requeued"])

    def fail(self, sync: str, worker: str, failures: Sequence[tuple[str, int, str]], retry_after: float = 0.0) -> int:
        payload = json.dumps([{"key": k, "version": v, "error": e} for k, v, e in failures])
        with self._cursor() as cur:
            cur.execute("SELECT s3vl.fail(%s, %s, %s::jsonb, %s) AS n", (sync, worker, payload, retry_after))
            row = cur.fetchone()
        return int(row["n"]) if row else 0

    def release(self, sync: str, worker: str, keys: Sequence[str]) -> int:
        with self._cursor() as cur:
            cur.execute("SELECT s3vl.release(%s, %s, %s::text[]) AS n", (sync, worker, list(keys)))
            row = cur.fetchone()
        return int(row["n"]) if row else 0

    def extend(self, sync: str, worker: str, keys: Sequence[str], lease_seconds: float) -> int:
        with self._cursor() as cur:
            cur.execute("SELECT s3vl.extend_lease(%s, %s, %s::text[], %s) AS n",
                        (sync, worker, list(keys), lease_seconds))
            row = cur.fetchone()
        return int(row["n"]) if row else 0

    def begin_write(self, sync: str, results: Sequence[Result]) -> int:
        """Before a PutVectors: mark the keys about to be written unknown in the state, their
        chunk count widened (``s3vl.begin_write``), so a crash before :meth:`complete` cannot
        leave a state that claims the old vectors."""
        payload = json.dumps([{"key": r.key, "embedding_version": r.embedding_version, "chunk_count": r.chunk_count,
                               "chunked": r.chunked} for r in results])
        with self._cursor() as cur:
            cur.execute("SELECT s3vl.begin_write(%s, %s::jsonb) AS n", (sync, payload))
            row = cur.fetchone()
        return int(row["n"]) if row else 0

    def retry_failed(self, sync: str | None = None) -> int:
        with self._cursor() as cur:
            cur.execute("SELECT s3vl.retry_failed(%s) AS n", (sync,))
            row = cur.fetchone()
        return int(row["n"]) if row else 0

    def resync(self, sync: str) -> int:
        with self._cursor() as cur:
            cur.execute("SELECT s3vl.resync(%s) AS n", (sync,))
            row = cur.fetchone()
        return int(row["n"]) if row else 0

    # --- status ---------------------------------------------------------------------------
    def status(self) -> list[dict[str, Any]]:
        with self._cursor() as cur:
            cur.execute(
                "SELECT sync_name, source::text AS source, index_name, embedding_model, embedding_version, "
                "capture, pending, leased, retrying, failed, "
                "extract(epoch FROM oldest_pending_age)::float8 AS lag_seconds, "
                "last_success, synced_keys, last_reconcile_at, last_reconcile, capture_lag_bytes "
                "FROM s3vl.sync_status ORDER BY 1")
            return list(cur.fetchall())

    def failures(self, limit: int = 20) -> list[dict[str, Any]]:
        with self._cursor() as cur:
            cur.execute("SELECT sync_name, key, attempts, last_error FROM s3vl.sync_failures "
                        "ORDER BY sync_name, key LIMIT %s", (limit,))
            return list(cur.fetchall())

    def pending(self, sync: str | None = None) -> int:
        """Keys not yet applied (pending, including leased)."""
        with self._cursor() as cur:
            cur.execute("SELECT count(*) AS n FROM s3vl.outbox WHERE status = 'pending' "
                        "AND (%(s)s::text IS NULL OR sync_name = %(s)s)", {"s": sync})
            row = cur.fetchone()
        return int(row["n"]) if row else 0
