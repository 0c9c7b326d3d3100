"""``s3vl worker``, ``status``, ``retry-failed``, ``backfill`` as a user runs them (subprocesses)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import psycopg
import pytest

from tests.support.endpoint import DUMMY_KEY, REGION, EndpointHandle, free_port
from tests.support.paths import REPO
from tests.support.syncenv import SyncEnv, products_env


def _env(env: SyncEnv, url: str | None = None) -> dict[str, str]:
    return {**os.environ, "S3VL_DATABASE_URL": url or env.worker_url, "AWS_ENDPOINT_URL": env.endpoint.url,
            "AWS_REGION": REGION, "AWS_ACCESS_KEY_ID": DUMMY_KEY, "AWS_SECRET_ACCESS_KEY": DUMMY_KEY,
            "S3VL_LOG_FORMAT": "json", "S3VL_WORKER_RETRY_SECONDS": "0", "S3VL_WORKER_POLL_SECONDS": "0.1"}


def s3vl(env: SyncEnv, *args: str, url: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run s3vl as the worker login (or the login of ``url``)."""
    return subprocess.run([sys.executable, "-m", "sync", *args], capture_output=True, text=True,
                          env=_env(env, url), cwd=REPO, timeout=120, check=False)


@pytest.fixture
def env(db_url: str, endpoint: EndpointHandle) -> SyncEnv:
    return products_env(db_url, endpoint, rows=30, max_attempts=1)


def test_worker_once_status_retry(env: SyncEnv) -> None:
    env.sql("UPDATE products SET category = repeat('z', 3000) WHERE id = 7")
    out = s3vl(env, "worker", "--once")
    assert out.returncode == 0, out.stderr
    assert "30 key(s): 29 embedded" in out.stderr
    batch_logs = [json.loads(line) for line in out.stderr.splitlines() if '"batch.done"' in line]
    assert batch_logs
    fields = {"sync", "keys", "embedded", "metadata_only", "unchanged", "deleted", "failed", "seconds"}
    assert fields <= set(batch_logs[0])

    status = s3vl(env, "status", "--json", url=env.admin_url)
    assert status.returncode == 3  # a key is failed
    doc = json.loads(status.stdout)
    assert doc["syncs"][0]["failed"] == 1
    assert doc["syncs"][0]["synced_keys"] == 29
    assert doc["failures"][0]["key"] == "7"
    assert "filterable metadata" in doc["failures"][0]["last_error"]  # the admin may read products
    as_worker = json.loads(s3vl(env, "status", "--json").stdout)   # the worker login may not
    assert as_worker["failures"][0]["last_error"].startswith("(hidden: the error may quote values of public.products")
    human = s3vl(env, "status")
    assert "products" in human.stdout
    assert "failed keys" in human.stdout

    env.sql("UPDATE products SET category = 'ok' WHERE id = 7")  # fixing the row requeues it
    env.sql("UPDATE s3vl.outbox SET status = 'failed' WHERE key = '7'")  # (as if it had failed again)
    retry = s3vl(env, "retry-failed")
    assert retry.returncode == 0
    assert "1 failed key(s) back in the queue" in retry.stdout
    assert s3vl(env, "worker", "--once").returncode == 0
    assert s3vl(env, "status").returncode == 0
    env.assert_converged()


def test_backfill_command(env: SyncEnv) -> None:
    env.sql("SELECT s3vl.drop_sync('products')")
    env.sql("SELECT s3vl.create_sync('products', 'products', 'products', $$name$$, dimensions => 256, "
            "backfill => false)")
    out = s3vl(env, "backfill", "products", "--no-progress")
    assert out.returncode == 0, out.stderr
    assert "backfill products: 30 key(s): 30 embedded" in out.stdout
    env.assert_converged()
    missing = s3vl(env, "backfill", "nope", "--no-progress")
    assert missing.returncode == 2
    assert missing.stderr == "s3vl: error: no such sync: nope (SELECT name FROM s3vl.syncs lists them)\n"


def test_worker_serves_metrics_and_stops_on_sigterm(env: SyncEnv) -> None:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "sync", "worker", "--metrics-port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env(env), cwd=REPO)
    try:
        deadline = time.monotonic() + 30
        body = ""
        while time.monotonic() < deadline:
            try:
                body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
                if 's3vl_sync_rows_total{outcome="embedded",sync="products"} 30.0' in body and \
                        "s3vl_sync_queue_depth" in body:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        assert 's3vl_sync_rows_total{outcome="embedded",sync="products"} 30.0' in body
        assert 's3vl_aws_request_seconds_count{operation="PutVectors",service="s3vectors"}' in body
        assert 's3vl_sync_lag_seconds{sync="products"} 0.0' in body
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    env.assert_converged()


def test_worker_survives_lost_database_connections(env: SyncEnv) -> None:
    """The worker's connection is killed repeatedly (like a database restart); it reconnects."""
    proc = subprocess.Popen([sys.executable, "-m", "sync", "worker", "--batch-size", "3"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env(env), cwd=REPO)
    try:
        with psycopg.connect(env.db_url, autocommit=True) as conn:
            deadline = time.monotonic() + 40
            kills = 0
            while time.monotonic() < deadline:
                n = conn.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                 "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                                 "AND backend_type = 'client backend'").fetchone()
                kills += n[0] if n else 0
                if conn.execute("SELECT count(*) FROM s3vl.outbox").fetchone() == (0,):
                    break
                time.sleep(0.15)
        assert kills > 0
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
    env.drain()
    env.assert_converged()
