"""``s3vl reconcile``: prove that each sync's index agrees with its source, and repair it.

Per sync, one straight line:

    scan the index (ListVectors, 16 segments, COPY into a temp table)      scan.py
      (or, rolling: K segments, refreshing a snapshot of the others)        rolling.py
    -> classify in SQL (orphaned / missing / stale / metadata / state)      classify.py
    -> report (exact counts, sample keys)                                   report.py
    -> with --apply: safety limit -> fix state -> delete orphans -> enqueue
    -> record the run in s3vl.reconcile_runs (shown by s3vl.sync_status) and metrics.

Neither the listing nor the source is ever held in Python memory; the one connection of a run
(a :class:`~sync.db.connection.Database`) owns the temporary tables, and no transaction spans a
network call (deletes are batched between short statements). Its SQL is the named queries of
``sql/queries/reconcile.sql``; what it writes into s3vl's tables goes through s3vl's functions
(``s3vl.reconcile_started``, ``reconcile_fix_state``, ``reconcile_forget``, ``enqueue``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog
from botocore.exceptions import BotoCoreError, ClientError
from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

from sync.aws import clients
from sync.aws.retry import RetryPolicy
from sync.aws.s3vectors import VectorStore
from sync.db.connection import Database
from sync.errors import ReconcileError, S3vlError, UnknownSyncError
from sync.ops.reconcile import classify, rolling
from sync.ops.reconcile.report import Category, ReconcileReport, check_delete_share
from sync.ops.reconcile.scan import MAX_SEGMENTS, PageLister, boto3_lister, create_scan_table, scan_into

log = structlog.get_logger(__name__)

#: DeleteVectors accepts at most 500 keys per call (service model).
DELETE_BATCH = 500
#: Keys per s3vl.enqueue call, and state corrections per s3vl.reconcile_fix_state call (one short
#: transaction each).
ENQUEUE_KEYS = 5000
FIX_ROWS = 10000
#: DeleteVectors calls in flight at once.
DELETE_PARALLELISM = 4

ClientFactory = Callable[[str], Any]
#: Called as progress(sync, expected_vectors) -> per-page advance callback, or None.
ProgressFactory = Callable[[str, int | None], Callable[[int], None] | None]


@dataclass(frozen=True)
class ReconcileOptions:
    apply: bool = False
    #: how AWS calls are retried (throttling, 5xx, connection errors) before a run fails
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    force: bool = False
    max_reembed: int | None = None
    max_delete_share: float = 0.10
    segments: int = MAX_SEGMENTS
    #: a rolling run: list this many of the 16 segments, continuing the cycle (None: a full run)
    segments_per_run: int | None = None
    sample_size: int = 10
    page_size: int = 1000


# --- metrics (a batch job: written to a textfile for node_exporter, see write_metrics) -------
REGISTRY = CollectorRegistry()
_DRIFT = Gauge("s3vl_reconcile_drift", "Drift found by the last reconcile", ["sync", "category"],
               registry=REGISTRY)
_REPAIRED = Gauge("s3vl_reconcile_repaired", "Drift repaired by the last reconcile", ["sync", "category"],
                  registry=REGISTRY)
_VECTORS = Gauge("s3vl_reconcile_index_vectors", "Vectors listed in the index", ["sync"], registry=REGISTRY)
_SECONDS = Gauge("s3vl_reconcile_phase_seconds", "Duration of the last reconcile by phase", ["sync", "phase"],
                 registry=REGISTRY)
_LAST = Gauge("s3vl_reconcile_last_run_timestamp_seconds", "When the last reconcile finished", ["sync"],
              registry=REGISTRY)
_EXIT = Gauge("s3vl_reconcile_exit_code", "Exit status of the last reconcile (0 = clean)", ["sync"],
              registry=REGISTRY)


def _observe(report: ReconcileReport) -> None:
    for name, result in report.categories.items():
        _DRIFT.labels(report.sync, name).set(result.count)
        _REPAIRED.labels(report.sync, name).set(result.repaired)
    _VECTORS.labels(report.sync).set(report.index_vectors)
    for phase in ("scan", "classify", "repair"):
        _SECONDS.labels(report.sync, phase).set(getattr(report, f"{phase}_seconds"))
    _LAST.labels(report.sync).set(time.time())
    _EXIT.labels(report.sync).set(int(report.exit_code()))


def write_metrics(path: Path) -> None:
    """Write the reconcile metrics in Prometheus text format (node_exporter textfile collector)."""
    write_to_textfile(str(path), REGISTRY)


# --- AWS client ------------------------------------------------------------------------------
def default_client(region: str) -> Any:
    """The shared s3vectors client (retries are :mod:`sync.aws`'s), pooled for 16 segments + deletes."""
    return clients.client("s3vectors", region, pool=MAX_SEGMENTS + 2 * DELETE_PARALLELISM)


# --- database --------------------------------------------------------------------------------
def load_targets(db: Database, names: Sequence[str] | None) -> list[classify.SyncTarget]:
    """The syncs to reconcile (all, or the named ones; an unknown name is an error).

    A sync that cannot be reconciled (its source table is gone) is still returned, with the
    reason in ``problem``: its report carries the error, the others run.
    """
    rows = db.all("reconcile_targets", {"names": list(names) if names else None})
    unknown = sorted(set(names or ()) - {str(r["name"]) for r in rows})
    if unknown:
        raise UnknownSyncError(f"no such sync: {', '.join(unknown)} (SELECT name FROM s3vl.syncs lists them)")
    return [classify.SyncTarget(
        name=str(r["name"]), source=str(r["source"]), index_name=str(r["index_name"]), index_arn=str(r["index_arn"]),
        region=str(r["region"]), embedding_version=str(r["embedding_version"]), chunked=bool(r["chunked"]),
        problem=None if r["source_exists"] else
        f"the source table {r['source']} of sync {r['name']!r} no longer exists; drop the sync (s3vl.drop_sync)",
    ) for r in rows]


def _db_now(db: Database) -> datetime:
    value: datetime = db.value("reconcile_now")
    return value


# --- the run ---------------------------------------------------------------------------------
def reconcile(
    conninfo: str,
    options: ReconcileOptions,
    sync_names: Sequence[str] | None = None,
    client_factory: ClientFactory = default_client,
    progress: ProgressFactory | None = None,
) -> list[ReconcileReport]:
    """Reconcile every sync (or the named ones); one report per sync, errors included in it."""
    reports = []
    with Database(conninfo, application_name="s3vl reconcile") as db:
        db.execute("reconcile_session")
        targets = load_targets(db, sync_names)
        by_region: dict[str, Any] = {}
        for target in targets:
            if target.region not in by_region:
                by_region[target.region] = client_factory(target.region)
            reports.append(reconcile_one(db, target, by_region[target.region], options, progress))
    return reports


def reconcile_one(
    db: Database,
    target: classify.SyncTarget,
    client: Any,
    options: ReconcileOptions,
    progress: ProgressFactory | None = None,
) -> ReconcileReport:
    """Scan, classify, (repair), record: one sync."""
    bound = log.bind(sync=target.name, index=target.index_name)
    started = _db_now(db)
    report = ReconcileReport(sync=target.name, index=target.index_name, index_arn=target.index_arn,
                             embedding_version=target.embedding_version, applied=options.apply,
                             started_at=started, segments=options.segments)
    run_id = db.value("reconcile_started", {"sync": target.name, "started_at": started, "applied": options.apply})
    locked = False
    try:
        if target.problem:
            raise ReconcileError(target.problem)
        locked = _lock(db, target.name)
        if options.segments_per_run is None:
            _scan_and_classify(db, target, client, options, report, progress)
            if options.apply:
                _repair(db, target, client, options, report, report.started_at)
        else:
            _rolling(db, target, client, options, report, progress)
    except (BotoCoreError, ClientError, S3vlError) as exc:
        report.error = f"{type(exc).__name__}: {str(exc).strip()}"
        bound.error("reconcile.failed", error=report.error)
    finally:
        if locked:
            db.execute("reconcile_unlock", {"sync": target.name})
    report.finished_at = _db_now(db)
    db.execute("reconcile_finished", {"id": run_id, "finished_at": report.finished_at,
                                      "report": json.dumps(report.to_dict(), default=str)})
    _observe(report)
    bound.info("reconcile.done", applied=options.apply, vectors=report.index_vectors,
               **{name: r.count for name, r in report.categories.items()},
               remaining=report.remaining, exit_code=int(report.exit_code()))
    return report


def _lock(db: Database, sync: str) -> bool:
    """One reconcile per sync at a time (a session advisory lock, released at the end or on disconnect)."""
    if not db.value("reconcile_lock", {"sync": sync}):
        raise ReconcileError(f"another reconcile of sync {sync!r} is running; try again when it has finished")
    return True


def _scan_and_classify(
    db: Database,
    target: classify.SyncTarget,
    client: Any,
    options: ReconcileOptions,
    report: ReconcileReport,
    progress: ProgressFactory | None,
) -> None:
    lister, advance = _start_listing(db, target, client, options, progress, share=1.0)
    stats = scan_into(db, lister, options.segments, advance)
    report.index_vectors, report.pages, report.scan_seconds = stats.vectors, stats.pages, stats.seconds
    t0 = time.monotonic()
    classify.start(db, target, scoped=False)
    report.classify_seconds = time.monotonic() - t0
    _classify(db, target, options, report, report.started_at, scoped=False)


def _start_listing(db: Database, target: classify.SyncTarget, client: Any, options: ReconcileOptions,
                   progress: ProgressFactory | None, share: float) -> tuple[PageLister, Callable[[int], None] | None]:
    """A fresh scan table, the page lister, and the progress callback of a run listing ``share`` of the index."""
    expected = db.value("reconcile_expected_vectors", {"sync": target.name})
    advance = progress(target.name, int(expected * share) if expected else None) if progress else None
    create_scan_table(db)
    return boto3_lister(client, target.index_arn, options.page_size, options.policy), advance


def _classify(db: Database, target: classify.SyncTarget, options: ReconcileOptions, report: ReconcileReport,
              since: datetime, scoped: bool) -> None:
    """Classify the prepared inputs into the report's counts (its time added to classify_seconds)."""
    t0 = time.monotonic()
    classify.build(db, target, since, scoped)
    counts = classify.counts(db, target.name, options.sample_size)
    report.categories = counts.categories
    report.source_rows, report.state_rows = counts.source_rows, counts.state_rows
    report.judged_vectors = counts.judged_vectors
    seconds = time.monotonic() - t0
    report.classify_seconds += seconds
    log.info("reconcile.classified", sync=target.name, seconds=round(seconds, 2),
             **{name: r.count for name, r in report.categories.items()})


def _rolling(
    db: Database,
    target: classify.SyncTarget,
    client: Any,
    options: ReconcileOptions,
    report: ReconcileReport,
    progress: ProgressFactory | None,
) -> None:
    """A rolling run: K segments listed, their keys judged and repaired, the cycle advanced."""
    assert options.segments_per_run is not None
    lister, advance = _start_listing(db, target, client, options, progress,
                                     share=options.segments_per_run / MAX_SEGMENTS)
    cycle, segs, since, scoped = rolling.scan_and_scope(db, target, lister, options.segments_per_run, report,
                                                        advance)
    if since is not None:
        _classify(db, target, options, report, since, scoped)
        if options.apply:
            _repair(db, target, client, options, report, report.started_at)
    report.finished_at = _db_now(db)
    rolling.advance_cycle(db, target, cycle, segs, report)


def _repair(
    db: Database,
    target: classify.SyncTarget,
    client: Any,
    options: ReconcileOptions,
    report: ReconcileReport,
    since: datetime,
) -> None:
    """Repair what the classification found; ``since``: rows the worker wrote later are left alone."""
    # Refusal stops every repair, not only the deletes: a database that would delete much of the
    # index (a wrong URL, an old backup) must not enqueue or rewrite state against it either.
    # The share is of the vectors judged (all listed ones in a full run, the run's share in a rolling one).
    orphans = report.category(Category.ORPHANED).count
    decision = check_delete_share(orphans, report.judged_vectors, options.max_delete_share, options.force)
    if not decision.allowed:
        report.refused = decision.reason
        log.warning("reconcile.refused", sync=target.name, orphans=orphans, vectors=report.judged_vectors,
                    share=round(decision.share, 4), limit=decision.limit)
        return
    t0 = time.monotonic()
    # 1. state rows describe the index (so the worker's diff re-embeds exactly what is needed)
    fixed = _fix_state(db, target, since, report.category(Category.STATE_DRIFT).count)
    report.category(Category.STATE_DRIFT).repaired = fixed
    # 2. orphans go, then the state rows of their deleted source rows
    report.category(Category.ORPHANED).repaired = _delete_orphans(db, target, client, since, options.policy)
    # 3. missing, metadata-drift and stale keys are queued for the worker (stale ones at most
    #    max_reembed per run); keys already pending in the outbox count as repaired: the worker has them
    enqueued = _enqueue(db, target, since, options.max_reembed)
    for cat, n in enqueued.items():
        result = report.category(cat)
        result.repaired = min(result.count, n + result.queued)
    report.deferred_stale = report.category(Category.STALE).remaining
    report.repair_seconds = time.monotonic() - t0
    log.info("reconcile.repaired", sync=target.name, state_fixed=fixed,
             deleted=report.category(Category.ORPHANED).repaired, deferred_stale=report.deferred_stale,
             **{f"enqueued_{cat.value}": n for cat, n in enqueued.items()})


def _fix_state(db: Database, target: classify.SyncTarget, since: datetime, drift: int) -> int:
    db.execute("fix_work")
    fixed = 0
    for start in range(0, drift, FIX_ROWS):
        fixed += int(db.value("fix_batch", {"sync": target.name, "since": since, "start": start,
                                            "end": start + FIX_ROWS}) or 0)
    return fixed


def _delete_orphans(db: Database, target: classify.SyncTarget, client: Any, since: datetime,
                    policy: RetryPolicy) -> int:
    params = {"sync": target.name, "since": since}
    db.execute("orphan_work", params)
    total = int(db.value("orphan_count") or 0)
    deleted = 0
    store = VectorStore(client, target.index_arn, policy=policy)  # retries, write limits, <= 500 keys a call

    def delete(keys: list[str]) -> int:
        store.delete(keys)
        return len(keys)

    # Batches are read by row number in short statements; at most DELETE_PARALLELISM calls are in
    # flight. Results are collected in order, so `deleted` is always a prefix of the work table
    # and the state cleanup after a failure covers exactly the vectors that are gone.
    try:
        with ThreadPoolExecutor(DELETE_PARALLELISM, thread_name_prefix="s3vl-delete") as pool:
            in_flight: list[Future[int]] = []
            for start in range(0, total, DELETE_BATCH):
                keys = [str(r["key"]) for r in db.all("orphan_batch", {"start": start, "end": start + DELETE_BATCH})]
                in_flight.append(pool.submit(delete, keys))
                if len(in_flight) >= DELETE_PARALLELISM:
                    deleted += in_flight.pop(0).result()
            for fut in in_flight:
                deleted += fut.result()
    finally:
        db.execute("orphan_forget", {**params, "done": deleted})
    return deleted


def _enqueue(db: Database, target: classify.SyncTarget, since: datetime,
             max_reembed: int | None) -> dict[Category, int]:
    """Queue missing, metadata-drift and stale keys; how many of each were queued."""
    db.execute("enqueue_work", {"sync": target.name, "max_stale": max_reembed})
    row = db.one("enqueue_count")
    assert row is not None
    total, stale, metadata = int(row["total"]), int(row["stale"]), int(row["metadata_drift"])
    for start in range(0, total, ENQUEUE_KEYS):
        batch = {"sync": target.name, "since": since, "start": start, "end": start + ENQUEUE_KEYS}
        if metadata:
            db.execute("enqueue_metadata", batch)  # first: the worker then re-puts their metadata
        db.execute("enqueue_batch", batch)
    return {Category.MISSING: total - stale - metadata, Category.METADATA_DRIFT: metadata, Category.STALE: stale}
