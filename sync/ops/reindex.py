"""``s3vl reindex NAME --model M --dimensions D``: move a sync to a new index, switching only
when the new index is complete, so queries never see a half-built index.

    create the index (same bucket and metric, new dimension)          CreateIndex
    -> s3vl.reindex_prepare: shadow registration + shadow sync "<NAME>_rx" (backfill queued,
       live changes captured by its triggers); the old index keeps serving queries
    -> wait until the worker has drained the shadow's queue            s3vl.sync_status
    -> verify with reconcile (dry run): nothing missing, stale or orphaned; else enqueue and wait again
    -> s3vl.reindex_switch: one transaction moves the registered name and the sync
    -> optionally delete the old index (--drop-old)

Every step is resumable: re-running the same command after an interruption (or after
``--no-wait``) finds the shadow sync and continues where it stopped. The worker (``s3vl
worker``) does the embedding; this command only orchestrates.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
import structlog

from sync.errors import ReindexError
from sync.ops.reconcile import run as reconcile_mod
from sync.ops.reconcile.classify import SyncTarget
from sync.ops.reconcile.report import Category, ReconcileReport

log = structlog.get_logger(__name__)

_SUFFIX = re.compile(r"-r[0-9]{10}$")


@dataclass
class ReindexResult:
    sync: str
    registered_name: str
    old_index_arn: str | None = None
    new_index_arn: str | None = None
    state: str = "prepared"  # prepared | backfilling | switched | aborted
    pending: int = 0
    verify: ReconcileReport | None = None
    dropped_old: bool = False


def new_physical_name(old: str, now: float | None = None) -> str:
    """``<old>-r<epoch seconds>`` (a previous suffix replaced), within S3 Vectors' 3-63 characters."""
    base = _SUFFIX.sub("", old)[:51].rstrip("-.")
    return f"{base}-r{int(now if now is not None else time.time()):010d}"


def _one(conn: psycopg.Connection[Any], query: str, params: Any = None) -> tuple[Any, ...] | None:
    return conn.execute(query, params).fetchone()


def _target(conn: psycopg.Connection[Any], sync: str) -> SyncTarget:
    (target,) = reconcile_mod.load_targets(conn, [sync])
    if target.problem:
        raise ReindexError(target.problem)
    return target


def prepare(conn: psycopg.Connection[Any], client: Any, sync: str, model: str, dimensions: int) -> str:
    """Create the new index and the shadow sync; returns the new index ARN."""
    row = _one(conn, "SELECT i.index_arn, i.bucket_name, i.index_name, i.distance_metric, s.embedding_model, "
               "s.dimensions FROM s3vl.syncs s JOIN s3vl.indexes i ON i.name = s.index_name WHERE s.name = %s",
               (sync,))
    if row is None:
        raise ReindexError(f"no such sync: {sync}")
    old_arn, bucket, physical, metric, cur_model, cur_dims = row
    if (cur_model, cur_dims) == (model, dimensions):
        raise ReindexError(f"sync {sync} already uses {model} with {dimensions} dimensions")
    old = client.get_index(indexArn=old_arn)["index"]
    kwargs: dict[str, Any] = {
        "vectorBucketName": bucket, "indexName": new_physical_name(str(physical)), "dataType": "float32",
        "dimension": dimensions, "distanceMetric": metric or old.get("distanceMetric", "cosine"),
    }
    if old.get("metadataConfiguration"):
        kwargs["metadataConfiguration"] = old["metadataConfiguration"]
    new_arn = str(client.create_index(**kwargs)["indexArn"])
    log.info("reindex.index_created", sync=sync, index_arn=new_arn, dimensions=dimensions)
    try:
        conn.execute("SELECT s3vl.reindex_prepare(%s, %s, %s, %s, %s)",
                     (sync, new_arn, model, dimensions, kwargs["distanceMetric"]))
    except psycopg.Error as exc:
        client.delete_index(indexArn=new_arn)  # nothing refers to it yet
        raise ReindexError(f"cannot start the reindex of {sync}: {str(exc).strip()}") from exc
    log.info("reindex.prepared", sync=sync, shadow=f"{sync}_rx", model=model, dimensions=dimensions)
    return new_arn


def pending(conn: psycopg.Connection[Any], shadow: str) -> tuple[int, int]:
    """(pending, failed) keys of the shadow's backfill."""
    row = _one(conn, "SELECT pending, failed FROM s3vl.sync_status WHERE sync_name = %s", (shadow,))
    return (int(row[0]), int(row[1])) if row else (0, 0)


