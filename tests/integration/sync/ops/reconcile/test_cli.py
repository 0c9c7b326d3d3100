"""Reconcile end to end: the ``s3vl reconcile`` command against real PostgreSQL and the real
local S3 Vectors endpoint (unmodified boto3), including throttling on ListVectors and coverage
of all 16 segments over many pages.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from sync.ops.reconcile.run import ReconcileOptions, reconcile
from tests.support.endpoint import DUMMY_KEY, REGION, EndpointHandle
from tests.support.reconcileenv import NO_METADATA, create_docs_sync, drain_outbox, write_synced


class EndpointIndex:
    """The ``put``/``vectors`` surface of FakeVectors over a real index (for the shared helpers)."""

    def __init__(self, s3v: Any, arn: str, dimension: int = 4) -> None:
        self.s3v = s3v
        self.arn = arn
        self.dimension = dimension

    def put(self, key: str, metadata: dict[str, Any]) -> None:
        data = [0.1 + i / self.dimension for i in range(self.dimension)]
        self.s3v.put_vectors(indexArn=self.arn, vectors=[
            {"key": key, "data": {"float32": data}, "metadata": metadata}])

    @property
    def vectors(self) -> _Deleter:
        return _Deleter(self)

    def keys(self) -> set[str]:
        out: set[str] = set()
        token = None
        while True:
            kw: dict[str, Any] = {"indexArn": self.arn, "maxResults": 1000}
            if token:
                kw["nextToken"] = token
            resp = self.s3v.list_vectors(**kw)
            out.update(v["key"] for v in resp["vectors"])
            token = resp.get("nextToken")
            if not token:
                return out


class _Deleter:
    def __init__(self, index: EndpointIndex) -> None:
        self.index = index

    def pop(self, key: str, default: Any = None) -> Any:
        self.index.s3v.delete_vectors(indexArn=self.index.arn, keys=[key])
        return default


@pytest.fixture
def setup(db_url: str, s3v: Any) -> Iterator[tuple[psycopg.Connection[Any], EndpointIndex, str]]:
    bucket = f"rc-{uuid.uuid4().hex[:12]}"
    s3v.create_vector_bucket(vectorBucketName=bucket)
    arn = s3v.create_index(vectorBucketName=bucket, indexName="docs", dataType="float32", dimension=4,
                           distanceMetric="cosine",
                           metadataConfiguration={"nonFilterableMetadataKeys": ["s3vl_hash"]})["indexArn"]
    with psycopg.connect(db_url, autocommit=True) as conn:
        ev = create_docs_sync(conn, 40, index_arn=arn, bucket=bucket)
        index = EndpointIndex(s3v, arn)
        write_synced(conn, index, ev)
        yield conn, index, ev


def cli(db_url: str, endpoint: EndpointHandle, *args: str) -> tuple[int, dict[str, Any]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("S3VL_", "AWS_"))}
    env.update(S3VL_DATABASE_URL=db_url, AWS_ENDPOINT_URL=endpoint.url, AWS_REGION=REGION,
               AWS_ACCESS_KEY_ID=DUMMY_KEY, AWS_SECRET_ACCESS_KEY=DUMMY_KEY, S3VL_LOG_LEVEL="warning")
    proc = subprocess.run([sys.executable, "-m", "sync", "reconcile", "--json", *args],
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.stdout, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def counts(out: dict[str, Any]) -> dict[str, int]:
    (sync,) = out["syncs"]
    return {name: c["count"] for name, c in sync["categories"].items()}


def test_cli_dry_run_apply_and_clean_second_run(
    setup: tuple[psycopg.Connection[Any], EndpointIndex, str], db_url: str, endpoint: EndpointHandle,
    tmp_path: Path,
) -> None:
    conn, index, ev = setup
    code, out = cli(db_url, endpoint)
    assert code == 0
    assert counts(out) == {"orphaned": 0, "missing": 0, "stale": 0, "metadata_drift": 0, "state_drift": 0}

    index.s3v.delete_vectors(indexArn=index.arn, keys=["1", "2"])          # missing
    index.put("ghost", {"s3vl_id": "ghost"})                                # orphaned
    index.put("3", {"s3vl_id": "3", "s3vl_ev": "old", "s3vl_hash": "x"})   # stale (+ state drift)
    conn.execute("SET session_replication_role = replica")
    conn.execute("DELETE FROM public.docs WHERE id = 4")                    # orphaned
    conn.execute("SET session_replication_role = origin")

    metrics = tmp_path / "reconcile.prom"
    code, out = cli(db_url, endpoint, "--metrics-file", str(metrics))
    assert code == 3, out
    assert counts(out) == {"orphaned": 2, "missing": 2, "stale": 1, "metadata_drift": 0, "state_drift": 3}
    prom = metrics.read_text()
    assert 's3vl_reconcile_drift{category="orphaned",sync="docs"} 2.0' in prom
    assert 's3vl_reconcile_exit_code{sync="docs"} 3.0' in prom
    assert out["syncs"][0]["categories"]["orphaned"]["sample"] == ["4", "ghost"]

    code, out = cli(db_url, endpoint, "--apply")
    assert code == 0, out
    assert out["syncs"][0]["categories"]["orphaned"]["repaired"] == 2
    assert not {"4", "ghost"} & index.keys()
    assert [r[0] for r in conn.execute("SELECT key FROM s3vl.outbox ORDER BY key")] == ["1", "2", "3"]

    drain_outbox(conn, index, ev)
    code, out = cli(db_url, endpoint)
    assert code == 0
    assert counts(out) == {"orphaned": 0, "missing": 0, "stale": 0, "metadata_drift": 0, "state_drift": 0}
    last = conn.execute("SELECT last_reconcile_at IS NOT NULL, last_reconcile->>'applied' "
                        "FROM s3vl.sync_status WHERE sync_name = 'docs'").fetchone()
    assert last == (True, "false")


def test_cli_safety_limit_exit_code(
    setup: tuple[psycopg.Connection[Any], EndpointIndex, str], db_url: str, endpoint: EndpointHandle
) -> None:
    conn, index, _ = setup
    conn.execute("SET session_replication_role = replica")
    conn.execute("DELETE FROM public.docs WHERE id <= 8")  # 20% of the index
    conn.execute("SET session_replication_role = origin")
    code, out = cli(db_url, endpoint, "--apply")
    assert code == 4
    assert "--force" in out["syncs"][0]["refused"]
    assert len(index.keys()) == 40
    code, out = cli(db_url, endpoint, "--apply", "--force")
    assert code == 0
    assert len(index.keys()) == 32


def test_scan_covers_all_segments_and_pages_under_throttling(
    db_url: str, s3v: Any, endpoint: EndpointHandle, aws_env: EndpointHandle
) -> None:
    bucket = f"rc-{uuid.uuid4().hex[:12]}"
    s3v.create_vector_bucket(vectorBucketName=bucket)
    arn = s3v.create_index(vectorBucketName=bucket, indexName="docs", dataType="float32", dimension=4,
                           distanceMetric="cosine")["indexArn"]
    with psycopg.connect(db_url, autocommit=True) as conn:
        ev = create_docs_sync(conn, 1500, index_arn=arn, bucket=bucket)
        key_sql = "SELECT id::text, s3vl_hash FROM (SELECT id, " \
                  "left(encode(sha256(convert_to(title || '. ' || coalesce(body, ''), 'UTF8')), 'hex'), 32) " \
                  "AS s3vl_hash FROM public.docs) t ORDER BY id"
        rows = conn.execute(key_sql).fetchall()
        for start in range(0, len(rows), 500):
            s3v.put_vectors(indexArn=arn, vectors=[
                {"key": k, "data": {"float32": [0.5, 0.1, 0.2, 0.3]},
                 "metadata": {"s3vl_id": k, "s3vl_ev": ev, "s3vl_hash": h, "s3vl_chunk": 0}}
                for k, h in rows[start:start + 500]])
        conn.execute("INSERT INTO s3vl.sync_state (sync_name, key, content_hash, metadata_hash, embedding_version, "
                     "chunk_count, synced_at) SELECT 'docs', k, h, %s, %s, 1, now() - interval '1 hour' "
                     "FROM unnest(%s::text[], %s::text[]) AS u(k, h)",
                     (NO_METADATA, ev, [r[0] for r in rows], [r[1] for r in rows]))
    endpoint.admin.set_faults({"seed": 3, "rules": [
        {"service": "s3vectors", "operation": "ListVectors", "throttle_fraction": 0.3}]})
    try:
        report, = reconcile(db_url, ReconcileOptions(segments=16, page_size=37), ["docs"])
    finally:
        endpoint.admin.clear_faults()
    assert report.error is None
    assert report.index_vectors == 1500
    assert report.pages >= 1500 // 37
    assert {n: r.count for n, r in report.categories.items()} == {
        "orphaned": 0, "missing": 0, "stale": 0, "metadata_drift": 0, "state_drift": 0}
