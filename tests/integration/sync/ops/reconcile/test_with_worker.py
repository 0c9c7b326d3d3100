"""Reconcile with the real sync worker (the real pipeline, local Bedrock + S3 Vectors): the worker's
vectors and state agree with reconcile's SQL view exactly; drift made while the worker is stopped
is found, repaired with --apply, and the worker's next pass leaves nothing for a second run.
"""

from __future__ import annotations

from typing import Any

import pytest

from sync.ops.reconcile.report import Category, ExitCode
from sync.ops.reconcile.run import ReconcileOptions, reconcile
from tests.support.endpoint import EndpointHandle
from tests.support.syncenv import SyncEnv, products_env

pytestmark = pytest.mark.usefixtures("aws_env")
ZERO = {"orphaned": 0, "missing": 0, "stale": 0, "metadata_drift": 0, "state_drift": 0}


def run(env: SyncEnv, **opts: Any) -> Any:
    """Reconcile as the worker's login (s3vl_worker's documented grants only, not a superuser)."""
    (report,) = reconcile(env.worker_url, ReconcileOptions(**opts), [env.sync])
    return report


def counts(report: Any) -> dict[str, int]:
    return {name: r.count for name, r in report.categories.items()}


@pytest.mark.parametrize("chunking", [{}, {"chunk_size": 100, "chunk_overlap": 10}], ids=["plain", "chunked"])
def test_worker_output_reconciles_clean_and_drift_is_repaired(
    db_url: str, endpoint: EndpointHandle, chunking: dict[str, Any]
) -> None:
    env = products_env(db_url, endpoint, rows=40, **chunking)
    long_text = " ".join(f"sentence {i} about trail shoes." for i in range(12))
    env.sql("UPDATE products SET description = %s WHERE id <= 5", (long_text,))
    env.drain()
    assert counts(run(env)) == ZERO  # the worker's keys, hashes, versions and state are reconcile's

    s3v = env.endpoint.client("s3vectors")
    index = env.index()
    # worker stopped: rows deleted and changed (captured in the outbox, not yet applied) ...
    env.sql("DELETE FROM products WHERE id IN (1, 2)")
    env.sql("UPDATE products SET name = 'renamed' WHERE id = 3")
    # ... vectors lost behind s3vl's back, and a stranger's vector
    lost = [k for k in index if index[k]["s3vl_id"] == "10"]
    s3v.delete_vectors(indexArn=env.index_arn, keys=lost)
    s3v.put_vectors(indexArn=env.index_arn, vectors=[
        {"key": "intruder", "data": {"float32": [0.1] * 256}, "metadata": {"s3vl_id": "intruder"}}])
    deleted_vectors = sum(1 for k in index if index[k]["s3vl_id"] in ("1", "2"))

    report = run(env)
    assert counts(report) == {"orphaned": deleted_vectors + 1, "missing": 1, "stale": 1, "metadata_drift": 0,
                              "state_drift": 1}
    assert report.exit_code() is ExitCode.DRIFT_NOT_REPAIRED

    applied = run(env, apply=True, max_delete_share=0.5)
    assert applied.exit_code() is ExitCode.CLEAN
    assert "intruder" not in env.index()
    env.drain()  # the worker's next pass (its own queued deletes are now no-ops)
    if not chunking:
        env.assert_converged()  # keys, hashes and metadata as the source says
    again = run(env)
    assert counts(again) == ZERO
    assert again.exit_code() is ExitCode.CLEAN


