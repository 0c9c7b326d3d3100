"""The worker loop: lease a batch, run the pipeline, repeat; ``--once`` drains and exits.

* One :class:`~sync.datapath.pipeline.Pipeline` per sync, built on first use (embedder for the sync's
  model, vector store for its index) and rebuilt when the definition changes.
* Transient AWS trouble or a lost database connection gives the batch back (its lease is
  released; no attempt is counted) and the loop backs off before trying again.
* SIGTERM/SIGINT: the current batch is finished, then the loop exits. A second signal abandons
  the batch at once (its lease expires; nothing is lost, the keys are processed again).
* With ``emf_interval`` > 0 an :class:`EmfPublisher` thread writes each sync's CloudWatch metrics
  (:mod:`sync.telemetry.emf`) to stdout at start, every interval and at exit, over its own connection, so
  a long batch or a backoff never leaves the lag alarm without datapoints.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from types import FrameType
from typing import Any

import structlog

from sync.aws import clients, embedders
from sync.aws.retry import RetryPolicy
from sync.aws.s3vectors import VectorStore
from sync.datapath.capture import LogicalCapture
from sync.datapath.definitions import SyncDef
from sync.datapath.outbox import Lease, Outbox
from sync.datapath.pipeline import BatchReport, Pipeline
from sync.errors import DatabaseError, EmbeddingError, SyncDefinitionError, TransientAwsError, VectorStoreError
from sync.telemetry import emf, metrics

log = structlog.get_logger(__name__)


@dataclass
class WorkerOptions:
    batch_size: int = 100
    lease_seconds: float = 300.0
    poll_seconds: float = 1.0
    concurrency: int = 8
    retry_after: float = 5.0
    only_sync: str | None = None
    #: also read the logical capture slot (capture => 'logical' syncs) between batches
    capture: bool = True
    region: str | None = None
    endpoint_url: str | None = None
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    #: seconds between CloudWatch EMF lines on stdout (0 = none; the CLI decides, see sync.telemetry.emf)
    emf_interval: float = 0.0


@dataclass
class Totals:
    batches: int = 0
    keys: int = 0
    embedded: int = 0
    metadata_only: int = 0
    unchanged: int = 0
    deleted: int = 0
    failed: int = 0
    texts_embedded: int = 0

    def add(self, r: BatchReport) -> None:
        """Sum a batch in: every counter but ``batches`` has its namesake in BatchReport."""
        self.batches += 1
        for f in fields(self):
            if f.name != "batches":
                setattr(self, f.name, getattr(self, f.name) + getattr(r, f.name))


class _Abandon(BaseException):
    """Raised by a second stop signal to leave the current batch."""


class Worker:
    def __init__(self, conninfo: str, options: WorkerOptions | None = None, *, worker_id: str | None = None,
                 on_batch: Callable[[BatchReport], None] | None = None) -> None:
        self.options = options or WorkerOptions()
        self.outbox = Outbox(conninfo)
        self.capture = LogicalCapture(conninfo)
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.on_batch = on_batch
        self.totals = Totals()
        self._pipelines: dict[str, tuple[SyncDef, Pipeline]] = {}
        self._clients: dict[str, Any] = {}
        self._stopping = False
        self._signals = 0
        self._gauges_at = 0.0

    # --- construction -----------------------------------------------------------------------
    def _client(self, service: str) -> Any:
        if service not in self._clients:
            pool = max(16, self.options.concurrency * 2)
            self._clients[service] = clients.client(service, self.options.region, self.options.endpoint_url, pool)
        return self._clients[service]

    def pipeline(self, sync_name: str) -> Pipeline:
        sync = self.outbox.sync(sync_name)
        cached = self._pipelines.get(sync_name)
        if cached is not None and cached[0] == sync:
            return cached[1]
        store = VectorStore(self._client("s3vectors"), sync.index_arn, policy=self.options.policy)
        try:
            non_filterable = sorted(set(store.non_filterable_keys()) | {"s3vl_hash", "s3vl_text"})
        except Exception:
            non_filterable = ["s3vl_hash", "s3vl_text"]
        embedder = embedders.for_model(sync.embedding_model, sync.dimensions, sync.normalize_vectors,
                                       self._client("bedrock-runtime"), concurrency=self.options.concurrency,
                                       policy=self.options.policy)
        pipe = Pipeline(sync, self.outbox, store, embedder, self.worker_id, retry_after=self.options.retry_after,
                        non_filterable=non_filterable, lease_seconds=self.options.lease_seconds)
        self._pipelines[sync_name] = (sync, pipe)
        return pipe

    # --- signals ----------------------------------------------------------------------------
    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signals += 1
        self._stopping = True
        log.info("worker.stopping", signal=signum, abandon=self._signals > 1)
        if self._signals > 1:
            raise _Abandon()

    def stop(self) -> None:
        self._stopping = True

    # --- the loop ---------------------------------------------------------------------------
    def run_once(self) -> BatchReport | None:
        """Lease and process one batch; None when nothing is leasable."""
        o = self.options
        lease = self.outbox.lease(self.worker_id, o.batch_size, o.lease_seconds, o.only_sync)
        if lease is None:
            return None
        start = time.perf_counter()
        try:
            report = self.pipeline(lease.sync_name).process(lease)
        except (TransientAwsError, DatabaseError, SyncDefinitionError) as exc:
            self._give_back(lease, exc)
            raise
        except (VectorStoreError, EmbeddingError) as exc:
            # refused for the batch as a whole (e.g. the index is gone): an attempt for every key
            return self._fail_batch(lease, exc)
        except _Abandon:
            self._give_back(lease, None)
            raise
        except Exception as exc:
            self._give_back(lease, exc)  # a bug: the keys go back at once, the traceback surfaces
            raise
        elapsed = time.perf_counter() - start
        metrics.BATCH_SECONDS.labels(lease.sync_name).observe(elapsed)
        metrics.BATCHES.labels(lease.sync_name, "ok").inc()
        self.totals.add(report)
        log.info("batch.done", sync=report.sync, keys=report.keys, embedded=report.embedded,
                 metadata_only=report.metadata_only, unchanged=report.unchanged, deleted=report.deleted,
                 failed=report.failed, requeued=report.requeued, texts=report.texts_embedded,
                 put=report.vectors_put, removed=report.vectors_deleted, seconds=round(elapsed, 3),
                 **{f"t_{k}": v for k, v in report.timings.items()})
        if self.on_batch is not None:
            self.on_batch(report)
        return report

    def _fail_batch(self, lease: Lease, exc: Exception) -> BatchReport:
        metrics.BATCHES.labels(lease.sync_name, "error").inc()
        log.error("batch.failed", sync=lease.sync_name, keys=len(lease.keys), error=str(exc))
        self.outbox.fail(lease.sync_name, self.worker_id, [(k.key, k.version, str(exc)) for k in lease.keys],
                         self.options.retry_after)
        report = BatchReport(lease.sync_name, keys=len(lease.keys), failed=len(lease.keys))
        self.totals.add(report)
        if self.on_batch is not None:
            self.on_batch(report)
        return report

    def _give_back(self, lease: Lease, exc: BaseException | None) -> None:
        metrics.BATCHES.labels(lease.sync_name, "transient" if exc else "abandoned").inc()
        log.warning("batch.given_back", sync=lease.sync_name, keys=len(lease.keys),
                    error=str(exc) if exc else "stopping")
        with contextlib.suppress(DatabaseError):  # else the lease expires on its own
            self.outbox.release(lease.sync_name, self.worker_id, [k.key for k in lease.keys])

    def run(self, *, once: bool = False, max_errors_in_row: int | None = None) -> Totals:
        """Process batches until stopped (or, with ``once``, until nothing is leasable)."""
        backoff = self.options.poll_seconds
        errors = 0
        publisher = None
        if self.options.emf_interval > 0:
            publisher = EmfPublisher(self.outbox.conninfo, self.options.emf_interval, self.options.only_sync)
            publisher.start()
        try:
            while not self._stopping:
                try:
                    if self.options.capture:
                        self.capture.poll()
                    report = self.run_once()
                    errors = 0
                    backoff = self.options.poll_seconds
                except (TransientAwsError, DatabaseError, SyncDefinitionError) as exc:
                    errors += 1
                    log.warning("worker.backoff", error=str(exc), seconds=round(backoff, 2))
                    if max_errors_in_row is not None and errors >= max_errors_in_row:
                        raise
                    self._sleep(backoff)
                    backoff = min(backoff * 2, 30.0)
                    continue
                if report is None or time.monotonic() - self._gauges_at > 10:
                    self._update_gauges()
                if report is None:
                    if once:
                        break
                    self._sleep(self.options.poll_seconds)
        except _Abandon:
            log.info("worker.abandoned")
        finally:
            if publisher is not None:
                publisher.stop()
            self.outbox.close()
            self.capture.close()
        return self.totals

    def _sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while not self._stopping and time.monotonic() < end:
            time.sleep(min(0.1, end - time.monotonic()))

    def _update_gauges(self) -> None:
        self._gauges_at = time.monotonic()
        try:
            for s in self.outbox.status():
                metrics.QUEUE_DEPTH.labels(s["sync_name"], "pending").set(s["pending"])
                metrics.QUEUE_DEPTH.labels(s["sync_name"], "failed").set(s["failed"])
                metrics.LAG_SECONDS.labels(s["sync_name"]).set(s["lag_seconds"] or 0.0)
        except DatabaseError:
            pass


class EmfPublisher:
    """Writes the worker's EMF lines (one per sync) at start, every ``interval`` seconds, and at stop.

    A daemon thread with its own :class:`Outbox` connection; the schedule is fixed-rate (start +
    k * interval), so the lines keep their offset within the minute. A database error skips that
    round (logged, the worker carries on); the lag alarm then sees missing data, which it treats
    as breaching.
    """

    def __init__(self, conninfo: str, interval: float, only_sync: str | None = None,
                 stream: Callable[[], Any] | None = None) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive")
        self.interval = interval
        self.only_sync = only_sync
        self._outbox = Outbox(conninfo)
        self._stream = stream or (lambda: sys.stdout)  # resolved per write (redirected streams)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.lines = 0

    def publish(self) -> int:
        """Write one line per sync now; the number of lines (0 when the database is unreachable)."""
        with self._lock:
            try:
                rows = self._outbox.status()
                docs = emf.worker_documents(rows, int(time.time() * 1000), self.only_sync)
                n = emf.write(self._stream(), docs)
            except Exception as exc:  # metrics never stop the worker (database down, closed stdout, ...)
                log.warning("emf.skipped", error=str(exc), error_type=type(exc).__name__)
                return 0
            self.lines += n
            return n

    def _run(self, first_at: float) -> None:
        next_at = first_at
        while not self._stop.wait(max(next_at - time.monotonic(), 0.0)):
            self.publish()
            next_at += self.interval
            if next_at <= time.monotonic():  # fell behind (a slow query): skip the missed rounds
                next_at = time.monotonic() + self.interval

    def start(self) -> None:
        """Publish now (in the caller), then every interval from a daemon thread."""
        started = time.monotonic()
        self.publish()
        self._thread = threading.Thread(target=self._run, args=(started + self.interval,), name="s3vl-emf",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread, write the final lines, close the connection.

        A round stuck in the database (the thread still alive after 10 s) is left to die with the
        process: shutting down never waits on metrics.
        """
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            if self._thread.is_alive():
                log.warning("emf.stop_abandoned")
                return
        try:
            self.publish()
        finally:
            self._outbox.close()


def backfill(conninfo: str, sync_name: str, options: WorkerOptions,
             progress: Callable[[int, int], None] | None = None) -> Totals:
    """Queue every key of a sync and process them all here; ``progress(done, total)`` per batch."""
    outbox = Outbox(conninfo)
    try:
        outbox.sync(sync_name)  # raises if it does not exist
        outbox.resync(sync_name)
        total = outbox.pending(sync_name)
    finally:
        outbox.close()
    options.only_sync = sync_name
    done = [0]

    def on_batch(report: BatchReport) -> None:
        done[0] += report.keys - report.requeued
        if progress is not None:
            progress(min(done[0], total), total)

    worker = Worker(conninfo, options, on_batch=on_batch)
    worker.install_signal_handlers()
    return worker.run(once=True)
