"""The worker loop: lease a batch, run the pipeline, repeat; ``--once`` drains and exits.

* One :class:`~sync.datapath.pipeline.Pipeline` per sync, built on first use (embedder for the
  sync's model, vector store for its index) and rebuilt when the definition changes.
* Transient trouble (AWS throttling or 5xx that outlast the retries, a lost database
  connection) gives the batch back (its lease is released; no attempt is counted) and the loop
  backs off, logging ``worker.backoff`` each time and reporting it in the ``s3vl_worker_up``
  gauge. The long-running worker keeps trying (a refusal too: a missing grant may be granted);
  ``--once`` gives up after ``give_up_seconds`` of consecutive failures and reports the last
  error (:class:`WorkerGaveUpError`), and stops at once on a refusal.
* A sync that fails as a whole (its source is gone, a privilege was revoked, its index refuses
  every write, its model does not exist) is paused (``s3vl.pause_sync``, doubling from
  ``pause_seconds`` up to 15 minutes) and its batch given back: no row is charged an attempt, the
  other syncs carry on, and ``s3vl status`` shows the error until the sync succeeds again.
* SIGTERM/SIGINT: the current batch is finished, then the loop exits. A second signal abandons
  the batch at once (its keys are released; a killed worker's keys come back when their lease
  expires). Nothing is lost either way.
* With ``emf_interval`` > 0 an :class:`~sync.telemetry.publisher.EmfPublisher` thread writes each
  sync's CloudWatch metrics to stdout at start, every interval and at exit, over its own
  connection, so a long batch or a backoff never leaves the lag alarm without datapoints.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
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
from sync.datapath.contract import RESERVED_NON_FILTERABLE
from sync.datapath.definitions import SyncDef
from sync.datapath.outbox import Lease, Outbox
from sync.datapath.pipeline import BatchReport, Pipeline
from sync.db.connection import Database
from sync.errors import (
    DatabaseError,
    DatabaseUnavailableError,
    EmbeddingError,
    S3vlError,
    SyncDefinitionError,
    TransientAwsError,
    VectorStoreError,
)
from sync.telemetry import metrics
from sync.telemetry.publisher import EmfPublisher

log = structlog.get_logger(__name__)

#: Longest pause of a sync that keeps failing as a whole, and longest backoff of the loop.
MAX_PAUSE_SECONDS = 900.0
MAX_BACKOFF_SECONDS = 30.0


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
    #: with once: stop after this many seconds of consecutive failures (AWS or the database down)
    give_up_seconds: float = 60.0
    #: first pause of a sync that fails as a whole (doubles while it keeps failing)
    pause_seconds: float = 30.0


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


class WorkerGaveUpError(S3vlError):
    """``worker --once`` stopped: AWS or the database kept failing for longer than it waits."""


class _Abandon(BaseException):
    """Raised by a second stop signal to leave the current batch."""


PipelineFactory = Callable[[SyncDef], Pipeline]


class Worker:
    def __init__(self, conninfo: str, options: WorkerOptions | None = None, *, worker_id: str | None = None,
                 on_batch: Callable[[BatchReport], None] | None = None, outbox: Outbox | None = None,
                 capture: LogicalCapture | None = None, pipeline_factory: PipelineFactory | None = None) -> None:
        self.conninfo = conninfo
        self.options = options or WorkerOptions()
        self.outbox = outbox or Outbox(Database(conninfo, application_name="s3vl worker"))
        self.capture = capture or LogicalCapture(Database(conninfo, application_name="s3vl worker capture"))
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.on_batch = on_batch
        self.totals = Totals()
        #: the syncs this worker paused, with why (``worker --once`` reports them)
        self.paused: dict[str, str] = {}
        self._pipeline_factory = pipeline_factory or self._build_pipeline
        self._pipelines: dict[str, tuple[SyncDef, Pipeline]] = {}
        self._pauses: dict[str, int] = {}
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

    def _build_pipeline(self, sync: SyncDef) -> Pipeline:
        store = VectorStore(self._client("s3vectors"), sync.index_arn, policy=self.options.policy)
        non_filterable = sorted(set(store.non_filterable_keys()) | set(RESERVED_NON_FILTERABLE))
        embedder = embedders.for_model(sync.embedding_model, sync.dimensions, sync.normalize_vectors,
                                       self._client("bedrock-runtime"), concurrency=self.options.concurrency,
                                       policy=self.options.policy)
        return Pipeline(sync, self.outbox, store, embedder, self.worker_id, retry_after=self.options.retry_after,
                        non_filterable=non_filterable, lease_seconds=self.options.lease_seconds)

    def pipeline(self, sync_name: str) -> Pipeline:
        sync = self.outbox.sync(sync_name)
        cached = self._pipelines.get(sync_name)
        if cached is not None and cached[0] == sync:
            return cached[1]
        pipe = self._pipeline_factory(sync)
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

    # --- one batch --------------------------------------------------------------------------
    def run_once(self) -> BatchReport | None:
        """Lease and process one batch; None when nothing is leasable."""
        o = self.options
        lease = self.outbox.lease(self.worker_id, o.batch_size, o.lease_seconds, o.only_sync)
        if lease is None:
            return None
        start = time.perf_counter()
        try:
            report = self.pipeline(lease.sync_name).process(lease)
        except (TransientAwsError, DatabaseError) as exc:
            self._give_back(lease, exc)
            raise
        except (SyncDefinitionError, VectorStoreError, EmbeddingError) as exc:
            # the sync failed as a whole (a row's own failure never gets here): pause it
            return self._pause(lease, exc)
        except _Abandon:
            self._give_back(lease, None)
            raise
        except Exception as exc:
            self._give_back(lease, exc)  # a bug: the keys go back at once, the traceback surfaces
            raise
        elapsed = time.perf_counter() - start
        self._pauses.pop(lease.sync_name, None)
        self.paused.pop(lease.sync_name, None)
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

    def _pause(self, lease: Lease, exc: Exception) -> BatchReport:
        """Give the batch back and pause its sync, for longer each time it fails again."""
        n = self._pauses.get(lease.sync_name, 0)
        self._pauses[lease.sync_name] = n + 1
        seconds = min(self.options.pause_seconds * 2 ** n, MAX_PAUSE_SECONDS)
        metrics.BATCHES.labels(lease.sync_name, "paused").inc()
        log.error("sync.paused", sync=lease.sync_name, keys=len(lease.keys), seconds=seconds, error=str(exc))
        self._give_back(lease, exc)
        self.outbox.pause(lease.sync_name, str(exc), seconds)
        self._pipelines.pop(lease.sync_name, None)  # rebuilt (index, model) when it resumes
        self.paused[lease.sync_name] = str(exc)
        report = BatchReport(lease.sync_name, keys=len(lease.keys), requeued=len(lease.keys))
        if self.on_batch is not None:
            self.on_batch(report)
        return report

    def _give_back(self, lease: Lease, exc: BaseException | None) -> None:
        metrics.BATCHES.labels(lease.sync_name, "transient" if exc else "abandoned").inc()
        log.warning("batch.given_back", sync=lease.sync_name, keys=len(lease.keys),
                    error=str(exc) if exc else "stopping")
        with contextlib.suppress(DatabaseError):  # else the lease expires on its own
            self.outbox.release(lease.sync_name, self.worker_id, [k.key for k in lease.keys])

    # --- the loop ---------------------------------------------------------------------------
    def run(self, *, once: bool = False) -> Totals:
        """Process batches until stopped (or, with ``once``, until nothing is leasable).

        With ``once``, raises :class:`WorkerGaveUpError` once AWS or the database failed for longer
        than ``give_up_seconds`` in a row.
        """
        backoff = self.options.poll_seconds
        failing_since: float | None = None
        publisher = None
        if self.options.emf_interval > 0:
            publisher = EmfPublisher(self.conninfo, self.options.emf_interval, self.options.only_sync)
            publisher.start()
        try:
            if self.options.only_sync:
                self.outbox.require_syncs([self.options.only_sync])
            while not self._stopping:
                try:
                    if self.options.capture:
                        self.capture.poll()
                    report = self.run_once()
                except (TransientAwsError, DatabaseError) as exc:
                    now = time.monotonic()
                    failing_since = failing_since or now
                    metrics.WORKER_UP.set(0)
                    metrics.WORKER_ERRORS.labels(type(exc).__name__).inc()
                    log.warning("worker.backoff", error=str(exc), seconds=round(backoff, 2),
                                failing_for=round(now - failing_since, 1))
                    if once and not isinstance(exc, TransientAwsError | DatabaseUnavailableError):
                        raise  # refused, not unreachable (a missing grant): waiting will not help
                    if once and now - failing_since >= self.options.give_up_seconds:
                        raise WorkerGaveUpError(f"gave up after {now - failing_since:.0f}s of failures: {exc}") from exc
                    self._sleep(backoff)
                    backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
                    continue
                failing_since = None
                backoff = self.options.poll_seconds
                metrics.WORKER_UP.set(1)
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
                metrics.PAUSED.labels(s["sync_name"]).set(1 if s["paused_until"] else 0)
        except DatabaseError:
            pass


def backfill(conninfo: str, sync_name: str, options: WorkerOptions,
             progress: Callable[[int, int], None] | None = None) -> Worker:
    """Queue every key of a sync and process them all here; ``progress(done, total)`` per batch.
    Returns the worker that ran (its ``totals`` and ``paused``)."""
    outbox = Outbox(Database(conninfo, application_name="s3vl backfill"))
    try:
        outbox.require_syncs([sync_name])
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
    worker.run(once=True)
    return worker
