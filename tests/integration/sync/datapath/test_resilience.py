"""The sync worker under real failures: the promises of issue 6, section 4.

    "A crash at any point (kill -9 between put and completion, database restart, endpoint
    down) loses nothing: the next run converges to the source."
    "SIGTERM finishes or abandons the current batch cleanly."

Every failure here is real: the PostgreSQL server is stopped (fast and immediate shutdowns) and
started again, the endpoint process is killed with SIGKILL and restarted on its port and data
dir, the worker (``s3vl worker``, a subprocess as a user runs it) is killed with SIGKILL or
stopped with SIGTERM. The module has its own cluster and endpoint, so restarting them never
disturbs the session's shared ones. Each test ends with :func:`assert_index_is_source`: every
key, ``s3vl_hash`` and ``s3vl_ev`` in the index (ListVectors and GetVectors) equals what SQL
says, the outbox is empty and nothing failed.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from sync.aws.retry import RetryPolicy
from sync.datapath.worker import Worker, WorkerGaveUpError, WorkerOptions
from tests.support.endpoint import DUMMY_KEY, REGION, EndpointHandle, running_endpoint
from tests.support.paths import REPO
from tests.support.pg import TestCluster, session_cluster
from tests.support.syncenv import SyncEnv, bedrock_texts, products_env

LEASE_SECONDS = 2.0


# --- fixtures: a private cluster and a private endpoint (both get restarted here) -------------
@pytest.fixture(scope="module")
def private_pg() -> Iterator[TestCluster]:
    """A durable cluster (fsync, synchronous_commit on, as in production): the session's test
    cluster trades those away for speed, and an immediate shutdown would then forget commits
    that clients saw succeed, which no real database restart does."""
    with session_cluster(durable=True, prefix="s3vl-resilience-") as cluster:
        yield cluster


@pytest.fixture(scope="module")
def private_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EndpointHandle]:
    with running_endpoint(tmp_path_factory.mktemp("resilience-endpoint")) as handle:
        yield handle


@pytest.fixture
def env(private_pg: TestCluster, private_endpoint: EndpointHandle,
        monkeypatch: pytest.MonkeyPatch) -> Iterator[SyncEnv]:
    for name, value in (("AWS_ACCESS_KEY_ID", DUMMY_KEY), ("AWS_SECRET_ACCESS_KEY", DUMMY_KEY),
                        ("AWS_REGION", REGION), ("AWS_DEFAULT_REGION", REGION)):
        monkeypatch.setenv(name, value)
    private_endpoint.admin.clear_faults()
    url = private_pg.create_database(installed=True)
    yield products_env(url, private_endpoint, rows=0)
    private_endpoint.admin.clear_faults()
    private_pg.drop_database(url)


# --- the worker as a user runs it -------------------------------------------------------------
class WorkerProcess:
    """``s3vl worker`` in a subprocess, its JSON logs in a file."""

    def __init__(self, env: SyncEnv, log: Path, *args: str, batch: int = 50, concurrency: int = 4,
                 in_flight: int = 3) -> None:
        child = {**os.environ, "S3VL_DATABASE_URL": env.worker_url, "AWS_ENDPOINT_URL": env.endpoint.url,
                 "AWS_REGION": REGION, "AWS_ACCESS_KEY_ID": DUMMY_KEY, "AWS_SECRET_ACCESS_KEY": DUMMY_KEY,
                 "S3VL_LOG_FORMAT": "json", "S3VL_WORKER_RETRY_SECONDS": "0", "S3VL_WORKER_POLL_SECONDS": "0.1",
                 "S3VL_WORKER_LEASE_SECONDS": str(LEASE_SECONDS), "S3VL_WORKER_BATCH_SIZE": str(batch),
                 "S3VL_WORKER_CONCURRENCY": str(concurrency), "S3VL_WORKER_MAX_CONCURRENCY": str(concurrency),
                 "S3VL_WORKER_BATCHES_IN_FLIGHT": str(in_flight)}
        self.log = log
        with log.open("ab") as fh:
            self.proc = subprocess.Popen([sys.executable, "-m", "sync", "worker", *args], stdout=fh,
                                         stderr=subprocess.STDOUT, env=child, cwd=REPO)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.alive():
            self.proc.kill()
            self.proc.wait(10)

    def events(self, name: str) -> list[str]:
        return [line for line in self.log.read_text(errors="replace").splitlines() if f'"{name}"' in line]

    def tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-15:])


def run_once(env: SyncEnv, log: Path) -> None:
    """``s3vl worker --once`` to completion (exit 0)."""
    w = WorkerProcess(env, log, "--once")
    assert w.wait(60) == 0, w.tail()


def wait_for(what: str, check: Callable[[], bool], timeout: float = 30.0, every: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every)


def try_sql(env: SyncEnv, query: str, params: Any = None) -> list[tuple[Any, ...]] | None:
    """Like ``env.sql`` but None while the database is down."""
    try:
        return env.sql(query, params)
    except psycopg.OperationalError:
        return None


def count(env: SyncEnv, query: str) -> int:
    rows = try_sql(env, query)
    return int(rows[0][0]) if rows else -1


def synced(env: SyncEnv) -> int:
    return count(env, "SELECT count(*) FROM s3vl.sync_state")


def queued(env: SyncEnv) -> int:
    return count(env, "SELECT count(*) FROM s3vl.outbox")


def counter(endpoint: EndpointHandle, service: str, operation: str, name: str = "requests") -> int:
    return int(endpoint.admin.counters().get(service, {}).get(operation, {}).get(name, 0))


# --- the end state: the index is exactly the source ---------------------------------------------
def assert_index_is_source(env: SyncEnv) -> None:
    """Every key, s3vl_hash and s3vl_ev of the index (ListVectors, then GetVectors on every key)
    equals SQL; sync_state agrees; the outbox is empty and no key failed."""
    ev = env.sql("SELECT embedding_version FROM s3vl.syncs WHERE name = %s", (env.sync,))[0][0]
    expected = env.expected()
    listed = env.index()
    assert set(listed) == set(expected), sorted(set(listed) ^ set(expected))[:10]
    s3v = env.endpoint.client("s3vectors")
    keys = sorted(expected)
    got: dict[str, dict[str, Any]] = {}
    for i in range(0, len(keys), 100):
        resp = s3v.get_vectors(indexArn=env.index_arn, keys=keys[i:i + 100], returnMetadata=True)
        got.update({v["key"]: v.get("metadata", {}) for v in resp["vectors"]})
    assert set(got) == set(expected)
    for key, want in expected.items():
        for md in (listed[key], got[key]):
            assert (md["s3vl_id"], md["s3vl_hash"], md["s3vl_ev"]) == (key, want["hash"], ev), key
            assert {k: md.get(k) for k in want["metadata"]} == want["metadata"], key
    state = dict(env.sql("SELECT key, content_hash FROM s3vl.sync_state WHERE sync_name = %s AND "
                         "embedding_version = %s", (env.sync, ev)))
    assert state == {k: v["hash"] for k, v in expected.items()}
    assert env.sql("SELECT count(*) FROM s3vl.outbox")[0][0] == 0
    assert env.sql("SELECT count(*) FROM s3vl.sync_failures")[0][0] == 0


def load_rows(env: SyncEnv, first: int, last: int) -> None:
    env.sql("INSERT INTO products (id, name, description, category, price) "
            "SELECT g, 'product ' || g, 'a fine thing number ' || g, 'cat' || (g %% 3), g * 1.5 "
            "FROM generate_series(%s::int, %s::int) g", (first, last))


# --- 1. database restart under load -----------------------------------------------------------
class Writer(threading.Thread):
    """A steady stream of inserts, text and metadata updates and deletes; rides out outages."""

    def __init__(self, db_url: str, first_new_id: int, top: int) -> None:
        super().__init__(daemon=True)
        self.db_url = db_url
        self.next_id = first_new_id
        self.top = top
        self.done = threading.Event()
        self.ops = 0
        self.refused = 0
        self.rng = random.Random(6)

    def run(self) -> None:
        conn: psycopg.Connection[Any] | None = None
        while not self.done.is_set():
            try:
                if conn is None or conn.closed:
                    conn = psycopg.connect(self.db_url, autocommit=True, connect_timeout=2)
                self._one(conn)
                self.ops += 1
            except psycopg.OperationalError:
                self.refused += 1
                conn = None
                time.sleep(0.1)
            time.sleep(0.01)
        if conn is not None:
            conn.close()

    def _one(self, conn: psycopg.Connection[Any]) -> None:
        op = self.rng.choice(["insert", "text", "text", "meta", "delete"])
        n = self.rng.randint(1, self.top)
        if op == "insert":
            conn.execute("INSERT INTO products (id, name, category) VALUES (%s, %s, 'new')",
                         (self.next_id, f"new item {self.next_id}"))
            self.next_id += 1
        elif op == "text":
            conn.execute("UPDATE products SET description = %s WHERE id = %s", (f"rewritten {time.time_ns()}", n))
        elif op == "meta":
            conn.execute("UPDATE products SET price = coalesce(price, 0) + 1 WHERE id = %s", (n,))
        else:
            conn.execute("DELETE FROM products WHERE id = %s", (n,))


def _pg_stop(cluster: TestCluster, mode: str) -> None:
    cluster.cluster._pg_ctl("stop", "-m", mode, "-w", "-t", "30")


def test_database_restarts_under_load_converge(env: SyncEnv, private_pg: TestCluster, tmp_path: Path) -> None:
    rows = 2000
    load_rows(env, 1, rows)
    env.sql("SELECT s3vl.resync('products')")
    worker = WorkerProcess(env, tmp_path / "worker.log", batch=100, concurrency=4)
    writer = Writer(env.db_url, rows + 1, rows)
    writer.start()
    try:
        for mode, progress in (("fast", 400), ("immediate", 900)):
            wait_for(f"{progress} keys synced", lambda p=progress: synced(env) >= p)  # type: ignore[misc]
            before = synced(env)
            _pg_stop(private_pg, mode)
            time.sleep(1.5)  # down long enough for the worker to fail to reconnect a few times
            assert worker.alive(), worker.tail()
            private_pg.cluster.up()
            wait_for("the worker to make progress again", lambda b=before: synced(env) > b + 100)  # type: ignore[misc]
        assert queued(env) > 0, "the restarts must happen while work is left"
    finally:
        writer.done.set()
        writer.join(10)
    try:
        wait_for("the outbox to drain", lambda: queued(env) == 0, timeout=40)
        assert worker.alive(), worker.tail()  # it rode out both restarts without exiting
        worker.signal(signal.SIGTERM)
        assert worker.wait(15) == 0, worker.tail()
    finally:
        worker.stop()
    assert writer.ops > 100
    assert writer.refused > 0  # the writes saw the outages too
    outages = [e for e in worker.events("worker.backoff") if "database unavailable" in e]
    assert outages, worker.tail()
    assert_index_is_source(env)


# --- 2. endpoint killed and restarted ---------------------------------------------------------
def test_endpoint_kill_9_and_restart_converges(env: SyncEnv, tmp_path: Path) -> None:
    rows, batch, in_flight = 600, 50, 3
    load_rows(env, 1, rows)
    env.sql("SELECT s3vl.resync('products')")
    texts_before = bedrock_texts(env.endpoint)
    # a little Bedrock latency so the endpoint is killed with requests in flight
    env.endpoint.admin.set_faults({"rules": [{"service": "bedrock", "latency_ms": 5}]})
    worker = WorkerProcess(env, tmp_path / "worker.log", batch=batch, concurrency=2, in_flight=in_flight)
    try:
        wait_for("150 keys synced", lambda: synced(env) >= 150)
        texts_killed = bedrock_texts(env.endpoint) - texts_before  # read just before the kill
        env.endpoint.kill9()
        left_at_kill = queued(env)
        # writes while the endpoint is down: 40 rows change text (some synced, some not yet)
        env.sql("UPDATE products SET description = 'changed while down' WHERE id % 15 = 0")
        time.sleep(4.0)  # about the worker's retry budget per call: it retries, or gives the batch back
        assert worker.alive(), worker.tail()
        env.endpoint.start()  # same port, same data dir; counters start at zero, no faults
        wait_for("the outbox to drain", lambda: queued(env) == 0, timeout=40)
        assert worker.alive(), worker.tail()
        worker.signal(signal.SIGTERM)
        assert worker.wait(15) == 0, worker.tail()
    finally:
        worker.stop()
    assert left_at_kill > 0  # it died mid-run
    print("endpoint outage:", {"texts_before_kill": texts_killed, "left_at_kill": left_at_kill,
                               "given_back": len(worker.events("batch.given_back")),
                               "backoffs": len(worker.events("worker.backoff"))})
    assert_index_is_source(env)
    # Nothing embedded twice beyond the batches in flight at the kill: every row of the source was
    # embedded once, the 40 rows changed while down at most once more, plus at most the batches
    # whose vectors were computed but not written when the endpoint died. (Texts embedded
    # between reading the counter and the kill are not counted: this can only lower the sum.)
    texts_total = texts_killed + bedrock_texts(env.endpoint)
    bound = rows + rows // 15 + batch * in_flight
    print("endpoint outage: texts embedded in all", texts_total, "bound", bound)
    assert texts_total <= bound, (texts_total, texts_killed)
    assert counter(env.endpoint, "s3vectors", "PutVectors") > 0  # the restarted endpoint took writes


# --- 3. kill -9 exactly between PutVectors and completion --------------------------------------
def test_kill_9_between_put_and_completion(env: SyncEnv, tmp_path: Path) -> None:
    load_rows(env, 1, 40)
    env.sql("SELECT s3vl.resync('products')")
    run_once(env, tmp_path / "first.log")
    old_state = dict(env.sql("SELECT key, content_hash FROM s3vl.sync_state"))
    env.sql("UPDATE products SET description = 'new text ' || id WHERE id <= 20")
    env.sql("DELETE FROM products WHERE id BETWEEN 31 AND 35")
    load_rows(env, 41, 45)
    assert queued(env) == 30
    # The pipeline writes (PutVectors), then deletes (DeleteVectors), then completes. Holding
    # DeleteVectors at the endpoint parks the worker right after a PutVectors that was served.
    deletes = counter(env.endpoint, "s3vectors", "DeleteVectors")
    env.endpoint.admin.set_faults({"rules": [{"service": "s3vectors", "operation": "DeleteVectors",
                                              "latency_ms": 6000}]})
    worker = WorkerProcess(env, tmp_path / "doomed.log", batch=100, concurrency=4)
    try:
        wait_for("the DeleteVectors after the put", lambda: counter(env.endpoint, "s3vectors", "DeleteVectors")
                 > deletes, timeout=30)
        # the window: the new vectors are in the index, the outbox does not know it yet ...
        index = env.index()
        expected = env.expected()
        assert all(index[str(i)]["s3vl_hash"] == expected[str(i)]["hash"] for i in [*range(1, 21), *range(41, 46)])
        written = {str(i) for i in [*range(1, 21), *range(41, 46)]}
        state = dict(env.sql("SELECT key, content_hash FROM s3vl.sync_state"))
        # ... except that the keys being written are marked unknown (s3vl.begin_write)
        assert {k: v for k, v in state.items() if k not in written} == {k: v for k, v in old_state.items()
                                                                        if k not in written}
        assert {k for k, v in state.items() if v is None} == written
        assert env.sql("SELECT count(*) FROM s3vl.outbox WHERE leased_by IS NOT NULL")[0][0] == 30
        worker.signal(signal.SIGKILL)
        assert worker.wait(10) == -signal.SIGKILL
    finally:
        worker.stop()
        env.endpoint.admin.clear_faults()
    assert queued(env) == 30  # nothing was acknowledged
    # The source moves on before the rerun: a new row whose vector was just written is deleted,
    # and a row goes back to the text its recorded state describes (the index holds the newer one).
    env.sql("DELETE FROM products WHERE id = 41")
    env.sql("UPDATE products SET description = 'a fine thing number 2' WHERE id = 2")
    texts = bedrock_texts(env.endpoint)
    time.sleep(LEASE_SECONDS + 0.2)  # the dead worker's lease expires
    run_once(env, tmp_path / "rerun.log")
    assert_index_is_source(env)
    # the rerun re-embedded that batch's changed rows at most (20 updated, 4 inserted), nothing else
    assert bedrock_texts(env.endpoint) - texts <= 24


# --- 4. SIGTERM during a long batch -----------------------------------------------------------
def _slow_bedrock(env: SyncEnv, ms: int) -> None:
    env.endpoint.admin.set_faults({"rules": [{"service": "bedrock", "latency_ms": ms}]})


def _leased(env: SyncEnv) -> set[str]:
    return {k for (k,) in env.sql("SELECT key FROM s3vl.outbox WHERE leased_by IS NOT NULL")}


def test_sigterm_finishes_the_batch_in_flight(env: SyncEnv, tmp_path: Path) -> None:
    load_rows(env, 1, 30)
    env.sql("SELECT s3vl.resync('products')")
    _slow_bedrock(env, 150)  # two batches of 10 texts in flight, one text at a time: about 3 s
    calls = counter(env.endpoint, "bedrock", "InvokeModel")
    worker = WorkerProcess(env, tmp_path / "worker.log", batch=10, concurrency=1, in_flight=2)
    try:
        wait_for("a batch inside Bedrock", lambda: counter(env.endpoint, "bedrock", "InvokeModel") >= calls + 2)
        batch = _leased(env)
        assert len(batch) == 20
        started = time.monotonic()
        worker.signal(signal.SIGTERM)
        assert worker.wait(10) == 0, worker.tail()
        took = time.monotonic() - started
    finally:
        worker.stop()
        env.endpoint.admin.clear_faults()
    assert took < 5.0, took
    # the batches in flight were finished and completed, and no other batch was started
    left = {k for (k,) in env.sql("SELECT key FROM s3vl.outbox")}
    assert not left & batch
    assert batch <= set(env.index())
    assert left == {str(i) for i in range(1, 31)} - set(env.index())
    assert len(left) == 10, worker.tail()
    assert _leased(env) == set()  # nothing is left leased: the next worker starts at once
    run_once(env, tmp_path / "rerun.log")
    assert_index_is_source(env)


def test_second_sigterm_abandons_the_batch_and_loses_nothing(env: SyncEnv, tmp_path: Path) -> None:
    load_rows(env, 1, 30)
    env.sql("SELECT s3vl.resync('products')")
    _slow_bedrock(env, 600)  # two batches of 10 texts in flight, one text at a time: about 12 s
    calls = counter(env.endpoint, "bedrock", "InvokeModel")
    worker = WorkerProcess(env, tmp_path / "worker.log", batch=10, concurrency=1, in_flight=2)
    try:
        wait_for("a batch inside Bedrock", lambda: counter(env.endpoint, "bedrock", "InvokeModel") >= calls + 2)
        batch = _leased(env)
        assert len(batch) == 20
        started = time.monotonic()
        worker.signal(signal.SIGTERM)
        time.sleep(0.2)
        worker.signal(signal.SIGTERM)
        assert worker.wait(10) == 0, worker.tail()
        took = time.monotonic() - started
    finally:
        worker.stop()
        env.endpoint.admin.clear_faults()
    assert took < 3.0, took  # well under the 10 s the rest of the batches need: they were abandoned
    assert worker.events("worker.abandoned"), worker.tail()
    # the abandoned keys are all still queued and given back (not leased): nothing lost
    left = {k for (k,) in env.sql("SELECT key FROM s3vl.outbox")}
    assert batch <= left
    assert _leased(env) == set()
    assert env.sql("SELECT max(attempts) FROM s3vl.outbox")[0][0] == 0
    run_once(env, tmp_path / "rerun.log")
    assert_index_is_source(env)


# --- 5. the endpoint dies while its answer is on the wire -------------------------------------
class _CutServer(threading.Thread):
    """Answers every request with a 200 whose body stops after a few bytes (Content-Length
    promises more): what a client sees when the service dies while sending its response."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.requests = 0

    def run(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                head, _, body = data.partition(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                while len(body) < length:
                    body += conn.recv(65536)
                self.requests += 1
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n"
                             b'{"embedding": [0.1, ')


def test_response_cut_mid_body_is_transient(env: SyncEnv, tmp_path: Path) -> None:
    """A broken response body (botocore ResponseStreamingError) is retried and then gives the
    batch back like any outage; it used to escape as an unknown error and stop the worker."""
    load_rows(env, 1, 5)
    env.sql("SELECT s3vl.resync('products')")
    cut = _CutServer()
    cut.start()
    try:
        options = WorkerOptions(batch_size=10, lease_seconds=30, poll_seconds=0.05, concurrency=1, region=REGION,
                                endpoint_url=cut.url, policy=RetryPolicy(attempts=3, base=0.001, cap=0.01),
                                give_up_seconds=0.05)
        with pytest.raises(WorkerGaveUpError, match="ResponseStreamingError after 3 attempts"):
            Worker(env.worker_url, options).run(once=True)
    finally:
        cut.sock.close()
    assert cut.requests >= 3  # retried
    # given back twice, never counted against the rows, nothing leased
    assert env.sql("SELECT count(*), max(attempts), count(leased_by) FROM s3vl.outbox")[0] == (5, 0, 0)
    run_once(env, tmp_path / "rerun.log")
    assert_index_is_source(env)
