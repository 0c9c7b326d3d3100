"""The worker loop: lease batches, run the pipeline on a few at once, repeat; ``--once`` drains and exits.

* A few batches are in flight at once (``batches_in_flight``), each on a thread of its own with
  its own database connection: while one batch is embedded, others are written, so Bedrock, S3
  Vectors and the database wait for each other less. The main thread leases, polls logical
  capture, and reacts to what the batches report.
* One :class:`~sync.datapath.pipeline.Pipeline` per sync, shared by its batches in flight, built
  on first use (embedder for the sync's model, vector store for its index) and rebuilt when the
  definition changes. Its embedder's calls in flight adapt between ``concurrency`` and
  ``max_concurrency``, its index's writes in flight up to ``max_writes`` (AIMD, both).
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
* SIGTERM/SIGINT: the batches in flight are finished, then the loop exits. A second signal
  abandons them at their next step (after the Bedrock or S3 Vectors call in flight; their keys
  are released; a killed worker's keys come back when their lease expires). Nothing is lost
  either way.
* With ``emf_interval`` > 0 an :class:`~sync.telemetry.publisher.EmfPublisher` thread writes each
  sync's CloudWatch metrics to stdout at start, every interval and at exit, over its own
  connection, so a long batch or a backoff never leaves the lag alarm without datapoints.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
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
    Abandoned,
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
    #: Bedrock calls in flight at start, and the most they grow to while Bedrock keeps up
    concurrency: int = 8
    max_concurrency: int = 64
    #: batches processed at once, and the most S3 Vectors writes in flight per index
    batches_in_flight: int = 3
    max_writes: int = 8
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


PipelineFactory = Callable[[SyncDef], Pipeline]


class Worker:
    def __init__(self, conninfo: str, options: WorkerOptions | None = None, *, worker_id: str | None = None,
                 on_batch: Callable[[BatchReport], None] | None = None, outbox: Outbox | None = None,
                 capture: LogicalCapture | None = None, pipeline_factory: PipelineFactory | None = None) -> None:
        self.conninfo = conninfo
        self.options = options or WorkerOptions()
        #: the main thread's connection (leases, status); batches in flight use their own
        self.outbox = outbox or self._connect()
        self._shared_outbox = outbox is not None  # injected (tests): every thread uses it
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
        self._lock = threading.RLock()
        self._local = threading.local()
        self._thread_outboxes: list[Outbox] = []
        self._stopping = False
        self._abandon = threading.Event()
        self._signals = 0
        self._gauges_at = 0.0

    # --- construction -----------------------------------------------------------------------
    def _connect(self) -> Outbox:
        return Outbox(Database(self.conninfo, application_name="s3vl worker"))

    def _thread_outbox(self) -> Outbox:
        """The calling thread's own connection (a connection serves one thread at a time)."""
        if self._shared_outbox:
            return self.outbox
        outbox: Outbox | None = getattr(self._local, "outbox", None)
        if outbox is None:
            outbox = self._local.outbox = self._connect()
            with self._lock:
                self._thread_outboxes.append(outbox)
        return outbox

    def _client(self, service: str) -> Any:
        with self._lock:
            if service not in self._clients:
                o = self.options
                # one connection per call that may be in flight
                pool = max(o.max_concurrency, o.concurrency) if service == "bedrock-runtime" else \
                    o.max_writes + o.batches_in_flight
                self._clients[service] = clients.client(service, o.region, o.endpoint_url, max(pool, 4))
            return self._clients[service]

    def _build_pipeline(self, sync: SyncDef) -> Pipeline:
        o = self.options
        store = VectorStore(self._client("s3vectors"), sync.index_arn, policy=o.policy, max_writes=o.max_writes)
        non_filterable = sorted(set(store.non_filterable_keys()) | set(RESERVED_NON_FILTERABLE))
        embedder = embedders.for_model(sync.embedding_model, sync.dimensions, sync.normalize_vectors,
                                       self._client("bedrock-runtime"), concurrency=o.concurrency,
                                       max_concurrency=o.max_concurrency, policy=o.policy)
        return Pipeline(sync, store, embedder, self.worker_id, retry_after=o.retry_after,
                        non_filterable=non_filterable, lease_seconds=o.lease_seconds)

    def pipeline(self, sync_name: str, outbox: Outbox | None = None) -> Pipeline:
        sync = (outbox or self.outbox).sync(sync_name)
        with self._lock:  # batches of one sync share its pipeline (and its limiters)
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
            self._abandon.set()

    def stop(self) -> None:
        self._stopping = True

    # --- one batch --------------------------------------------------------------------------
    def run_once(self) -> BatchReport | None:
        """Lease and process one batch here; None when nothing is leasable."""
        o = self.options
        lease = self.outbox.lease(self.worker_id, o.batch_size, o.lease_seconds, o.only_sync)
        if lease is None:
            return None
        return self._process(lease, self.outbox)

    def _process(self, lease: Lease, outbox: Outbox) -> BatchReport:
        """Run one leased batch; what fails gives its keys back (and pauses a failing sync)."""
        start = time.perf_counter()
        try:
            report = self.pipeline(lease.sync_name, outbox).process(lease, outbox, self._abandon)
        except (TransientAwsError, DatabaseError) as exc:
            self._give_back(lease, exc, outbox)
            raise
        except (SyncDefinitionError, VectorStoreError, EmbeddingError) as exc:
            # the sync failed as a whole (a row's own failure never gets here): pause it
            return self._pause(lease, exc, outbox)
        except Abandoned:
            self._give_back(lease, None, outbox)
            raise
        except Exception as exc:
            self._give_back(lease, exc, outbox)  # a bug: the keys go back at once, the traceback surfaces
            raise
        elapsed = time.perf_counter() - start
        with self._lock:
            self._pauses.pop(lease.sync_name, None)
            self.paused.pop(lease.sync_name, None)
            self.totals.add(report)
        metrics.BATCH_SECONDS.labels(lease.sync_name).observe(elapsed)
        metrics.BATCHES.labels(lease.sync_name, "ok").inc()
        log.info("batch.done", sync=report.sync, keys=report.keys, embedded=report.embedded,
                 metadata_only=report.metadata_only, unchanged=report.unchanged, deleted=report.deleted,
                 failed=report.failed, requeued=report.requeued, texts=report.texts_embedded,
                 put=report.vectors_put, removed=report.vectors_deleted, seconds=round(elapsed, 3),
                 **{f"t_{k}": v for k, v in report.timings.items()})
        if self.on_batch is not None:
            self.on_batch(report)
        return report

    def _in_thread(self, lease: Lease) -> BatchReport:
        return self._process(lease, self._thread_outbox())

    def _pause(self, lease: Lease, exc: Exception, outbox: Outbox) -> BatchReport:
        """Give the batch back and pause its sync, for longer each time it fails again."""
        with self._lock:
            n = self._pauses.get(lease.sync_name, 0)
            self._pauses[lease.sync_name] = n + 1
            self._pipelines.pop(lease.sync_name, None)  # rebuilt (index, model) when it resumes
            self.paused[lease.sync_name] = str(exc)
        seconds = min(self.options.pause_seconds * 2 ** n, MAX_PAUSE_SECONDS)
        metrics.BATCHES.labels(lease.sync_name, "paused").inc()
        log.error("sync.paused", sync=lease.sync_name, keys=len(lease.keys), seconds=seconds, error=str(exc))
        self._give_back(lease, exc, outbox)
        outbox.pause(lease.sync_name, str(exc), seconds)
        report = BatchReport(lease.sync_name, keys=len(lease.keys), requeued=len(lease.keys))
        if self.on_batch is not None:
            self.on_batch(report)
        return report

    def _give_back(self, lease: Lease, exc: BaseException | None, outbox: Outbox) -> None:
        metrics.BATCHES.labels(lease.sync_name, "transient" if exc else "abandoned").inc()
        log.warning("batch.given_back", sync=lease.sync_name, keys=len(lease.keys),
                    error=str(exc) if exc else "stopping")
        with contextlib.suppress(DatabaseError):  # else the lease expires on its own
            outbox.release(lease.sync_name, self.worker_id, [k.key for k in lease.keys])

    # --- the loop ---------------------------------------------------------------------------
    def run(self, *, once: bool = False) -> Totals:
        """Process batches until stopped (or, with ``once``, until nothing is leasable).

        With ``once``, raises :class:`WorkerGaveUpError` once AWS or the database failed for longer
        than ``give_up_seconds`` in a row.
        """
        o = self.options
        backoff = o.poll_seconds
        failing_since: float | None = None
        publisher = None
        if o.emf_interval > 0:
            publisher = EmfPublisher(self.conninfo, o.emf_interval, o.only_sync)
            publisher.start()
        batches = ThreadPoolExecutor(max_workers=o.batches_in_flight, thread_name_prefix="s3vl-batch")
        in_flight: set[Future[BatchReport]] = set()
        try:
            if o.only_sync:
                self.outbox.require_syncs([o.only_sync])
            while not self._stopping:
                try:
                    if o.capture:
                        self.capture.poll()
                    # idle only when the queue had nothing while no batch was in flight (a batch
                    # that ends may requeue keys that changed meanwhile, or failed rows to retry)
                    drained = self._lease_more(batches, in_flight) and not in_flight
                    done: set[Future[BatchReport]] = set()
                    if in_flight:
                        done, _ = wait(in_flight, timeout=o.poll_seconds, return_when=FIRST_COMPLETED)
                        in_flight.difference_update(done)
                        self._outcomes(done)  # raises the first batch's transient trouble
                except (TransientAwsError, DatabaseError) as exc:
                    now = time.monotonic()
                    failing_since = failing_since or now
                    metrics.WORKER_UP.set(0)
                    metrics.WORKER_ERRORS.labels(type(exc).__name__).inc()
                    log.warning("worker.backoff", error=str(exc), seconds=round(backoff, 2),
                                failing_for=round(now - failing_since, 1))
                    if once and not isinstance(exc, TransientAwsError | DatabaseUnavailableError):
                        raise  # refused, not unreachable (a missing grant): waiting will not help
                    if once and now - failing_since >= o.give_up_seconds:
                        raise WorkerGaveUpError(f"gave up after {now - failing_since:.0f}s of failures: {exc}") from exc
                    self._sleep(backoff)
                    backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
                    continue
                if done or drained:  # the database and AWS answered
                    failing_since = None
                    backoff = o.poll_seconds
                    metrics.WORKER_UP.set(1)
                if drained and not in_flight:
                    self._update_gauges()
                    if once:
                        break
                    self._sleep(o.poll_seconds)
                elif time.monotonic() - self._gauges_at > 10:
                    self._update_gauges()
        finally:
            self._finish(batches, in_flight)
            if self._abandon.is_set():
                log.info("worker.abandoned")
            if publisher is not None:
                publisher.stop()
            self._close()
        return self.totals

    def _lease_more(self, batches: ThreadPoolExecutor, in_flight: set[Future[BatchReport]]) -> bool:
        """Lease batches until ``batches_in_flight`` run; True when the queue had no more to give."""
        o = self.options
        while len(in_flight) < o.batches_in_flight and not self._stopping:
            lease = self.outbox.lease(self.worker_id, o.batch_size, o.lease_seconds, o.only_sync)
            if lease is None:
                return True
            in_flight.add(batches.submit(self._in_thread, lease))
        return False

    def _outcomes(self, done: set[Future[BatchReport]]) -> None:
        """Collect finished batches; the first transient failure is raised once all are seen."""
        trouble: BaseException | None = None
        for fut in done:
            exc = fut.exception()
            if exc is None or isinstance(exc, Abandoned):
                continue
            if isinstance(exc, TransientAwsError | DatabaseError):
                trouble = trouble or exc
            else:
                raise exc  # a bug: the traceback surfaces
        if trouble is not None:
            raise trouble

    def _finish(self, batches: ThreadPoolExecutor, in_flight: set[Future[BatchReport]]) -> None:
        """Let the batches in flight end (abandoned at their next step after a second signal)."""
        for fut in in_flight:
            with contextlib.suppress(BaseException):
                fut.result()
        batches.shutdown(wait=True)

    def _close(self) -> None:
        self.outbox.close()
        self.capture.close()
        for outbox in self._thread_outboxes:
            outbox.close()

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
    """Queue every key of a sync and process them all here; ``progress(done, total)`` per batch
    (from the batch's thread). Returns the worker that ran (its ``totals`` and ``paused``)."""
    outbox = Outbox(Database(conninfo, application_name="s3vl backfill"))
    try:
        outbox.require_syncs([sync_name])
        outbox.resync(sync_name)
        total = outbox.pending(sync_name)
    finally:
        outbox.close()
    options.only_sync = sync_name
    done = [0]
    lock = threading.Lock()

    def on_batch(report: BatchReport) -> None:  # called by the batches in flight, from their threads
        with lock:
            done[0] += report.keys - report.requeued
            if progress is not None:
                progress(min(done[0], total), total)

    worker = Worker(conninfo, options, on_batch=on_batch)
    worker.install_signal_handlers()
    worker.run(once=True)
    return worker
