"""Durable storage for the local S3 Vectors service: one SQLite database in WAL mode.

``<data_dir>/s3vectors/s3vectors.sqlite3`` holds buckets, indexes and vectors (float32 data as
little-endian blobs, metadata as JSON). Each API write is one transaction, so a kill -9 leaves
either the whole request or none of it (WAL + ``synchronous=NORMAL`` is durable against process
crashes; a power loss may lose the last transactions but never tears one). The in-memory
matrices in :mod:`.index` are rebuilt from here at start.

One connection per thread (SQLite connections are not shared across threads); writers are
serialised by the callers' locks and SQLite's own, readers never block writers (WAL).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: WAL size above which the background thread checkpoints.
CHECKPOINT_WAL_BYTES = 32 * 1024 * 1024

_SCHEMA = """
CREATE TABLE IF NOT EXISTS buckets (
    name TEXT PRIMARY KEY,
    created REAL NOT NULL,
    encryption TEXT,
    default_index_mode TEXT NOT NULL,
    policy TEXT,
    tags TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS indexes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    bucket TEXT NOT NULL REFERENCES buckets(name),
    name TEXT NOT NULL,
    created REAL NOT NULL,
    data_type TEXT NOT NULL,
    dimension INTEGER NOT NULL,
    metric TEXT NOT NULL,
    non_filterable TEXT NOT NULL DEFAULT '[]',
    text_search TEXT NOT NULL DEFAULT '[]',
    encryption TEXT,
    mode TEXT NOT NULL,
    tags TEXT NOT NULL DEFAULT '{}',
    UNIQUE (bucket, name)
);
CREATE TABLE IF NOT EXISTS vectors (
    index_id INTEGER NOT NULL,
    key TEXT NOT NULL,
    hash INTEGER NOT NULL,
    data BLOB NOT NULL,
    metadata TEXT,
    PRIMARY KEY (index_id, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tokens (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    created REAL NOT NULL
);
"""


@dataclass
class BucketRow:
    name: str
    created: float
    encryption: dict[str, Any] | None
    default_index_mode: str
    policy: str | None
    tags: dict[str, str]


@dataclass
class IndexRow:
    id: int
    bucket: str
    name: str
    created: float
    data_type: str
    dimension: int
    metric: str
    non_filterable: list[str]
    text_search: list[dict[str, Any]]
    encryption: dict[str, Any] | None
    mode: str
    tags: dict[str, str]


def _loads(raw: str | None) -> Any:
    return None if raw is None else json.loads(raw)


def _dumps(obj: Any) -> str | None:
    return None if obj is None else json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


class Store:
    """The database: one writer connection (writes are serialised by a lock, as SQLite would
    anyway) and a small pool of reader connections (the HTTP server runs each request on a
    new thread, so connections are pooled rather than per thread)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._write_lock = threading.Lock()
        self._pool_lock = threading.Lock()
        self._readers: list[sqlite3.Connection] = []
        self._writer = self._connect()
        self._writer.executescript(_SCHEMA)
        # Checkpoints copy the WAL into the database file and fsync: done by a background thread
        # (PASSIVE: never blocks writers or readers), not inside the write that crosses the
        # auto-checkpoint threshold, so a PutVectors does not pay for its predecessors.
        self._writer.execute("PRAGMA wal_autocheckpoint=0")
        self._stop = threading.Event()
        self._checkpointer = threading.Thread(target=self._checkpoint_loop, name="sqlite-checkpoint", daemon=True)
        self._checkpointer.start()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30.0)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        return conn

    def _checkpoint_loop(self) -> None:
        conn = self._connect()
        wal = self.path.with_name(self.path.name + "-wal")
        try:
            while not self._stop.wait(0.5):
                try:
                    if wal.exists() and wal.stat().st_size > CHECKPOINT_WAL_BYTES:
                        conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except (OSError, sqlite3.Error):
                    continue
        finally:
            conn.close()

    @contextmanager
    def _reader(self) -> Iterator[sqlite3.Connection]:
        with self._pool_lock:
            conn = self._readers.pop() if self._readers else None
        if conn is None:
            conn = self._connect()
        try:
            yield conn
        finally:
            with self._pool_lock:
                if len(self._readers) < 8:
                    self._readers.append(conn)
                    conn = None
            if conn is not None:
                conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._write_lock:
            conn = self._writer
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def close(self) -> None:
        self._stop.set()
        self._checkpointer.join(timeout=5)
        with self._write_lock, suppress(sqlite3.Error):
            self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        with self._pool_lock:
            for conn in self._readers:
                with suppress(sqlite3.Error):
                    conn.close()
            self._readers.clear()
        with self._write_lock, suppress(sqlite3.Error):
            self._writer.close()

    # -- buckets ----------------------------------------------------------------------------
    def load_buckets(self) -> list[BucketRow]:
        with self._reader() as conn:
            rows = conn.execute(
                "SELECT name, created, encryption, default_index_mode, policy, tags FROM buckets"
            ).fetchall()
        return [BucketRow(r[0], r[1], _loads(r[2]), r[3], r[4], _loads(r[5]) or {}) for r in rows]

    def insert_bucket(self, b: BucketRow) -> None:
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO buckets (name, created, encryption, default_index_mode, policy, tags)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (b.name, b.created, _dumps(b.encryption), b.default_index_mode, b.policy, _dumps(b.tags)),
            )

    def update_bucket(self, b: BucketRow) -> None:
        with self.transaction() as conn:
            conn.execute(
                "UPDATE buckets SET default_index_mode = ?, policy = ?, tags = ? WHERE name = ?",
                (b.default_index_mode, b.policy, _dumps(b.tags), b.name),
            )

    def delete_bucket(self, name: str) -> None:
        with self.transaction() as conn:
            conn.execute("DELETE FROM buckets WHERE name = ?", (name,))

    # -- indexes ----------------------------------------------------------------------------
    def load_indexes(self) -> list[IndexRow]:
        with self._reader() as conn:
            rows = conn.execute(
                "SELECT id, bucket, name, created, data_type, dimension, metric, non_filterable,"
                " text_search, encryption, mode, tags FROM indexes"
            ).fetchall()
        return [
            IndexRow(
                r[0],
                r[1],
                r[2],
                r[3],
                r[4],
                r[5],
                r[6],
                _loads(r[7]),
                _loads(r[8]),
                _loads(r[9]),
                r[10],
                _loads(r[11]) or {},
            )
            for r in rows
        ]

    def insert_index(self, ix: IndexRow) -> int:
        with self.transaction() as conn:
            cur = conn.execute(
                "INSERT INTO indexes (bucket, name, created, data_type, dimension, metric, non_filterable,"
                " text_search, encryption, mode, tags) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    ix.bucket,
                    ix.name,
                    ix.created,
                    ix.data_type,
                    ix.dimension,
                    ix.metric,
                    _dumps(ix.non_filterable),
                    _dumps(ix.text_search),
                    _dumps(ix.encryption),
                    ix.mode,
                    _dumps(ix.tags),
                ),
            )
            assert cur.lastrowid is not None
            return cur.lastrowid

    def update_index(self, ix: IndexRow) -> None:
        with self.transaction() as conn:
            conn.execute(
                "UPDATE indexes SET mode = ?, text_search = ?, tags = ? WHERE id = ?",
                (ix.mode, _dumps(ix.text_search), _dumps(ix.tags), ix.id),
            )

    def delete_index(self, index_id: int) -> None:
        with self.transaction() as conn:
            conn.execute("DELETE FROM vectors WHERE index_id = ?", (index_id,))
            conn.execute("DELETE FROM indexes WHERE id = ?", (index_id,))

    # -- vectors ----------------------------------------------------------------------------
    def count_vectors(self, index_id: int) -> int:
        with self._reader() as conn:
            return int(conn.execute("SELECT count(*) FROM vectors WHERE index_id = ?", (index_id,)).fetchone()[0])

    def iter_vectors(self, index_id: int) -> Iterator[tuple[str, bytes, str | None]]:
        with self._reader() as conn:
            cur = conn.execute("SELECT key, data, metadata FROM vectors WHERE index_id = ?", (index_id,))
            while rows := cur.fetchmany(2048):
                yield from rows

    def put_vectors(self, index_id: int, rows: Sequence[tuple[str, int, bytes, str | None]]) -> None:
        with self.transaction() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO vectors (index_id, key, hash, data, metadata) VALUES (?, ?, ?, ?, ?)",
                [(index_id, k, h, d, m) for k, h, d, m in rows],
            )

    def delete_vectors(self, index_id: int, keys: Sequence[str]) -> None:
        with self.transaction() as conn:
            conn.executemany("DELETE FROM vectors WHERE index_id = ? AND key = ?", [(index_id, k) for k in keys])

    def list_keys(self, index_id: int, after: str | None, limit: int, segment: tuple[int, int] | None) -> list[str]:
        """Keys in key order strictly after ``after``; ``segment=(count, index)`` restricts to one."""
        sql = "SELECT key FROM vectors WHERE index_id = ?"
        params: list[Any] = [index_id]
        if after is not None:
            sql += " AND key > ?"
            params.append(after)
        if segment is not None and segment[0] > 1:
            sql += " AND hash % ? = ?"
            params += [segment[0], segment[1]]
        sql += " ORDER BY key LIMIT ?"
        params.append(limit)
        with self._reader() as conn:
            return [r[0] for r in conn.execute(sql, params).fetchall()]

    # -- long pagination tokens ---------------------------------------------------------------
    def save_token(self, token_id: str, state: str, now: float) -> None:
        with self.transaction() as conn:
            conn.execute("DELETE FROM tokens WHERE created < ?", (now - 86400.0,))
            conn.execute("INSERT OR REPLACE INTO tokens (id, state, created) VALUES (?, ?, ?)", (token_id, state, now))

    def load_token(self, token_id: str) -> str | None:
        with self._reader() as conn:
            row = conn.execute("SELECT state FROM tokens WHERE id = ?", (token_id,)).fetchone()
        return None if row is None else str(row[0])
