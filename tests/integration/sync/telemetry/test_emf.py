"""CloudWatch EMF lines of ``s3vl worker`` and ``s3vl reconcile``, run as subprocesses like ECS runs them.

Every line is checked against the EMF specification (tests/unit/sync/telemetry/test_emf.py) and its values against
the database: what the alarms in terraform/modules/s3vl/alarms.tf would read.
"""

from __future__ import annotations

import io
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from typing import Any

import pytest

from tests.support.endpoint import DUMMY_KEY, REGION, EndpointHandle
from tests.support.paths import REPO
from tests.support.syncenv import SyncEnv, products_env
from tests.unit.sync.telemetry.test_emf import assert_valid_emf

ECS = {"ECS_CONTAINER_METADATA_URI_V4": "http://169.254.170.2/v4/test-task"}


def _env(env: SyncEnv, **extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("S3VL_EMF") and k not in ECS}
    return {**base, "S3VL_DATABASE_URL": env.worker_url, "AWS_ENDPOINT_URL": env.endpoint.url,
            "AWS_REGION": REGION, "AWS_ACCESS_KEY_ID": DUMMY_KEY, "AWS_SECRET_ACCESS_KEY": DUMMY_KEY,
            "S3VL_LOG_FORMAT": "json", "S3VL_WORKER_RETRY_SECONDS": "0", "S3VL_WORKER_POLL_SECONDS": "0.1", **extra}


def s3vl(env: SyncEnv, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sync", *args], capture_output=True, text=True,
                          env=_env(env, **extra), cwd=REPO, timeout=120, check=False)


def emf_lines(text: str) -> list[dict[str, Any]]:
    """The EMF documents in a stream (other lines, e.g. structlog's JSON, are skipped)."""
    docs = []
    for line in text.splitlines():
        if '"_aws"' in line:
            doc = json.loads(line)  # one document per line, nothing around it
            assert_valid_emf(doc)
            docs.append(doc)
    return docs


@pytest.fixture
def env(db_url: str, endpoint: EndpointHandle) -> SyncEnv:
    return products_env(db_url, endpoint, rows=30, max_attempts=1)


def test_worker_once_writes_lag_and_failed_rows(env: SyncEnv) -> None:
    env.sql("UPDATE products SET category = repeat('z', 3000) WHERE id = 7")  # fails: metadata too large
    before_ms = int(time.time() * 1000)
    out = s3vl(env, "worker", "--once", **ECS)  # S3VL_EMF=auto + inside ECS
    assert out.returncode == 0, out.stderr
    docs = emf_lines(out.stdout)
    assert not emf_lines(out.stderr)
    assert len(docs) == 2, out.stdout  # at start and at exit, one line per sync
    start, end = docs
    for doc in docs:
        assert doc["Sync"] == "products"
        directive = doc["_aws"]["CloudWatchMetrics"][0]
        assert directive["Namespace"] == "s3vl"
        assert directive["Dimensions"] == [["Sync"]]
        assert directive["Metrics"] == [{"Name": "OutboxLagSeconds", "Unit": "Seconds"},
                                        {"Name": "FailedRows", "Unit": "Count"}]
        assert before_ms - 1000 <= doc["_aws"]["Timestamp"] <= int(time.time() * 1000)
    assert start["Pending"] == 30
    assert start["OutboxLagSeconds"] > 0
    assert start["FailedRows"] == 0
    assert end["Pending"] == 0
    assert end["OutboxLagSeconds"] == 0
    assert end["FailedRows"] == 1
    assert env.sql("SELECT failed FROM s3vl.sync_status")[0][0] == 1


def test_local_runs_stay_quiet_and_off_wins(env: SyncEnv) -> None:
    quiet = s3vl(env, "worker", "--once")  # auto outside ECS
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stdout == ""
    assert not emf_lines(quiet.stderr)
    for extra in ({"S3VL_EMF": "off", **ECS}, {"S3VL_EMF_INTERVAL_SECONDS": "0", **ECS}):
        out = s3vl(env, "worker", "--once", **extra)
        assert out.returncode == 0, out.stderr
        assert out.stdout == "", extra
    forced = s3vl(env, "worker", "--once", S3VL_EMF="on")
    assert [d["Sync"] for d in emf_lines(forced.stdout)] == ["products", "products"]


def test_worker_publishes_every_interval_and_on_sigterm(env: SyncEnv) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "sync", "worker", "--sync", "products"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=REPO,
                            env=_env(env, S3VL_EMF="on", S3VL_EMF_INTERVAL_SECONDS="1"))
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # the start line: the clock starts once the worker runs
        time.sleep(3.6)
    finally:
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    docs = emf_lines(first + stdout)
    # start + about one a second + exit
    assert 4 <= len(docs) <= 7, stdout
    assert {d["Sync"] for d in docs} == {"products"}
    stamps = [d["_aws"]["Timestamp"] for d in docs]
    assert stamps == sorted(stamps)
    gaps = [b - a for a, b in itertools.pairwise(stamps[:-1])]  # the last one is the exit line
    assert all(800 <= g <= 1500 for g in gaps), gaps  # fixed rate, not back to back
    assert docs[-1]["OutboxLagSeconds"] == 0
    assert docs[-1]["Pending"] == 0


