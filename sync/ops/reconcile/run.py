"""``s3vl reconcile``: prove that each sync's index agrees with its source, and repair it.

Per sync, one straight line:

    scan the index (ListVectors, 16 segments, COPY into a temp table)      reconcile_scan
    -> classify in SQL (orphaned / missing / stale / state drift)           reconcile_classify
    -> report (exact counts, sample keys)                                   reconcile_report
    -> with --apply: safety limit -> fix state -> delete orphans -> enqueue
    -> record the run in s3vl.reconcile_runs (shown by s3vl.sync_status) and metrics.

Neither the listing nor the source is ever held in Python memory; the one connection of a run
owns the temporary tables, and no transaction spans a network call (deletes are batched
between short statements).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import structlog
from botocore.exceptions import BotoCoreError, ClientError
from prometheus_client import CollectorRegistry, Gauge, write_to_textfile
from psycopg.types.json import Jsonb

from sync.aws import clients
from sync.aws.s3vectors import VectorStore
from sync.errors import ReconcileError, S3vlError
from sync.ops.reconcile import classify
from sync.ops.reconcile.report import Category, ReconcileReport, check_delete_share
from sync.ops.reconcile.scan import MAX_SEGMENTS, boto3_lister, create_scan_table, scan_into

log = structlog.get_logger(__name__)

#: DeleteVectors accepts at most 500 keys per call (service model).
DELETE_BATCH = 500
#: Keys per s3vl.enqueue call (one short transaction each).
ENQUEUE_BATCH = 5000
#: DeleteVectors calls in flight at once.
DELETE_PARALLELISM = 4

ClientFactory = Callable[[str], Any]
#: Called as progress(sync, expected_vectors) -> per-page advance callback, or None.
ProgressFactory = Callable[[str, int | None], Callable[[int], None] | None]


@dataclass(frozen=True)
class ReconcileOptions:
    apply: bool = False
    force: bool = False
    max_reembed: int | None = None
    max_delete_share: float = 0.10
    segments: int = MAX_SEGMENTS
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
@contextmanager
def _session(conninfo: str) -> Iterator[psycopg.Connection[Any]]:
    try:
        conn = psycopg.connect(conninfo, autocommit=True)
    except psycopg.OperationalError as exc:
        raise ReconcileError(f"cannot connect to the database: {str(exc).strip()}") from exc
    with conn:
        # temp_buffers only counts before the session first touches a temporary table
        conn.execute("SET temp_buffers = '256MB'")
        conn.execute("SET work_mem = '128MB'")
        conn.execute("SET application_name = 's3vl reconcile'")
        yield conn


_TARGETS = """
SELECT s.name,
       CASE WHEN c.relkind = 'p' THEN '' ELSE 'ONLY ' END || s.source::text, c.oid IS NOT NULL,
       s.index_name, i.index_arn, i.region, s.embedding_version, s.chunk_size IS NOT NULL,
       (SELECT array_agg(x.name ORDER BY x.name) FROM s3vl.syncs x WHERE x.index_name = s.index_name)
