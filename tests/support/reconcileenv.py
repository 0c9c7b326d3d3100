# ruff: noqa: N803  (the fake takes boto3's camelCase keyword arguments)
"""Helpers for the reconcile tests: a sync with a known-good index, and drift injection.

``FakeVectors`` is an in-memory S3 Vectors index with ListVectors' segment/page semantics and
DeleteVectors' 500-key limit (a fake, not a mock: it keeps state and enforces the limits), so the
SQL classification can be tested exactly and fast; the same scenarios also run against the real
local endpoint through boto3 (tests/integration/sync/ops/reconcile/test_cli.py).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import psycopg

from sync.datapath.contract import metadata_hash

INDEX_ARN = "arn:aws:s3vectors:us-west-2:000000000000:bucket/rc-bucket/index/docs"
#: The metadata hash the worker records for a vector of the docs sync (no declared columns, no text).
NO_METADATA = metadata_hash({}, False)


class FakeVectors:
    """key -> metadata; list pages are stable and segments are a hash partition of the keys."""

    def __init__(self) -> None:
        self.vectors: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()
        self.list_calls: list[tuple[int, int, str | None]] = []
        self.delete_calls: list[int] = []

    # boto3-shaped methods ------------------------------------------------------------------
    def list_vectors(self, *, indexArn: str, maxResults: int, segmentCount: int, segmentIndex: int,
                     returnMetadata: bool, returnData: bool, nextToken: str | None = None) -> dict[str, Any]:
        assert indexArn == INDEX_ARN
        assert returnMetadata
        assert not returnData
        with self.lock:
            self.list_calls.append((segmentIndex, segmentCount, nextToken))
            mine = sorted(k for k in self.vectors
                          if int(hashlib.md5(k.encode()).hexdigest(), 16) % segmentCount == segmentIndex)
            start = int(nextToken or 0)
            page = mine[start:start + maxResults]
            out: dict[str, Any] = {"vectors": [{"key": k, "metadata": dict(self.vectors[k])} for k in page]}
        if start + maxResults < len(mine):
            out["nextToken"] = str(start + maxResults)
        return out

    def delete_vectors(self, *, indexArn: str, keys: Sequence[str]) -> dict[str, Any]:
        assert indexArn == INDEX_ARN
        assert 1 <= len(keys) <= 500, "DeleteVectors takes 1..500 keys"
        with self.lock:
            self.delete_calls.append(len(keys))
            for k in keys:
                self.vectors.pop(k, None)
        return {}

    def put(self, key: str, metadata: Mapping[str, Any]) -> None:
        with self.lock:
            self.vectors[key] = dict(metadata)


def create_docs_sync(conn: psycopg.Connection[Any], rows: int, chunk_size: int | None = None,
                     index_arn: str = INDEX_ARN, bucket: str = "rc-bucket") -> str:
    """A source table ``public.docs`` with ``rows`` rows and a sync ``docs`` (no backfill queued)."""
    conn.execute("CREATE TABLE public.docs (id int PRIMARY KEY, title text, body text)")
    conn.execute("INSERT INTO public.docs SELECT g, 'title ' || g, 'body of ' || g FROM generate_series(1, %s) g",
                 (rows,))
    conn.execute(
        "INSERT INTO s3vl.indexes (name, index_arn, region, account_id, bucket_name, index_name) "
        "VALUES ('docs', %s, 'us-west-2', '000000000000', %s, 'docs') ON CONFLICT DO NOTHING",
        (index_arn, bucket))
    row = conn.execute(
        "SELECT embedding_version FROM s3vl.create_sync(name => 'docs', source => 'public.docs', "
        "index_name => 'docs', text_expression => $$title || '. ' || coalesce(body, '')$$, "
        "embedding_model => 'amazon.titan-embed-text-v2:0', dimensions => 256, chunk_size => %s, "
        "backfill => false)", (chunk_size,)).fetchone()
    assert row is not None
    return str(row[0])


def current_rows(conn: psycopg.Connection[Any], sync: str = "docs") -> list[tuple[str, str]]:
    """(key, content hash) of every source row, computed with the sync's own SQL expressions."""
    key_sql, hash_sql = conn.execute("SELECT s3vl.sync_key_sql(%s, 'src'), s3vl.sync_hash_sql(%s, 'src')",
                                     (sync, sync)).fetchone() or ("", "")
    return [(str(k), str(h)) for k, h in conn.execute(f"SELECT {key_sql}, {hash_sql} FROM public.docs AS src")]


