"""``s3vl reindex``: a new index is built beside the old one and the registered name switches only
when it is complete (real PostgreSQL + the local S3 Vectors endpoint; a stand-in worker pass
drains the shadow sync's queue)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from sync.errors import ReindexError
from sync.ops import reindex
from tests.integration.sync.ops.reconcile.test_cli import EndpointIndex
from tests.support.endpoint import EndpointHandle
from tests.support.reconcileenv import counts, create_docs_sync, drain_outbox, write_synced

MODEL = "amazon.titan-embed-text-v2:0"


@pytest.fixture
def docs(db_url: str, s3v: Any, aws_env: EndpointHandle) -> Iterator[tuple[psycopg.Connection[Any], str]]:
    bucket = f"rx-{uuid.uuid4().hex[:12]}"
    s3v.create_vector_bucket(vectorBucketName=bucket)
    arn = s3v.create_index(vectorBucketName=bucket, indexName="docs", dataType="float32", dimension=4,
                           distanceMetric="cosine",
                           metadataConfiguration={"nonFilterableMetadataKeys": ["s3vl_hash"]})["indexArn"]
    with psycopg.connect(db_url, autocommit=True) as conn:
        ev = create_docs_sync(conn, 30, index_arn=arn, bucket=bucket)
        write_synced(conn, EndpointIndex(s3v, arn), ev)
        yield conn, arn


def shadow_worker(db_url: str, s3v: Any) -> Any:
    """on_wait callback: one stand-in worker pass over the shadow sync's queue."""
    def work(pending: int) -> None:
        if not pending:
            return
        with psycopg.connect(db_url, autocommit=True) as conn:
            arn, ev, dims = conn.execute(
                "SELECT i.index_arn, s.embedding_version, s.dimensions FROM s3vl.syncs s "
                "JOIN s3vl.indexes i ON i.name = s.index_name WHERE s.name = 'docs_rx'").fetchone() or ("", "", 0)
            drain_outbox(conn, EndpointIndex(s3v, arn, dims), ev, sync="docs_rx")
    return work


def registered(conn: psycopg.Connection[Any]) -> tuple[Any, ...]:
    return conn.execute("SELECT index_arn, dimension, embedding_model FROM s3vl.indexes WHERE name = 'docs'"
                        ).fetchone() or ()


def test_reindex_switches_only_when_complete(
    docs: tuple[psycopg.Connection[Any], str], db_url: str, s3v: Any
) -> None:
    conn, old_arn = docs
    # started without waiting: the new index is empty, queries still use the old one
    started = reindex.run(db_url, "docs", MODEL, 512, wait_seconds=0)
    assert started.state == "backfilling"
    assert started.pending == 30
    assert registered(conn)[0] == old_arn
    new_arn = started.new_index_arn
    assert new_arn is not None
    assert s3v.get_index(indexArn=new_arn)["index"]["dimension"] == 512
    # a row changed during the backfill is captured for both syncs
    conn.execute("UPDATE public.docs SET body = 'edited' WHERE id = 7")

    done = reindex.run(db_url, "docs", MODEL, 512, poll_seconds=0.05, wait_seconds=30,
                       on_wait=shadow_worker(db_url, s3v))
    assert done.state == "switched"
    assert done.old_index_arn == old_arn
    assert registered(conn) == (new_arn, 512, MODEL)
    assert conn.execute("SELECT count(*) FROM s3vl.syncs WHERE name = 'docs_rx'").fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM s3vl.indexes").fetchone() == (1,)
    ev, dims = conn.execute("SELECT embedding_version, dimensions FROM s3vl.syncs WHERE name = 'docs'").fetchone() or ()
    assert dims == 512
    assert conn.execute("SELECT count(*) FILTER (WHERE embedding_version = %s), count(*) FROM s3vl.sync_state "
                        "WHERE sync_name = 'docs'", (ev,)).fetchone() == (30, 30)
    # the sync now reconciles clean against the new index (the edit included)
    assert done.verify is not None
    assert counts(done.verify) == {"orphaned": 0, "missing": 0, "stale": 0, "metadata_drift": 0, "state_drift": 0}
    from sync.ops.reconcile.run import ReconcileOptions, reconcile

    conn.execute("DELETE FROM s3vl.outbox WHERE sync_name = 'docs'")  # the old sync's own pass of the edit
    (after,) = reconcile(db_url, ReconcileOptions(), ["docs"])
    assert after.index_arn == new_arn
    assert counts(after) == {"orphaned": 0, "missing": 0, "stale": 0, "metadata_drift": 0, "state_drift": 0}
    # the old index is kept unless --drop-old
    assert s3v.get_index(indexArn=old_arn)["index"]["dimension"] == 4