FROM s3vl.syncs AS s JOIN s3vl.indexes AS i ON i.name = s.index_name
LEFT JOIN pg_catalog.pg_class AS c ON c.oid = s.source
WHERE %(names)s::text[] IS NULL OR s.name = ANY (%(names)s::text[])
ORDER BY s.name
"""


def load_targets(conn: psycopg.Connection[Any], names: Sequence[str] | None) -> list[classify.SyncTarget]:
    """The syncs to reconcile (all, or the named ones; an unknown name is an error).

    A sync that cannot be reconciled (its source table is gone, its index is shared) is still
    returned, with the reason in ``problem``: its report carries the error, the others run.
    """
    try:
        rows = conn.execute(_TARGETS, {"names": list(names) if names else None}).fetchall()
    except psycopg.errors.UndefinedTable as exc:
        raise ReconcileError("the s3vl schema is not installed here (run s3vl install-sql)") from exc
    found = {str(r[0]) for r in rows}
    unknown = sorted(set(names or ()) - found)
    if unknown:
        raise ReconcileError(f"no such sync: {', '.join(unknown)} (SELECT name FROM s3vl.syncs lists them)")
    targets = []
    for name, source, source_exists, index_name, arn, region, ev, chunked, sharing in rows:
        problem = None
        if not source_exists:
            problem = f"the source table of sync {name!r} no longer exists; drop the sync (s3vl.drop_sync)"
        elif len(sharing) > 1:
            problem = (f"index {index_name!r} is used by syncs {', '.join(sharing)}: reconcile cannot tell "
                       "their vectors apart; give each sync its own index")
        targets.append(classify.SyncTarget(name=str(name), source=str(source), index_name=str(index_name),
                                           index_arn=str(arn), region=str(region), embedding_version=str(ev),
                                           chunked=bool(chunked), problem=problem))
    return targets


def _db_now(conn: psycopg.Connection[Any]) -> datetime:
    row = conn.execute("SELECT clock_timestamp()").fetchone()
    assert row is not None
    value: datetime = row[0]
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
    with _session(conninfo) as conn:
        targets = load_targets(conn, sync_names)
        by_region: dict[str, Any] = {}
        for target in targets:
            if target.region not in by_region:
                by_region[target.region] = client_factory(target.region)
            reports.append(reconcile_one(conn, target, by_region[target.region], options, progress))
    return reports


def reconcile_one(
    conn: psycopg.Connection[Any],
    target: classify.SyncTarget,
    client: Any,
    options: ReconcileOptions,
    progress: ProgressFactory | None = None,
) -> ReconcileReport:
    """Scan, classify, (repair), record: one sync."""
    bound = log.bind(sync=target.name, index=target.index_name)
    started = _db_now(conn)
    report = ReconcileReport(sync=target.name, index=target.index_name, index_arn=target.index_arn,
                             embedding_version=target.embedding_version, applied=options.apply,
                             started_at=started, segments=options.segments)
    run_id = _record_start(conn, report)
    locked = False
    try:
        if target.problem:
            raise ReconcileError(target.problem)
        locked = _lock(conn, target.name)
        _scan_and_classify(conn, target, client, options, report, progress)
        if options.apply:
            _repair(conn, target, client, options, report)
    except (psycopg.Error, BotoCoreError, ClientError, S3vlError) as exc:
        report.error = f"{type(exc).__name__}: {str(exc).strip()}"
        bound.error("reconcile.failed", error=report.error)
    finally:
        if locked:
            conn.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (_LOCK_PREFIX + target.name,))
    report.finished_at = _db_now(conn)
    _record_finish(conn, run_id, report)
    _observe(report)
    bound.info("reconcile.done", applied=options.apply, vectors=report.index_vectors,
               **{name: r.count for name, r in report.categories.items()},
               remaining=report.remaining, exit_code=int(report.exit_code()))
    return report


_LOCK_PREFIX = "s3vl.reconcile:"


def _lock(conn: psycopg.Connection[Any], sync: str) -> bool:
    """One reconcile per sync at a time (a session advisory lock, released at the end or on disconnect)."""
    row = conn.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", (_LOCK_PREFIX + sync,)).fetchone()
    if not (row and row[0]):
        raise ReconcileError(f"another reconcile of sync {sync!r} is running; try again when it has finished")
    return True


def _record_start(conn: psycopg.Connection[Any], report: ReconcileReport) -> int:
    row = conn.execute(
        "INSERT INTO s3vl.reconcile_runs (sync_name, started_at, applied) VALUES (%s, %s, %s) RETURNING id",
        (report.sync, report.started_at, report.applied),
    ).fetchone()
    assert row is not None
    return int(row[0])


def _record_finish(conn: psycopg.Connection[Any], run_id: int, report: ReconcileReport) -> None:
    conn.execute("UPDATE s3vl.reconcile_runs SET finished_at = %s, report = %s WHERE id = %s",
                 (report.finished_at, Jsonb(report.to_dict()), run_id))


def _scan_and_classify(
    conn: psycopg.Connection[Any],
    target: classify.SyncTarget,
    client: Any,
    options: ReconcileOptions,
    report: ReconcileReport,
    progress: ProgressFactory | None,
) -> None:
    expected = conn.execute("SELECT sum(chunk_count)::bigint FROM s3vl.sync_state WHERE sync_name = %s",
                            (target.name,)).fetchone()
    advance = progress(target.name, int(expected[0]) if expected and expected[0] else None) if progress else None
    table = create_scan_table(conn)
    lister = boto3_lister(client, target.index_arn, options.page_size)
    stats = scan_into(conn, lister, table, options.segments, advance)
    report.index_vectors, report.pages, report.scan_seconds = stats.vectors, stats.pages, stats.seconds

    t0 = time.monotonic()
    try:
        expr = classify.load_expressions(conn, target.name)
    except LookupError as exc:
        raise ReconcileError(f"sync {target.name!r}: no key/hash expression") from exc
    classify.build(conn, target, expr, table, report.started_at)
    counts = classify.counts(conn, target.name, options.sample_size)
    report.categories = counts.categories
    report.source_rows, report.state_rows = counts.source_rows, counts.state_rows
    report.classify_seconds = time.monotonic() - t0
    log.info("reconcile.classified", sync=target.name, seconds=round(report.classify_seconds, 2),
             **{name: r.count for name, r in report.categories.items()})


def _repair(
    conn: psycopg.Connection[Any],
    target: classify.SyncTarget,
    client: Any,
    options: ReconcileOptions,
    report: ReconcileReport,
) -> None:
    # Refusal stops every repair, not only the deletes: a database that would delete much of the
    # index (a wrong URL, an old backup) must not enqueue or rewrite state against it either.
    orphans = report.category(Category.ORPHANED).count
    decision = check_delete_share(orphans, report.index_vectors, options.max_delete_share, options.force)
    if not decision.allowed:
        report.refused = decision.reason
        log.warning("reconcile.refused", sync=target.name, orphans=orphans, vectors=report.index_vectors,
                    share=round(decision.share, 4), limit=decision.limit)
        return
    t0 = time.monotonic()
    params = {"sync": target.name, "since": report.started_at}
    # 1. state rows describe the index (so the worker's diff re-embeds exactly what is needed)
    with conn.transaction():
        fixed = conn.execute(classify.FIX_STATE_DELETE, params).rowcount
        fixed += conn.execute(classify.FIX_STATE_UPSERT, params).rowcount
    report.category(Category.STATE_DRIFT).repaired = fixed
    # 2. orphans go, then the state rows of their deleted source rows
    report.category(Category.ORPHANED).repaired = _delete_orphans(conn, target, client, report.started_at)
    # 3. missing and stale keys are queued for the worker (stale ones at most max_reembed per run)
    #    (keys already pending in the outbox count as repaired: the worker has them)
    missing, stale = _enqueue(conn, target, options.max_reembed)
    for cat, enqueued in ((Category.MISSING, missing), (Category.STALE, stale)):
        result = report.category(cat)
        result.repaired = min(result.count, enqueued + result.queued)
    report.deferred_stale = report.category(Category.STALE).remaining
    report.repair_seconds = time.monotonic() - t0
    log.info("reconcile.repaired", sync=target.name, state_fixed=fixed,
             deleted=report.category(Category.ORPHANED).repaired, enqueued_missing=missing,
             enqueued_stale=stale, deferred_stale=report.deferred_stale)


def _delete_orphans(
    conn: psycopg.Connection[Any], target: classify.SyncTarget, client: Any, since: datetime
) -> int:
    params = {"sync": target.name, "since": since}
    conn.execute("DROP TABLE IF EXISTS pg_temp.s3vl_rc_work")
    conn.execute(classify.ORPHAN_WORK, params)
    row = conn.execute("SELECT count(*) FROM s3vl_rc_work").fetchone()
    total = int(row[0]) if row else 0
    deleted = 0
    store = VectorStore(client, target.index_arn)  # retries, write rate limits, <= 500 keys a call

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
                keys = [str(r[0]) for r in conn.execute(classify.ORPHAN_BATCH, (start, start + DELETE_BATCH))]
                in_flight.append(pool.submit(delete, keys))
                if len(in_flight) >= DELETE_PARALLELISM:
                    deleted += in_flight.pop(0).result()
            for fut in in_flight:
                deleted += fut.result()
    finally:
        conn.execute(classify.ORPHAN_STATE_CLEANUP, {**params, "done": deleted})
    return deleted


def _enqueue(conn: psycopg.Connection[Any], target: classify.SyncTarget, max_reembed: int | None) -> tuple[int, int]:
    conn.execute("DROP TABLE IF EXISTS pg_temp.s3vl_rc_enqueue")
    conn.execute(classify.ENQUEUE_WORK, {"sync": target.name, "max_stale": max_reembed})
    row = conn.execute("SELECT count(*), count(*) FILTER (WHERE stale) FROM s3vl_rc_enqueue").fetchone()
    assert row is not None
    total, stale = int(row[0]), int(row[1])
    for start in range(0, total, ENQUEUE_BATCH):
        end = start + ENQUEUE_BATCH
        conn.execute(classify.ENQUEUE_BATCH, (target.name, start, end, start, end))
    return total - stale, stale