def run(
    conninfo: str,
    sync: str,
    model: str | None,
    dimensions: int | None,
    *,
    wait_seconds: float = 3600.0,
    poll_seconds: float = 2.0,
    verify_rounds: int = 3,
    drop_old: bool = False,
    abort: bool = False,
    client_factory: reconcile_mod.ClientFactory = reconcile_mod.default_client,
    on_wait: Callable[[int], None] | None = None,
) -> ReindexResult:
    """Prepare (or resume) a reindex, wait for its backfill, verify, and switch."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        row = _one(conn, "SELECT s.index_name, i.region FROM s3vl.syncs s JOIN s3vl.indexes i "
                   "ON i.name = s.index_name WHERE s.name = %s", (sync,))
        if row is None:
            raise ReindexError(f"no such sync: {sync}")
        result = ReindexResult(sync=sync, registered_name=str(row[0]))
        client = client_factory(str(row[1]))
        shadow_row = _one(conn, "SELECT s.name, i.index_arn, s.embedding_model, s.dimensions FROM s3vl.syncs s "
                          "JOIN s3vl.indexes i ON i.name = s.index_name WHERE s.name = s3vl.reindex_shadow_name(%s)",
                          (sync,))
        if abort:
            if shadow_row is None:
                raise ReindexError(f"no reindex of {sync} is in progress")
            (arn,) = _one(conn, "SELECT s3vl.reindex_abort(%s)", (sync,)) or (None,)
            result.new_index_arn, result.state = arn, "aborted"
            if drop_old and arn:  # --abort --drop-old: the abandoned new index goes
                client.delete_index(indexArn=arn)
            return result
        if shadow_row is None:
            if model is None or dimensions is None:
                raise ReindexError("--model and --dimensions are required to start a reindex")
            result.new_index_arn = prepare(conn, client, sync, model, dimensions)
            shadow = f"{sync}_rx"
        else:
            shadow, result.new_index_arn = str(shadow_row[0]), str(shadow_row[1])
            if model is not None and (model, dimensions) != (shadow_row[2], shadow_row[3]):
                raise ReindexError(
                    f"a reindex of {sync} to {shadow_row[2]} ({shadow_row[3]} dimensions) is in progress; "
                    "finish it, or abandon it with --abort")
            log.info("reindex.resumed", sync=sync, shadow=shadow)

        for _round in range(verify_rounds):
            if not _wait(conn, shadow, wait_seconds, poll_seconds, result, on_wait):
                result.state = "backfilling"
                return result
            report = reconcile_mod.reconcile_one(
                conn, _target(conn, shadow), client, reconcile_mod.ReconcileOptions(apply=True, segments=16))
            result.verify = report
            if report.error:
                raise ReindexError(f"verifying the new index failed: {report.error}")
            gaps = sum(report.category(c).count for c in (Category.MISSING, Category.STALE, Category.ORPHANED))
            if gaps == 0:
                break
            log.warning("reindex.verify_gaps", sync=sync, **{c.value: report.category(c).count for c in Category})
        else:
            raise ReindexError(f"the new index of {sync} still differs from the source after {verify_rounds} "
                               "verification rounds; is the worker running?")

        try:
            (old_arn,) = _one(conn, "SELECT s3vl.reindex_switch(%s)", (sync,)) or (None,)
        except psycopg.Error as exc:
            raise ReindexError(f"cannot switch {sync} to the new index: {str(exc).strip()}") from exc
        result.old_index_arn, result.state = old_arn, "switched"
        log.info("reindex.switched", sync=sync, registered=result.registered_name, old_index_arn=old_arn,
                 new_index_arn=result.new_index_arn)
        if drop_old and old_arn:
            client.delete_index(indexArn=old_arn)
            result.dropped_old = True
        return result


def _wait(
    conn: psycopg.Connection[Any], shadow: str, wait_seconds: float, poll_seconds: float,
    result: ReindexResult, on_wait: Callable[[int], None] | None,
) -> bool:
    """Wait until the shadow's queue is empty; False when ``wait_seconds`` ran out first."""
    deadline = time.monotonic() + wait_seconds
    while True:
        result.pending, failed = pending(conn, shadow)
        if failed:
            raise ReindexError(f"{failed} keys of the backfill failed (see s3vl.sync_failures); "
                               "run s3vl retry-failed, then re-run s3vl reindex to resume")
        if on_wait is not None:
            on_wait(result.pending)
        if result.pending == 0:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll_seconds)
