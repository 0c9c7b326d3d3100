"""One leased batch, start to finish, as one straight line:

    load current rows (one query; PostgreSQL renders text + metadata + hash)
    -> diff with state (pure: unchanged / metadata-only / embed / delete)
    -> reuse stored vectors for metadata-only rows (GetVectors; no model call)
    -> embed only what changed (Bedrock)
    -> build vectors and check their metadata (pure; a bad row fails alone)
    -> mark the keys about to be written unknown in the state (write-ahead), then PutVectors,
       then DeleteVectors (deleted rows, chunks that no longer exist)
    -> record state and complete (version-checked), count failures.

No database transaction is open during the network calls: ``load`` and ``complete`` are each
their own short transaction and the lease protects the keys in between. Any step may crash:
nothing is acknowledged before S3 Vectors accepted the writes, so a rerun repeats the work, and
the state of keys being written says "unknown" (``s3vl.begin_write``) until ``complete``, so a
rerun after a crash between the two re-embeds them (or deletes what was written for a row
deleted meanwhile) instead of trusting the state of the vectors that were replaced.
Transient AWS trouble (:class:`TransientAwsError`) propagates to the worker, which gives the
batch back without counting an attempt against its rows: unless it repeats for some rows only.
When an embedding or a PutVectors call keeps failing with 5xx or broken connections after its
retries, the batch is split in halves until the rows that fail alone are found (:func:`isolate`);
those fail (an attempt each, ending in ``failed`` with their last error) and the rest sync. Only
when no part of the batch succeeds and the service itself does not answer either is it AWS's
trouble, and the batch goes back whole. Throttling is never a row's fault.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import structlog

from sync.aws.embedders.base import Embedder
from sync.aws.retry import RetryPolicy
from sync.aws.s3vectors import Vector, VectorStore
from sync.datapath.contract import RESERVED_NON_FILTERABLE
from sync.datapath.definitions import SyncDef
from sync.datapath.outbox import Lease, Outbox
from sync.datapath.plan import Work, build_vectors, diff, result_of
from sync.errors import Abandoned, RowError, TransientAwsError, VectorStoreError
from sync.telemetry import metrics

log = structlog.get_logger(__name__)

G = TypeVar("G")

#: The report's counter for each kind of work.
_OUTCOMES = {"embed": "embedded", "metadata": "metadata_only", "unchanged": "unchanged", "delete": "deleted",
             "failed": "failed"}

#: While isolating, each call gets two tries and a few seconds: the batch's own call has
#: already been retried in full, so what keeps failing now is what is being looked for.
ISOLATION_POLICY = RetryPolicy(attempts=2, max_seconds=5.0, base=0.05, cap=0.5)


def isolate(groups: Sequence[G], call: Callable[[list[G]], None], reachable: Callable[[], bool],
            cause: TransientAwsError) -> dict[int, TransientAwsError]:
    """Which groups (by index) make ``call`` fail transiently on their own, found by halving.

    ``cause`` is the error the whole batch failed with. ``call`` is tried on halves of the
    groups, then on halves of what failed, down to single groups. Groups whose single call still
    fails transiently are returned with their last error, provided the failure is theirs: some
    other call succeeded meanwhile, or the service answers ``reachable()``. Otherwise (an
    outage) ``cause`` is raised again, and no group is blamed. Throttling is raised at once: it
    says the caller is too fast, not that a group is bad.
    """
    failed: dict[int, TransientAwsError] = {}
    succeeded = False

    def attempt(indices: list[int]) -> None:
        nonlocal succeeded
        try:
            call([groups[i] for i in indices])
            succeeded = True
        except TransientAwsError as exc:
            if exc.throttled:
                raise
            if len(indices) == 1:
                failed[indices[0]] = exc
                return
            middle = len(indices) // 2
            attempt(indices[:middle])
            attempt(indices[middle:])

    indices = list(range(len(groups)))
    if len(indices) == 1:
        failed[0] = cause
    else:
        attempt(indices[:len(indices) // 2])
        attempt(indices[len(indices) // 2:])
    if failed and not succeeded and not reachable():
        raise cause
    return failed


@dataclass
class BatchReport:
    """What one batch did; logged per batch and summed by the worker."""

    sync: str
    keys: int = 0
    embedded: int = 0
    metadata_only: int = 0
    unchanged: int = 0
    deleted: int = 0
    failed: int = 0
    completed: int = 0
    requeued: int = 0
    texts_embedded: int = 0
    vectors_put: int = 0
    vectors_deleted: int = 0
    timings: dict[str, float] = field(default_factory=dict)


# --- the batch --------------------------------------------------------------------------------
class Pipeline:
    """Processes leased batches of one sync with its embedder and vector store.

    One pipeline serves several batches at once (the worker runs a few in flight, each on its
    own thread and database connection, passed to :meth:`process`): the embedder and the store,
    with their limiters, are shared, so the calls in flight stay within their limits.
    """

    def __init__(self, sync: SyncDef, store: VectorStore, embedder: Embedder, worker: str,
                 *, retry_after: float = 0.0, non_filterable: Sequence[str] = RESERVED_NON_FILTERABLE,
                 lease_seconds: float | None = None) -> None:
        self.sync = sync
        self.store = store
        self.embedder = embedder
        self.worker = worker
        self.retry_after = retry_after
        self.non_filterable = list(non_filterable)
        self.lease_seconds = lease_seconds

    def process(self, lease: Lease, outbox: Outbox, stop: threading.Event | None = None) -> BatchReport:
        """One batch, with ``outbox`` (this thread's connection); ``stop`` set means abandon it
        (:class:`Abandoned` at the next step: nothing is acknowledged, the caller gives it back)."""
        sync = self.sync
        report = BatchReport(sync.name, keys=len(lease.keys))
        clock = _Clock(report)

        def checkpoint() -> None:
            if stop is not None and stop.is_set():
                raise Abandoned()

        loaded = outbox.load(sync.name, [k.key for k in lease.keys])
        clock.lap("load")
        plan = diff(sync, lease.keys, loaded)
        checkpoint()
        self._reuse_vectors([w for w in plan if w.kind == "metadata"])
        clock.lap("get")
        self._embed([w for w in plan if w.kind == "embed"], report, stop)
        clock.lap("embed")
        checkpoint()
        self._keep_lease(lease, outbox, clock)
        self._build([w for w in plan if w.kind in ("embed", "metadata")])
        self._put([w for w in plan if w.kind in ("embed", "metadata")], outbox, report)
        self._delete([w for w in plan if w.kind in ("embed", "metadata", "delete")], report)
        clock.lap("write")

        ok = [w for w in plan if w.kind != "failed"]
        failed = [w for w in plan if w.kind == "failed"]
        if ok:
            report.completed, report.requeued = outbox.complete(
                sync.name, self.worker, [result_of(sync, w) for w in ok])
        if failed:
            outbox.fail(sync.name, self.worker, [(w.key, w.version, w.error or "failed") for w in failed],
                        self.retry_after)
        clock.lap("complete")
        self._count(plan, report)
        return report

    def _keep_lease(self, lease: Lease, outbox: Outbox, clock: _Clock) -> None:
        """Past half the lease, renew it, so a slow batch is not taken over by another worker."""
        if self.lease_seconds and time.perf_counter() - clock.start > self.lease_seconds / 2:
            outbox.extend(self.sync.name, self.worker, [k.key for k in lease.keys], self.lease_seconds)
            log.info("batch.lease_extended", sync=self.sync.name, keys=len(lease.keys))

    def _reuse_vectors(self, work: list[Work]) -> None:
        """Metadata-only rows keep their vectors: read them back instead of calling the model.
        A row whose vectors are not all in the index any more is embedded after all."""
        if not work:
            return
        found = self.store.get([k for w in work for k in w.new_keys], data=True)
        for w in work:
            if all(k in found for k in w.new_keys):
                w.vectors = [Vector(k, found[k].data, {}) for k in w.new_keys]
            else:
                w.kind = "embed"

    def _embed(self, work: list[Work], report: BatchReport, stop: threading.Event | None) -> None:
        if not any(w.chunks for w in work):
            return

        def embed(rows: list[Work], policy: RetryPolicy | None = None) -> None:
            texts = [c for w in rows for c in w.chunks]
            result = self.embedder.embed(texts, policy=policy, stop=stop)
            report.texts_embedded += len(texts)
            i = 0
            for w in rows:
                got = result.vectors[i:i + len(w.chunks)]
                i += len(w.chunks)
                errors = [g for g in got if isinstance(g, RowError)]
                if errors:
                    w.fail(str(errors[0]))
                else:
                    w.vectors = [Vector(k, g, {}) for k, g in zip(w.new_keys, got, strict=True)
                                 if not isinstance(g, RowError)]

        try:
            embed(work)
        except TransientAwsError as exc:
            if exc.throttled:
                raise
            log.warning("batch.isolating", sync=self.sync.name, stage="embed", rows=len(work), error=str(exc))
            failed = isolate(work, lambda rows: embed(rows, ISOLATION_POLICY), self.embedder.reachable, exc)
            for i, error in failed.items():
                work[i].fail(f"embedding this row kept failing: {error}")

    def _build(self, work: list[Work]) -> None:
        for w in work:
            try:
                w.vectors = build_vectors(self.sync, w, [v.data for v in w.vectors], self.non_filterable)
            except RowError as exc:
                w.fail(str(exc))

    def _put(self, work: list[Work], outbox: Outbox, report: BatchReport) -> None:
        vectors = [v for w in work for v in w.vectors]
        if not vectors:
            return
        # write-ahead: from here until complete, the state of these keys says "unknown"
        outbox.begin_write(self.sync.name, [result_of(self.sync, w) for w in work if w.vectors])
        try:
            self.store.put(vectors)
            report.vectors_put += len(vectors)
        except VectorStoreError:
            # the request was refused as a whole: put row by row so only the bad rows fail
            for w in work:
                try:
                    self.store.put(w.vectors)
                    report.vectors_put += len(w.vectors)
                except VectorStoreError as exc:
                    w.fail(str(exc))
        except TransientAwsError as exc:
            if exc.throttled:
                raise
            log.warning("batch.isolating", sync=self.sync.name, stage="put", rows=len(work), error=str(exc))
            rows = [w for w in work if w.vectors]

            def put(part: list[Work]) -> None:
                self.store.put([v for w in part for v in w.vectors], policy=ISOLATION_POLICY)
                report.vectors_put += sum(len(w.vectors) for w in part)

            for i, error in isolate(rows, put, self.store.reachable, exc).items():
                rows[i].fail(f"writing this row kept failing: {error}")

    def _delete(self, work: list[Work], report: BatchReport) -> None:
        keys = [k for w in work if w.kind != "failed" for k in w.delete_keys]
        if keys:
            self.store.delete(keys)
            report.vectors_deleted += len(keys)

    def _count(self, plan: list[Work], report: BatchReport) -> None:
        outcomes = Counter(_OUTCOMES[w.kind] for w in plan)
        for outcome, n in outcomes.items():
            setattr(report, outcome, getattr(report, outcome) + n)
            metrics.ROWS.labels(self.sync.name, outcome).inc(n)
        for w in plan:
            if w.kind == "failed":
                log.warning("row.failed", sync=self.sync.name, key=w.key, error=w.error)
        metrics.VECTORS.labels(self.sync.name, "put").inc(report.vectors_put)
        metrics.VECTORS.labels(self.sync.name, "delete").inc(report.vectors_deleted)


class _Clock:
    def __init__(self, report: BatchReport) -> None:
        self.report = report
        self.start = self.t = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.report.timings[name] = round(now - self.t, 4)
        self.t = now