def write_synced(conn: psycopg.Connection[Any], index: Any, ev: str, keys: Sequence[tuple[str, str]] | None = None,
                 chunks: int | None = None, sync: str = "docs") -> None:
    """What a healthy worker leaves behind: vectors and state rows agreeing with the source."""
    rows = keys if keys is not None else current_rows(conn, sync)
    for key, h in rows:
        n = chunks or 1
        for c in range(n):
            vkey = f"{key}#{c}" if chunks else key
            index.put(vkey, {"s3vl_id": key, "s3vl_ev": ev, "s3vl_hash": h, "s3vl_chunk": c})
        conn.execute(
            "INSERT INTO s3vl.sync_state (sync_name, key, content_hash, metadata_hash, embedding_version, "
            "chunk_count, chunked, synced_at) VALUES (%s, %s, %s, %s, %s, %s, %s, now() - interval '1 hour') "
            "ON CONFLICT (sync_name, key) DO UPDATE SET content_hash = excluded.content_hash, "
            "metadata_hash = excluded.metadata_hash, "
            "embedding_version = excluded.embedding_version, chunk_count = excluded.chunk_count, "
            "chunked = excluded.chunked, synced_at = excluded.synced_at",
            (sync, key, h, NO_METADATA, ev, n, chunks is not None))


def drain_outbox(conn: psycopg.Connection[Any], index: Any, ev: str, chunks: int | None = None,
                 sync: str = "docs") -> int:
    """A stand-in worker pass: write every queued key as the worker would, and complete it."""
    keys = [str(r[0]) for r in conn.execute("SELECT key FROM s3vl.outbox WHERE sync_name = %s ORDER BY key",
                                            (sync,))]
    if not keys:
        return 0
    loaded = {str(k): str(h) for k, h in conn.execute(
        "SELECT key, content_hash FROM s3vl.load_rows(%s, %s)", (sync, keys))}
    gone = [k for k in keys if k not in loaded]
    write_synced(conn, index, ev, sorted(loaded.items()), chunks, sync)
    for k in gone:
        for vkey in ([f"{k}#{c}" for c in range(chunks)] if chunks else [k]):
            index.vectors.pop(vkey, None)
    conn.execute("DELETE FROM s3vl.sync_state WHERE sync_name = %s AND key = ANY(%s)", (sync, gone))
    conn.execute("DELETE FROM s3vl.outbox WHERE sync_name = %s AND key = ANY(%s)", (sync, keys))
    return len(keys)


def counts(report: Any) -> dict[str, int]:
    return {name: r.count for name, r in report.categories.items()}


def inject_everything(conn: psycopg.Connection[Any], index: FakeVectors) -> None:
    """One case of each kind (of 50 synced rows); the expected counts are in test_run.py's
    test_each_category_exact_counts."""
    for k in ("1", "2"):                      # vectors deleted behind s3vl's back
        del index.vectors[k]
    for k in ("x1", "x2", "x3"):              # vectors with keys no source row has
        index.put(k, {"s3vl_ev": "zzz"})
    index.vectors["3"]["s3vl_hash"] = "0" * 32  # a vector written from other text
    index.vectors["4"]["s3vl_ev"] = "oldversion"  # a vector from an older embedding version
    index.vectors["9"]["color"] = "red"  # metadata another tool wrote (text, hash and version current)
    # rows changed / deleted while capture was off (a lost slot, a restored backup)
    conn.execute("SET session_replication_role = replica")
    conn.execute("UPDATE public.docs SET body = 'rewritten' WHERE id = 5")
    conn.execute("DELETE FROM public.docs WHERE id = 6")
    conn.execute("SET session_replication_role = origin")
    conn.execute("DELETE FROM s3vl.sync_state WHERE key = '7'")                 # state lost
    conn.execute("UPDATE s3vl.sync_state SET content_hash = 'wrong' WHERE key = '8'")  # state wrong