def test_model_change_is_a_rolling_reembed(db_url: str, endpoint: EndpointHandle) -> None:
    env = products_env(db_url, endpoint, rows=25)
    env.drain()
    # a new text expression: every vector is stale; re-embed at most 10 per reconcile run
    env.sql("UPDATE s3vl.syncs SET text_expression = $$name || ' / ' || coalesce(category, '')$$, "
            "embedding_version = 'v2-by-hand' WHERE name = 'products'")
    first = run(env, apply=True, max_reembed=10)
    assert counts(first)["stale"] == 25
    assert first.deferred_stale == 15
    env.drain()
    second = run(env, apply=True, max_reembed=10)
    assert counts(second)["stale"] == 15
    env.drain()
    third = run(env, apply=True, max_reembed=10)
    assert counts(third)["stale"] == 5
    assert third.exit_code() is ExitCode.CLEAN
    env.drain()
    assert counts(run(env)) == ZERO


def test_reconcile_apply_while_the_worker_runs_and_rows_change(db_url: str, endpoint: EndpointHandle) -> None:
    """Races: reconcile --apply runs repeatedly while a worker loop runs and rows keep changing.
    Repairs may cost extra work but never lose a change: after the writers stop and the queue
    drains, the index holds exactly what the source says and a reconcile is clean."""
    import random
    import threading

    env = products_env(db_url, endpoint, rows=60)
    env.drain()
    worker = env.worker("racer", batch_size=7)
    loop = threading.Thread(target=worker.run, daemon=True)
    loop.start()
    stop = threading.Event()

    def writer() -> None:
        rnd = random.Random(5)
        next_id = 1000
        while not stop.is_set():
            op = rnd.choice(["update", "insert", "delete"])
            if op == "update":
                env.sql("UPDATE products SET description = md5(random()::text) WHERE id = %s", (rnd.randint(1, 60),))
            elif op == "insert":
                next_id += 1
                env.sql("INSERT INTO products (id, name) VALUES (%s, 'new')", (next_id,))
            else:
                env.sql("DELETE FROM products WHERE id = %s", (rnd.randint(1, 60),))

    writing = threading.Thread(target=writer, daemon=True)
    writing.start()
    try:
        for _ in range(4):
            report = run(env, apply=True, max_delete_share=1.0)
            assert report.error is None
    finally:
        stop.set()
        writing.join(10)
        worker.stop()
        loop.join(30)
    env.drain()
    final = run(env, apply=True)
    if final.drift:  # at most one more round: what the last racing pass left
        env.drain()
        final = run(env)
    assert counts(final) == ZERO
    env.assert_converged()


def test_metadata_drift_is_repaired_by_the_worker_without_embedding(db_url: str, endpoint: EndpointHandle) -> None:
    env = products_env(db_url, endpoint, rows=20)
    env.drain()
    s3v = env.endpoint.client("s3vectors")
    (vec,) = s3v.get_vectors(indexArn=env.index_arn, keys=["4"], returnData=True, returnMetadata=True)["vectors"]
    # another tool rewrote the vector's metadata: text, hash and version still current
    s3v.put_vectors(indexArn=env.index_arn, vectors=[
        {"key": "4", "data": vec["data"], "metadata": {**vec["metadata"], "category": "wrong", "stray": 1}}])

    report = run(env)
    assert counts(report) == {**ZERO, "metadata_drift": 1}
    assert report.category(Category.METADATA_DRIFT).sample == ["4"]
    rolling = [run(env, segments_per_run=8) for _ in range(2)]  # the first snapshot's cycle judges all
    assert sum(r.category(Category.METADATA_DRIFT).count for r in rolling) == 1

    assert run(env, apply=True).exit_code() is ExitCode.CLEAN
    def invokes() -> int:
        return int(endpoint.admin.counters().get("bedrock", {}).get("InvokeModel", {}).get("requests", 0))

    before = invokes()
    env.drain()
    assert invokes() == before  # a metadata-only re-put: no embedding call
    env.assert_converged()
    assert "stray" not in env.index()["4"]
    assert counts(run(env)) == ZERO
    steady = [run(env, segments_per_run=8) for _ in range(2)]  # scoped runs: each judges its share
    assert [r.rolling.judged for r in steady] == ["share", "share"]
    assert all(counts(r) == ZERO for r in steady)