def test_reindex_abort_and_misuse(docs: tuple[psycopg.Connection[Any], str], db_url: str, s3v: Any) -> None:
    conn, old_arn = docs
    with pytest.raises(ReindexError, match="already uses"):
        reindex.run(db_url, "docs", MODEL, 256, wait_seconds=0)
    with pytest.raises(ReindexError, match="--model and --dimensions"):
        reindex.run(db_url, "docs", None, None, wait_seconds=0)
    started = reindex.run(db_url, "docs", MODEL, 1024, wait_seconds=0)
    with pytest.raises(ReindexError, match="in progress"):
        reindex.run(db_url, "docs", MODEL, 512, wait_seconds=0)
    aborted = reindex.run(db_url, "docs", None, None, abort=True, drop_old=True)
    assert aborted.state == "aborted"
    assert aborted.new_index_arn == started.new_index_arn
    assert conn.execute("SELECT name FROM s3vl.syncs").fetchall() == [("docs",)]
    assert registered(conn)[0] == old_arn
    with pytest.raises(Exception, match="NotFound"):
        s3v.get_index(indexArn=started.new_index_arn)


def test_reindex_cli_no_wait_then_abort(
    docs: tuple[psycopg.Connection[Any], str], db_url: str, aws_env: EndpointHandle
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("S3VL_")}
    env.update(S3VL_DATABASE_URL=db_url, S3VL_LOG_LEVEL="warning")

    def s3vl(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "sync", *args], env=env, capture_output=True, text=True,
                              timeout=60, check=False)

    started = s3vl("reindex", "docs", "--model", MODEL, "--dimensions", "1024", "--wait-seconds", "0")
    assert started.returncode == 3, started.stderr
    assert "30 keys pending" in started.stdout
    aborted = s3vl("reindex", "docs", "--abort", "--drop-old")
    assert aborted.returncode == 0, aborted.stderr
    assert "abandoned" in aborted.stdout
    usage = s3vl("reindex", "docs", "--model", MODEL)
    assert usage.returncode == 2
    assert "--dimensions" in usage.stderr


def test_reindex_with_the_real_worker(db_url: str, endpoint: EndpointHandle, aws_env: EndpointHandle) -> None:
    import threading

    from sync.ops.reconcile.run import ReconcileOptions, reconcile
    from tests.support.syncenv import products_env

    env = products_env(db_url, endpoint, rows=30)
    env.drain()
    old_arn = env.index_arn
    worker = env.worker("reindexer", batch_size=10)
    loop = threading.Thread(target=worker.run, daemon=True)
    loop.start()
    try:
        env.sql("UPDATE products SET name = 'during the reindex' WHERE id = 4")
        result = reindex.run(db_url, "products", MODEL, 512, poll_seconds=0.1, wait_seconds=60)
    finally:
        worker.stop()
        loop.join(30)
    assert result.state == "switched"
    arn, dims, model = env.sql("SELECT index_arn, dimension, embedding_model FROM s3vl.indexes "
                               "WHERE name = 'products'")[0]
    assert (arn, dims, model) == (result.new_index_arn, 512, MODEL)
    assert arn != old_arn
    env.index_arn = arn
    env.drain()  # whatever the old sync still had queued now goes to the new index
    env.assert_converged()
    (after,) = reconcile(db_url, ReconcileOptions(), ["products"])
    assert counts(after) == {"orphaned": 0, "missing": 0, "stale": 0, "metadata_drift": 0, "state_drift": 0}
    vectors = endpoint.client("s3vectors").get_vectors(indexArn=arn, keys=["4"], returnData=True)["vectors"]
    assert len(vectors[0]["data"]["float32"]) == 512
