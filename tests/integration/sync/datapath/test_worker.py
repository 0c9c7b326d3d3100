"""The sync worker against real PostgreSQL and the real local endpoint (boto3, unmodified).

Every test ends by comparing the index with what the source says it must hold
(:meth:`SyncEnv.assert_converged`): keys, content hashes and metadata.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sync.datapath.outbox import Outbox
from sync.db.connection import Database
from tests.support.endpoint import DUMMY_KEY, REGION, EndpointHandle
from tests.support.paths import REPO
from tests.support.syncenv import SyncEnv, bedrock_texts, products_env

pytestmark = pytest.mark.usefixtures("aws_env")


@pytest.fixture
def env(db_url: str, endpoint: EndpointHandle) -> SyncEnv:
    return products_env(db_url, endpoint, rows=20)


def test_backfill_insert_update_delete_truncate(env: SyncEnv) -> None:
    assert env.sql("SELECT pending FROM s3vl.sync_status")[0][0] == 20  # create_sync queued the backfill
    env.drain()
    env.assert_converged()
    assert len(env.index()) == 20

    env.sql("INSERT INTO products (id, name, description, category, price) VALUES (100, 'new', 'thing', 'c', 1)")
    env.sql("UPDATE products SET name = name || ' v2' WHERE id <= 3")
    env.sql("DELETE FROM products WHERE id IN (4, 5)")
    assert env.sql("SELECT count(*) FROM s3vl.outbox")[0][0] == 6
    env.drain()
    env.assert_converged()
    assert "4" not in env.index()
    assert env.index()["1"]["s3vl_hash"] == env.expected()["1"]["hash"]

    env.sql("TRUNCATE products")
    env.drain()
    env.assert_converged()
    assert env.index() == {}
    assert env.sql("SELECT count(*) FROM s3vl.sync_state")[0][0] == 0


def test_update_of_unread_column_enqueues_nothing(env: SyncEnv) -> None:
    env.drain()
    env.sql("UPDATE products SET views = views + 1")
    assert env.sql("SELECT count(*) FROM s3vl.outbox")[0][0] == 0
    env.sql("UPDATE products SET price = price WHERE id = 1")  # same values: nothing changed
    assert env.sql("SELECT count(*) FROM s3vl.outbox")[0][0] == 0


def test_metadata_only_update_calls_no_model(env: SyncEnv) -> None:
    env.drain()
    before = bedrock_texts(env.endpoint)
    env.sql("UPDATE products SET price = price + 1, in_stock = false WHERE id <= 5")
    env.drain()
    assert bedrock_texts(env.endpoint) == before
    env.assert_converged()
    assert env.index()["1"]["in_stock"] is False

    # a text change does call the model, once per changed row
    env.sql("UPDATE products SET description = 'changed' WHERE id = 7")
    env.drain()
    assert bedrock_texts(env.endpoint) == before + 1
    env.assert_converged()


def test_unchanged_rows_make_no_aws_call(env: SyncEnv) -> None:
    env.drain()
    counters = env.endpoint.admin.counters()
    puts = counters["s3vectors"].get("PutVectors", {}).get("requests", 0)
    env.sql("SELECT s3vl.resync('products')")
    env.drain()
    after = env.endpoint.admin.counters()
    assert after["s3vectors"].get("PutVectors", {}).get("requests", 0) == puts
    assert after["bedrock"]["InvokeModel"]["texts"] == counters["bedrock"]["InvokeModel"]["texts"]


def test_chunk_growth_and_shrink(db_url: str, endpoint: EndpointHandle) -> None:
    env = products_env(db_url, endpoint, rows=3, chunk_size=100, chunk_overlap=10)
    env.drain()
    assert sorted(env.index()) == ["1#0", "2#0", "3#0"]
    long_text = " ".join(f"sentence {i} about trail shoes." for i in range(30))
    env.sql("UPDATE products SET description = %s WHERE id = 1", (long_text,))
    env.drain()
    chunks = sorted(k for k in env.index() if k.startswith("1#"))
    assert len(chunks) >= 5
    assert env.sql("SELECT chunk_count, chunked FROM s3vl.sync_state WHERE key = '1'")[0] == (len(chunks), True)
    index = env.index()
    assert {index[k]["s3vl_chunk"] for k in chunks} == set(range(len(chunks)))
    assert all(index[k]["s3vl_id"] == "1" for k in chunks)

    env.sql("UPDATE products SET description = 'short again' WHERE id = 1")
    env.drain()
    assert sorted(k for k in env.index() if k.startswith("1#")) == ["1#0"]

    # chunking switched off: keys go back to the plain key, old chunk keys are deleted
    env.sql("SELECT s3vl.alter_sync('products', disable_chunking => true)")
    env.drain()
    assert sorted(env.index()) == ["1", "2", "3"]


def test_bad_rows_fail_alone_and_retry(db_url: str, endpoint: EndpointHandle) -> None:
    env = products_env(db_url, endpoint, rows=10, max_attempts=2)
    env.sql("UPDATE products SET category = repeat('x', 3000) WHERE id = 3")       # over 2 KB filterable
    env.sql("UPDATE products SET description = repeat('y ', 30000) WHERE id = 4")  # over Titan's 50,000 chars
    env.drain()
    failed = dict(env.sql("SELECT key, last_error FROM s3vl.sync_failures"))
    assert set(failed) == {"3", "4"}
    assert "filterable metadata" in failed["3"]
    assert "50000" in failed["4"]
    status = env.sql("SELECT failed, pending, synced_keys FROM s3vl.sync_status")[0]
    assert status == (2, 0, 8)
    assert set(env.index()) == {str(i) for i in range(1, 11)} - {"3", "4"}

    # retry on demand: still bad, fails again after its attempts
    assert env.sql("SELECT s3vl.retry_failed()")[0][0] == 2
    env.drain()
    assert env.sql("SELECT count(*) FROM s3vl.sync_failures")[0][0] == 2
    # fixing the row queues it again by itself
    env.sql("UPDATE products SET category = 'ok' WHERE id = 3")
    env.sql("UPDATE products SET description = 'fine' WHERE id = 4")
    env.drain()
    env.assert_converged()


def test_lease_expiry_gives_keys_to_another_worker(env: SyncEnv) -> None:
    dead = Outbox(Database(env.db_url))
    lease = dead.lease("dead-worker", 100, 1.0)
    assert lease is not None
    assert len(lease.keys) == 20
    assert Outbox(Database(env.db_url)).lease("other", 100, 1.0) is None  # all leased
    time.sleep(1.2)
    env.drain()
    env.assert_converged()
    # the dead worker wakes up and completes with its stale lease: the keys are requeued, not lost
    completed, requeued = dead.complete("products", "dead-worker", [])
    assert (completed, requeued) == (0, 0)


def test_completion_with_changed_version_requeues(env: SyncEnv) -> None:
    w = env.worker("w1")
    lease = w.outbox.lease("w1", 5, 30)
    assert lease is not None
    env.sql("UPDATE products SET name = 'changed meanwhile' WHERE id = %s", (int(lease.keys[0].key),))
    report = w.pipeline("products").process(lease, w.outbox)
    assert report.requeued == 1
    assert report.completed == 4
    assert env.sql("SELECT content_hash FROM s3vl.sync_state WHERE key = %s", (lease.keys[0].key,))[0][0] is None
    env.drain()
    env.assert_converged()


def test_faults_converge(env: SyncEnv) -> None:
    env.endpoint.admin.set_faults({"seed": 11, "throttle_fraction": 0.2, "unavailable_fraction": 0.05})
    try:
        env.sql("UPDATE products SET description = description || ' again' WHERE id % 2 = 0")
        env.sql("INSERT INTO products (id, name) SELECT g, 'extra ' || g FROM generate_series(21, 60) g")
        env.sql("DELETE FROM products WHERE id % 5 = 0")
        env.drain(batch_size=17)
    finally:
        env.endpoint.admin.clear_faults()
    env.assert_converged()
    assert env.sql("SELECT count(*) FROM s3vl.sync_failures")[0][0] == 0


def test_endpoint_outage_counts_no_attempt(env: SyncEnv) -> None:
    env.endpoint.admin.set_faults({"unavailable_fraction": 1.0})
    try:
        from sync.aws.retry import RetryPolicy

        worker = env.worker(policy=RetryPolicy(attempts=2, base=0.001, cap=0.01))
        with pytest.raises(Exception, match="ServiceUnavailable"):
            worker.run_once()
    finally:
        env.endpoint.admin.clear_faults()
    leftover = env.sql("SELECT max(attempts), count(*) FILTER (WHERE lease_until IS NOT NULL) FROM s3vl.outbox")
    assert leftover[0] == (0, 0)
    env.drain()
    env.assert_converged()


_WORKER_SCRIPT = """
import sys
from sync.aws.retry import RetryPolicy
from sync.datapath.worker import Worker, WorkerOptions
opts = WorkerOptions(batch_size=5, lease_seconds=2, poll_seconds=0.05, concurrency=1, retry_after=0,
                     region=sys.argv[2], endpoint_url=sys.argv[3])
