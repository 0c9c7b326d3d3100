"""The worker's branches without PostgreSQL or AWS: a fake Outbox and fake pipelines.

What happens to a leased batch when its pipeline fails: transient trouble gives it back (no
attempt counted) and propagates to the loop's backoff; a sync failing as a whole is paused,
longer each time; a bug gives the keys back and surfaces. And how the loop ends with ``once``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from sync.datapath.definitions import SyncDef
from sync.datapath.outbox import Lease, LeasedKey
from sync.datapath.pipeline import BatchReport
from sync.datapath.worker import MAX_PAUSE_SECONDS, Worker, WorkerGaveUpError, WorkerOptions
from sync.errors import (
    Abandoned,
    DatabaseError,
    DatabaseUnavailableError,
    EmbeddingError,
    SyncDefinitionError,
    TransientAwsError,
    VectorStoreError,
)


def _sync(name: str = "docs", version: str = "v1") -> SyncDef:
    return SyncDef.model_validate({
        "name": name, "source": "public.docs", "key_columns": ["id"], "index_name": "docs",
        "index_arn": "arn:aws:s3vectors:us-west-2:000000000000:bucket/b/index/docs", "text_expression": "body",
        "metadata_columns": [], "embedding_model": "amazon.titan-embed-text-v2:0", "dimensions": 256,
        "normalize_vectors": True, "chunk_size": 0, "chunk_overlap": 0, "store_text": False,
        "embedding_version": version, "max_attempts": 5,
    })


class FakeOutbox:
    """The Outbox calls the worker makes, recorded; ``batches`` are leased in turn, then nothing."""

    def __init__(self, batches: Sequence[Sequence[str]], sync: SyncDef | None = None) -> None:
        self.batches = [list(b) for b in batches]
        self.definition = sync or _sync()
        self.released: list[list[str]] = []
        self.pauses: list[tuple[str, str, float]] = []
        self.closed = False

    def lease(self, worker: str, batch: int, lease_seconds: float, only_sync: str | None = None) -> Lease | None:
        if not self.batches:
            return None
        keys = self.batches.pop(0)
        return Lease(self.definition.name, [LeasedKey(k, 1) for k in keys])

    def sync(self, name: str) -> SyncDef:
        return self.definition

    def require_syncs(self, names: Sequence[str]) -> None:
        pass

    def release(self, sync: str, worker: str, keys: Sequence[str]) -> int:
        self.released.append(list(keys))
        return len(keys)

    def pause(self, sync: str, error: str, seconds: float) -> None:
        self.pauses.append((sync, error, seconds))

    def status(self) -> list[dict[str, Any]]:
        return []

    def close(self) -> None:
        self.closed = True


class FakeCapture:
    def poll(self) -> None:
        pass

    def close(self) -> None:
        pass


class FakePipeline:
    """``process`` answers with the next outcome: an exception to raise, or None for success,
    after ``seconds`` (abandoned meanwhile if ``stop`` is set); counts the batches at once."""

    def __init__(self, outcomes: list[BaseException | None], seconds: float = 0.0) -> None:
        self.outcomes = outcomes
        self.seconds = seconds
        self.lock = threading.Lock()
        self.running = 0
        self.most_at_once = 0

    def process(self, lease: Lease, outbox: Any, stop: threading.Event | None = None) -> BatchReport:
        with self.lock:
            outcome = self.outcomes.pop(0) if self.outcomes else None
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        try:
            end = time.monotonic() + self.seconds
            while time.monotonic() < end:
                if stop is not None and stop.is_set():
                    raise Abandoned()
                time.sleep(0.005)
        finally:
            with self.lock:
                self.running -= 1
        if outcome is not None:
            raise outcome
        return BatchReport(lease.sync_name, keys=len(lease.keys), embedded=len(lease.keys))


def _worker(outbox: FakeOutbox, outcomes: list[BaseException | None], built: list[SyncDef] | None = None,
            pipeline: FakePipeline | None = None, **options: Any) -> Worker:
    pipeline = pipeline or FakePipeline(outcomes)

    def factory(sync: SyncDef) -> Any:
        if built is not None:
            built.append(sync)
        return pipeline

    opts = WorkerOptions(poll_seconds=0.001, pause_seconds=30.0, **options)
    build: Callable[[SyncDef], Any] = factory
    return Worker("postgresql://unused", opts, worker_id="w1", outbox=outbox,  # type: ignore[arg-type]
                  capture=FakeCapture(), pipeline_factory=build)  # type: ignore[arg-type]


@pytest.mark.parametrize("error", [TransientAwsError("PutVectors: 503"), DatabaseUnavailableError("gone"),
                                   DatabaseError("permission denied", sqlstate="42501")])
def test_transient_trouble_gives_the_batch_back_and_propagates(error: Exception) -> None:
    outbox = FakeOutbox([["1", "2"]])
    worker = _worker(outbox, [error])
    with pytest.raises(type(error)):
        worker.run_once()
    assert outbox.released == [["1", "2"]]
    assert outbox.pauses == []
    assert worker.paused == {}
    assert worker.totals.batches == 0


@pytest.mark.parametrize("error", [SyncDefinitionError("source table public.docs no longer exists"),
                                   VectorStoreError("PutVectors: AccessDeniedException"),
                                   EmbeddingError("InvokeModel: no such model")])
def test_a_sync_failing_as_a_whole_is_paused_and_its_batch_given_back(error: Exception) -> None:
    outbox = FakeOutbox([["1", "2", "3"]])
    reports: list[BatchReport] = []
    worker = _worker(outbox, [error])
    worker.on_batch = reports.append
    report = worker.run_once()
    assert report is not None
    assert (report.keys, report.requeued, report.failed) == (3, 3, 0)  # no row charged an attempt
    assert outbox.released == [["1", "2", "3"]]
    assert outbox.pauses == [("docs", str(error), 30.0)]
    assert worker.paused == {"docs": str(error)}
    assert reports == [report]


def test_pauses_double_while_the_sync_keeps_failing_and_reset_after_a_success() -> None:
    failing = [SyncDefinitionError("down")] * 7
    outbox = FakeOutbox([["1"]] * 9)
    worker = _worker(outbox, [*failing, None, SyncDefinitionError("down again")])
    for _ in range(9):
        worker.run_once()
    seconds = [p[2] for p in outbox.pauses]
    assert seconds == [30.0, 60.0, 120.0, 240.0, 480.0, MAX_PAUSE_SECONDS, MAX_PAUSE_SECONDS, 30.0]
    assert worker.paused == {"docs": "down again"}
    assert worker.totals.batches == 1


def test_a_pause_rebuilds_the_pipeline_and_a_changed_definition_does_too() -> None:
    outbox = FakeOutbox([["1"], ["2"], ["3"], ["4"]])
    built: list[SyncDef] = []
    worker = _worker(outbox, [None, SyncDefinitionError("x"), None, None], built)
    worker.run_once()
    worker.run_once()  # paused: the cached pipeline goes
    worker.run_once()
    outbox.definition = _sync(version="v2")
    worker.run_once()
    assert [s.embedding_version for s in built] == ["v1", "v1", "v2"]


def test_a_bug_gives_the_keys_back_and_surfaces() -> None:
    outbox = FakeOutbox([["1"]])
    worker = _worker(outbox, [ZeroDivisionError("bug")])
    with pytest.raises(ZeroDivisionError):
        worker.run_once()
    assert outbox.released == [["1"]]
    assert outbox.pauses == []


def test_once_drains_the_queue_then_stops() -> None:
    outbox = FakeOutbox([["1", "2"], ["3"]])
    totals = _worker(outbox, []).run(once=True)
    assert (totals.batches, totals.keys, totals.embedded) == (2, 3, 3)
    assert outbox.closed


def test_once_gives_up_after_consecutive_transient_failures() -> None:
    outbox = FakeOutbox([["1"]] * 1000)
    worker = _worker(outbox, [TransientAwsError("PutVectors: 503")] * 1000, give_up_seconds=0.05)
    with pytest.raises(WorkerGaveUpError, match=r"gave up after \d+s of failures: PutVectors: 503"):
        worker.run(once=True)
    assert len(outbox.released) >= 2  # it did retry (with backoff) before giving up
    assert outbox.closed


def test_once_stops_at_once_on_a_refusal() -> None:
    outbox = FakeOutbox([["1"], ["2"]])
    refusal = DatabaseError("permission denied for function lease", sqlstate="42501")
    worker = _worker(outbox, [refusal], give_up_seconds=60.0, batches_in_flight=1)
    with pytest.raises(DatabaseError, match="permission denied"):
        worker.run(once=True)
    assert outbox.released == [["1"]]
    assert outbox.batches == [["2"]]


def test_the_long_running_worker_recovers_after_transient_failures() -> None:
    outbox = FakeOutbox([["1"], ["2"], ["3"]])
    worker = _worker(outbox, [TransientAwsError("503"), TransientAwsError("503"), None], give_up_seconds=0.0,
                     batches_in_flight=1)
    reports: list[BatchReport] = []

    def stop_after_first_success(report: BatchReport) -> None:
        reports.append(report)
        worker.stop()

    worker.on_batch = stop_after_first_success
    worker.run(once=False)
    assert [r.keys for r in reports] == [1]
    assert outbox.released == [["1"], ["2"]]


def test_batches_run_several_at_once_up_to_the_setting() -> None:
    outbox = FakeOutbox([[str(i)] for i in range(9)])
    pipeline = FakePipeline([], seconds=0.05)
    totals = _worker(outbox, [], pipeline=pipeline, batches_in_flight=3).run(once=True)
    assert totals.batches == 9
    assert pipeline.most_at_once == 3


def test_a_second_signal_abandons_the_batches_in_flight_and_gives_them_back() -> None:
    outbox = FakeOutbox([["1"], ["2"], ["3"]])
    pipeline = FakePipeline([], seconds=30.0)
    worker = _worker(outbox, [], pipeline=pipeline, batches_in_flight=2)
    threading.Timer(0.2, worker._on_signal, args=(15, None)).start()
    threading.Timer(0.3, worker._on_signal, args=(15, None)).start()
    started = time.monotonic()
    totals = worker.run(once=False)
    assert time.monotonic() - started < 5
    assert totals.batches == 0
    assert sorted(outbox.released) == [["1"], ["2"]]  # both in flight went back; the third was never leased
    assert outbox.batches == [["3"]]