def test_reconcile_writes_drift_found_per_sync(env: SyncEnv) -> None:
    assert s3vl(env, "worker", "--once").returncode == 0
    # two rows the capture trigger never saw: missing from the index and not queued
    env.sql("SET session_replication_role = replica; "
            "INSERT INTO products (id, name, description, category, price) VALUES "
            "(101, 'ghost one', 'x', 'cat1', 1), (102, 'ghost two', 'y', 'cat2', 2); "
            "SET session_replication_role = origin")
    assert env.sql("SELECT count(*) FROM products")[0][0] == 32

    dry = s3vl(env, "reconcile", "--no-progress", **ECS)
    assert dry.returncode == 3, dry.stderr  # drift found, not repaired
    (doc,) = emf_lines(dry.stdout)  # human report + EMF on stdout
    assert doc["_aws"]["CloudWatchMetrics"][0] == {"Namespace": "s3vl", "Dimensions": [["Sync"]],
                                                   "Metrics": [{"Name": "ReconcileDrift", "Unit": "Count"},
                                                               {"Name": "ReconcileFailed", "Unit": "Count"}]}
    assert doc["ReconcileFailed"] == 0
    assert doc["Sync"] == "products"
    assert doc["ReconcileDrift"] == 2
    assert doc["Missing"] == 2
    assert doc["Applied"] is False
    finished = env.sql("SELECT extract(epoch FROM finished_at) * 1000 FROM s3vl.reconcile_runs "
                       "ORDER BY id DESC LIMIT 1")[0][0]
    assert abs(doc["_aws"]["Timestamp"] - float(finished)) < 2  # stamped with the run's end

    applied = s3vl(env, "reconcile", "--apply", "--json", **ECS)  # the ECS task's command
    assert applied.returncode == 0, applied.stderr
    report = json.loads(applied.stdout)  # stdout stays one JSON document: EMF went to stderr
    assert report["syncs"][0]["drift"] == 2
    (doc,) = emf_lines(applied.stderr)
    assert doc["ReconcileDrift"] == 2
    assert doc["Applied"] is True

    # the repair queued both keys for the worker: lag, not drift
    again = s3vl(env, "reconcile", "--no-progress", **ECS)
    (doc,) = emf_lines(again.stdout)
    assert doc["ReconcileDrift"] == 0
    assert doc["Missing"] == 2
    assert doc["Queued"] == 2
    assert s3vl(env, "worker", "--once").returncode == 0
    clean = s3vl(env, "reconcile", "--no-progress", "--json", **ECS)
    assert clean.returncode == 0, clean.stderr
    (doc,) = emf_lines(clean.stderr)
    assert doc["ReconcileDrift"] == 0
    assert doc["Missing"] == 0

    quiet = s3vl(env, "reconcile", "--no-progress")  # outside ECS: no EMF
    assert not emf_lines(quiet.stdout)
    assert not emf_lines(quiet.stderr)


def test_publisher_never_stops_the_worker(env: SyncEnv) -> None:
    """A broken stdout or an unreachable database costs the metrics, never the worker."""
    from sync.datapath.worker import EmfPublisher

    out = io.StringIO()
    pub = EmfPublisher(env.worker_url, 60, stream=lambda: out)
    pub.start()
    assert pub.lines == 1  # at start, synchronously
    pub.stop()
    assert pub.lines == 2
    assert [json.loads(line)["Sync"] for line in out.getvalue().splitlines()] == ["products", "products"]

    class Closed(io.StringIO):
        def write(self, s: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

    broken = EmfPublisher(env.db_url, 60, stream=Closed)
    assert broken.publish() == 0
    unreachable = EmfPublisher("postgresql://nobody@127.0.0.1:1/none?connect_timeout=2", 60, stream=lambda: out)
    unreachable.start()
    unreachable.stop()
    assert unreachable.lines == 0
    with pytest.raises(ValueError, match="positive"):
        EmfPublisher(env.db_url, 0)


def test_a_reconcile_that_cannot_start_reports_failed_for_all_syncs(env: SyncEnv) -> None:
    down = s3vl(env, "reconcile", "--no-progress", "--database-url", "postgresql://nobody@127.0.0.1:1/none", **ECS)
    assert down.returncode == 1
    assert "Traceback" not in down.stderr
    (doc,) = emf_lines(down.stdout)
    assert (doc["Sync"], doc["ReconcileFailed"]) == ("*", 1)
    assert "ReconcileDrift" not in doc
    unknown = s3vl(env, "reconcile", "--no-progress", "--sync", "nosuch", **ECS)
    assert unknown.returncode != 0
    (doc,) = emf_lines(unknown.stdout)
    assert (doc["Sync"], doc["ReconcileFailed"]) == ("nosuch", 1)