worker = Worker(sys.argv[1], opts, worker_id="doomed")
worker.install_signal_handlers()
print("started", flush=True)
worker.run(once=False)
"""


def _spawn_worker(env: SyncEnv) -> subprocess.Popen[str]:
    child_env = {**os.environ, "AWS_ACCESS_KEY_ID": DUMMY_KEY, "AWS_SECRET_ACCESS_KEY": DUMMY_KEY,
                 "S3VL_LOG_LEVEL": "warning"}
    return subprocess.Popen([sys.executable, "-c", _WORKER_SCRIPT, env.db_url, REGION, env.endpoint.url],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=child_env,
                            cwd=REPO)


def test_kill_9_mid_batch_loses_nothing(env: SyncEnv) -> None:
    env.sql("INSERT INTO products (id, name) SELECT g, 'more ' || g FROM generate_series(21, 80) g")
    # slow Bedrock down so the child is certainly inside a batch when it dies
    env.endpoint.admin.set_faults({"rules": [{"service": "bedrock", "latency_ms": 40}]})
    proc = _spawn_worker(env)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "started"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            done = env.sql("SELECT count(*) FROM s3vl.sync_state")[0][0]
            leased = env.sql("SELECT count(*) FROM s3vl.outbox WHERE leased_by = 'doomed'")[0][0]
            if done >= 5 and leased > 0:
                break
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        env.endpoint.admin.clear_faults()
        if proc.poll() is None:
            proc.kill()
    assert env.sql("SELECT count(*) FROM s3vl.outbox")[0][0] > 0  # it died with work left
    time.sleep(2.1)  # its lease expires
    env.drain()
    env.assert_converged()


def test_sigterm_finishes_the_batch_and_exits(env: SyncEnv) -> None:
    proc = _spawn_worker(env)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "started"
    deadline = time.monotonic() + 20
    while env.sql("SELECT count(*) FROM s3vl.outbox")[0][0] and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0
    env.assert_converged()


# --- two workers, random operations -------------------------------------------------------------
_ops = st.lists(
    st.tuples(st.sampled_from(["insert", "update_text", "update_meta", "delete", "touch", "truncate"]),
              st.integers(1, 30)),
    min_size=5, max_size=25)


def _apply(conn: psycopg.Connection[Any], op: str, n: int) -> None:
    if op == "insert":
        conn.execute("INSERT INTO products (id, name, category) VALUES (%s, %s, 'c') "
                     "ON CONFLICT (id) DO UPDATE SET name = excluded.name", (n, f"item {n} {time.monotonic_ns()}"))
    elif op == "update_text":
        conn.execute("UPDATE products SET description = %s WHERE id >= %s", (f"d{time.monotonic_ns()}", n))
    elif op == "update_meta":
        conn.execute("UPDATE products SET price = coalesce(price, 0) + 1 WHERE id <= %s", (n,))
    elif op == "delete":
        conn.execute("DELETE FROM products WHERE id = %s OR id = %s", (n, n + 7))
    elif op == "touch":
        conn.execute("UPDATE products SET views = views + 1 WHERE id <= %s", (n,))
    elif op == "truncate" and n % 5 == 0:
        conn.execute("TRUNCATE products")


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=_ops)
def test_two_workers_never_lose_a_change(db_url: str, endpoint: EndpointHandle, ops: list[tuple[str, int]]) -> None:
    env = products_env(db_url, endpoint, rows=0) if not _has_sync(db_url) else SyncEnv(db_url, endpoint, _arn(db_url))
    workers = [env.worker(f"w{i}", batch_size=3, lease_seconds=5) for i in range(2)]
    threads = [threading.Thread(target=w.run, kwargs={"once": False}) for w in workers]
    for t in threads:
        t.start()
    try:
        with psycopg.connect(db_url, autocommit=True) as conn:
            for op, n in ops:
                _apply(conn, op, n)
                time.sleep(0.005)
        deadline = time.monotonic() + 30
        while env.sql("SELECT count(*) FROM s3vl.outbox")[0][0] and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        for w in workers:
            w.stop()
        for t in threads:
            t.join(10)
    env.drain()
    env.assert_converged()


def _has_sync(db_url: str) -> bool:
    with psycopg.connect(db_url) as conn:
        return bool(conn.execute("SELECT count(*) FROM s3vl.syncs").fetchone()[0])  # type: ignore[index]


def _arn(db_url: str) -> str:
    with psycopg.connect(db_url) as conn:
        return str(conn.execute("SELECT index_arn FROM s3vl.indexes WHERE name = 'products'").fetchone()[0])  # type: ignore[index]


def test_index_gone_pauses_the_sync_and_charges_no_row(db_url: str, endpoint: EndpointHandle) -> None:
    """A sync whose index is gone fails as a whole: it is paused with the error (no row is
    charged an attempt), and it resumes, losing nothing, once the index is back."""
    env = products_env(db_url, endpoint, rows=5, max_attempts=2)
    bucket = env.index_arn.split("/")[1]
    s3v = endpoint.client("s3vectors")
    s3v.delete_index(vectorBucketName=bucket, indexName="products")
    worker = env.worker()
    worker.run(once=True)
    assert "NotFoundException" in worker.paused["products"]
    paused = env.sql("SELECT paused_until IS NOT NULL, sync_error, pending, failed FROM s3vl.sync_status")[0]
    assert paused[0]
    assert "NotFoundException" in paused[1]
    assert paused[2:] == (5, 0)
    assert env.sql("SELECT max(attempts), count(leased_by) FROM s3vl.outbox")[0] == (0, 0)
    s3v.create_index(vectorBucketName=bucket, indexName="products", dataType="float32", dimension=256,
                     distanceMetric="cosine", metadataConfiguration={"nonFilterableMetadataKeys": ["s3vl_hash"]})
    env.sql("SELECT s3vl.retry_failed('products')")  # resumes the paused sync now
    env.drain()
    env.assert_converged()
    assert env.sql("SELECT paused_until, sync_error FROM s3vl.sync_status")[0] == (None, None)


def test_text_expression_error_fails_that_row_only(db_url: str, endpoint: EndpointHandle) -> None:
    env = products_env(db_url, endpoint, rows=0)
    env.sql("SELECT s3vl.drop_sync('products')")
    env.sql("INSERT INTO products (id, name, price) SELECT g, 'p' || g, g - 3 FROM generate_series(1, 8) g")
    env.sql("SELECT s3vl.create_sync('products', 'products', 'products', "
            "$$name || ' costs ' || (100 / price)::text$$, dimensions => 256, max_attempts => 1)")
    env.drain()
    failed = env.sql("SELECT key, last_error FROM s3vl.sync_failures")
    assert len(failed) == 1
    assert failed[0][0] == "3"
    assert "division by zero" in failed[0][1]
    assert set(env.index()) == {str(i) for i in range(1, 9)} - {"3"}


def test_numbers_s3_vectors_refuses_fail_their_row_alone(db_url: str, endpoint: EndpointHandle) -> None:
    """A metadata number S3 Vectors cannot store (beyond a double's range, NaN, an infinite
    timestamp) used to reach PutVectors as 1e400 (a 5xx, the batch given back forever) or as the
    string 'NaN'. Now that row fails alone, naming the column; the rest of the batch syncs, and
    the row ends in failed after max_attempts."""
    env = products_env(db_url, endpoint, rows=0)
    env.admin_sql("SELECT s3vl.drop_sync('products')")
    env.admin_sql("CREATE TABLE public.readings (id int PRIMARY KEY, label text, value numeric, score float8, "
                  "taken timestamptz)")
    env.admin_sql("INSERT INTO readings SELECT g, 'reading ' || g, g, g / 2.0, now() FROM generate_series(1, 6) g")
    env.admin_sql("UPDATE readings SET value = 1e400 WHERE id = 2")
    env.admin_sql("UPDATE readings SET score = 'NaN' WHERE id = 4")
    env.admin_sql("UPDATE readings SET taken = 'infinity' WHERE id = 6")
    env.admin_sql("SELECT s3vl.create_sync('products', 'public.readings', 'products', 'label', "
                  "ARRAY['value', 'score', 'taken'], dimensions => 256, max_attempts => 2)")
    env.drain()
    env.drain()  # the second attempt: then failed
    failures = dict(env.sql("SELECT key, last_error FROM s3vl.sync_failures ORDER BY key"))
    assert set(failures) == {"2", "4", "6"}
    assert "metadata column \"value\" is a number beyond a double's range" in failures["2"]
    assert 'metadata column "score" is NaN: S3 Vectors metadata numbers must be finite' in failures["4"]
    assert 'metadata column "taken" is Infinity' in failures["6"]
    assert env.sql("SELECT DISTINCT attempts FROM s3vl.outbox")[0][0] == 2
    index = env.index()
    assert set(index) == {"1", "3", "5"}
    assert index["3"]["value"] == 3
