"""What a user sees when the database or AWS is unreachable, a login lacks its grants, or a name is
wrong: one line on stderr, a documented exit status, within a bounded time; never a traceback.
The long-running worker keeps trying instead, saying so in its log and its metrics."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request

import psycopg
import pytest

from s3vl_local.processes import free_port
from tests.support.endpoint import DUMMY_KEY, REGION, EndpointHandle
from tests.support.paths import REPO
from tests.support.pg import as_login
from tests.support.syncenv import SyncEnv, products_env

NOBODY = "s3vl_test_nobody"


def _run(env: SyncEnv, *args: str, url: str | None = None, endpoint: str | None = None,
         **extra: str) -> subprocess.CompletedProcess[str]:
    child = {**os.environ, "S3VL_DATABASE_URL": url or env.worker_url, "AWS_ENDPOINT_URL": endpoint or env.endpoint.url,
             "AWS_REGION": REGION, "AWS_ACCESS_KEY_ID": DUMMY_KEY, "AWS_SECRET_ACCESS_KEY": DUMMY_KEY,
             "S3VL_LOG_FORMAT": "json", "S3VL_LOG_LEVEL": "error", **extra}
    return subprocess.run([sys.executable, "-m", "sync", *args], capture_output=True, text=True, env=child, cwd=REPO,
                          timeout=120, check=False)


def _one_line(out: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in out.stderr.splitlines() if line.startswith("s3vl:")]
    assert "Traceback" not in out.stderr, out.stderr
    assert len(lines) == 1, out.stderr
    return lines[0]


@pytest.fixture
def env(db_url: str, endpoint: EndpointHandle) -> SyncEnv:
    with psycopg.connect(db_url, autocommit=True) as c:
        c.execute(f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{NOBODY}') THEN "
                  f"CREATE ROLE {NOBODY} LOGIN; END IF; END $$")
    return products_env(db_url, endpoint, rows=5)


def test_a_login_without_grants_gets_one_line(env: SyncEnv) -> None:
    nobody = as_login(env.db_url, NOBODY)
    for args in (("status",), ("worker", "--once"), ("retry-failed",), ("reconcile",)):
        start = time.monotonic()
        out = _run(env, *args, url=nobody)
        assert time.monotonic() - start < 15, args  # a refusal is not waited out
        assert out.returncode == 1, (args, out.stderr)
        line = _one_line(out)
        assert "permission denied for schema s3vl" in line, line
        assert "Security model" in line


@pytest.mark.parametrize("args", [
    ("worker", "--once", "--sync", "nope"), ("retry-failed", "--sync", "nope"), ("reconcile", "--sync", "nope"),
    ("backfill", "nope", "--no-progress"), ("reindex", "nope", "--model", "amazon.titan-embed-text-v2:0",
                                            "--dimensions", "512"),
])
def test_an_unknown_sync_is_exit_2_for_every_command(env: SyncEnv, args: tuple[str, ...]) -> None:
    out = _run(env, *args, url=env.admin_url if args[0] == "reindex" else None)
    assert out.returncode == 2, out.stderr
    assert _one_line(out) == "s3vl: error: no such sync: nope (SELECT name FROM s3vl.syncs lists them)"


def test_reindex_to_an_unknown_model_says_so_and_creates_nothing(env: SyncEnv) -> None:
    before = env.endpoint.client("s3vectors").list_indexes(vectorBucketName=env.index_arn.split("/")[1])["indexes"]
    out = _run(env, "reindex", "products", "--model", "bogus", "--dimensions", "256", url=env.admin_url)
    assert out.returncode == 1
    line = _one_line(out)
    assert line.startswith("s3vl: error: unknown embedding model 'bogus' "
                           "(known: amazon.nova-2-multimodal-embeddings-v1:0, ")
    assert "CONTEXT" not in out.stderr
    after = env.endpoint.client("s3vectors").list_indexes(vectorBucketName=env.index_arn.split("/")[1])["indexes"]
    assert after == before


def test_worker_once_gives_up_when_aws_is_unreachable(env: SyncEnv) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    start = time.monotonic()
    out = _run(env, "worker", "--once", endpoint=dead, S3VL_WORKER_GIVE_UP_SECONDS="2", S3VL_AWS_RETRY_SECONDS="1",
               S3VL_WORKER_POLL_SECONDS="0.2")
    took = time.monotonic() - start
    assert out.returncode == 1, out.stderr
    line = _one_line(out)
    assert line.startswith("s3vl: error: gave up after ")
    assert "EndpointConnectionError" in line
    assert took < 30, took  # the bound: give-up seconds + one call's retries + the backoff in between
    assert env.sql("SELECT max(attempts), count(leased_by) FROM s3vl.outbox")[0] == (0, 0)  # nothing charged


def test_worker_once_gives_up_when_the_database_is_unreachable(env: SyncEnv) -> None:
    dead = f"postgresql://{NOBODY}@127.0.0.1:{free_port()}/none"
    start = time.monotonic()
    out = _run(env, "worker", "--once", url=dead, S3VL_WORKER_GIVE_UP_SECONDS="1", S3VL_WORKER_POLL_SECONDS="0.2")
    assert out.returncode == 1, out.stderr
    line = _one_line(out)
    assert line.startswith("s3vl: error: gave up after ")
    assert "database unavailable" in line
    assert time.monotonic() - start < 30


def test_the_long_running_worker_keeps_trying_and_says_so(env: SyncEnv) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    port = free_port()
    child = {**os.environ, "S3VL_DATABASE_URL": env.worker_url, "AWS_ENDPOINT_URL": dead, "AWS_REGION": REGION,
             "AWS_ACCESS_KEY_ID": DUMMY_KEY, "AWS_SECRET_ACCESS_KEY": DUMMY_KEY, "S3VL_LOG_FORMAT": "json",
             "S3VL_WORKER_GIVE_UP_SECONDS": "1", "S3VL_AWS_RETRY_SECONDS": "1", "S3VL_WORKER_POLL_SECONDS": "0.2"}
    proc = subprocess.Popen([sys.executable, "-m", "sync", "worker", "--metrics-port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=child, cwd=REPO)
    try:
        deadline = time.monotonic() + 30
        metrics = ""
        while time.monotonic() < deadline:
            time.sleep(0.5)
            try:
                metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
            except OSError:
                continue
            if 's3vl_worker_errors_total{error="TransientAwsError"} 2.0' in metrics:
                break
        assert "s3vl_worker_up 0.0" in metrics
        assert proc.poll() is None  # well past its give-up time: only --once gives up
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0
    backoffs = [line for line in stderr.splitlines() if '"worker.backoff"' in line]
    assert len(backoffs) >= 2
    assert "EndpointConnectionError" in backoffs[0]


def test_reconcile_with_aws_unreachable_reports_the_error_not_zeros(env: SyncEnv) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    out = _run(env, "reconcile", endpoint=dead, S3VL_AWS_RETRY_SECONDS="1")
    assert out.returncode == 1, out.stdout + out.stderr
    assert "reconcile products -> products (dry run) failed: TransientAwsError: s3vectors ListVectors" in out.stdout
    assert "orphaned" not in out.stdout
