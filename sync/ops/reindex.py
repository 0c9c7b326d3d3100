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

import structlog

from sync.db.connection import Database
from sync.errors import DatabaseError, ReindexError, UnknownSyncError
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


def _target(db: Database, sync: str) -> SyncTarget:
    (target,) = reconcile_mod.load_targets(db, [sync])
    if target.problem:
        raise ReindexError(target.problem)
    return target


def check_model(db: Database, model: str, dimensions: int) -> None:
    """Refuse an unknown model or dimension before anything is created."""
    dims = db.value("reindex_model", {"model": model})
    if dims is None:
        known = ", ".join(sorted(str(r["model"]) for r in db.all("embedding_models")))
        raise ReindexError(f"unknown embedding model {model!r} (known: {known})")
    if dimensions not in dims:
        supported = ", ".join(map(str, dims))
        raise ReindexError(f"{model} does not produce {dimensions} dimensions (it supports {supported})")


def prepare(db: Database, client: Any, sync: str, model: str, dimensions: int) -> str:
    """Create the new index and the shadow sync; returns the new index ARN."""
    row = db.one("reindex_sync", {"sync": sync})
    if row is None:
        raise ReindexError(f"no such sync: {sync}")
    if (row["embedding_model"], row["dimensions"]) == (model, dimensions):
        raise ReindexError(f"sync {sync} already uses {model} with {dimensions} dimensions")
    check_model(db, model, dimensions)
    old = client.get_index(indexArn=row["index_arn"])["index"]
    kwargs: dict[str, Any] = {
        "vectorBucketName": row["bucket_name"], "indexName": new_physical_name(str(row["physical_name"])),
        "dataType": "float32", "dimension": dimensions,
        "distanceMetric": row["distance_metric"] or old.get("distanceMetric", "cosine"),
    }
    if old.get("metadataConfiguration"):
        kwargs["metadataConfiguration"] = old["metadataConfiguration"]
    new_arn = str(client.create_index(**kwargs)["indexArn"])
    log.info("reindex.index_created", sync=sync, index_arn=new_arn, dimensions=dimensions)
    try:
        db.value("reindex_prepare", {"sync": sync, "index_arn": new_arn, "model": model, "dimensions": dimensions,
                                     "metric": kwargs["distanceMetric"]})
    except DatabaseError as exc:
        client.delete_index(indexArn=new_arn)  # nothing refers to it yet
        raise ReindexError(f"cannot start the reindex of {sync}: {exc}") from exc
    log.info("reindex.prepared", sync=sync, shadow=f"{sync}_rx", model=model, dimensions=dimensions)
    return new_arn


def pending(db: Database, shadow: str) -> tuple[int, int]:
    """(pending, failed) keys of the shadow's backfill."""
    row = db.one("reindex_pending", {"sync": shadow})
    return (int(row["pending"]), int(row["failed"])) if row else (0, 0)


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
    with Database(conninfo, application_name="s3vl reindex") as db:
        row = db.one("reindex_sync", {"sync": sync})
        if row is None:
            raise UnknownSyncError(f"no such sync: {sync} (SELECT name FROM s3vl.syncs lists them)")
        result = ReindexResult(sync=sync, registered_name=str(row["index_name"]))
        client = client_factory(str(row["region"]))
        shadow_row = db.one("reindex_shadow", {"sync": sync})
        if abort:
            if shadow_row is None:
                raise ReindexError(f"no reindex of {sync} is in progress")
            arn = db.value("reindex_abort", {"sync": sync})
            result.new_index_arn, result.state = arn, "aborted"
            if drop_old and arn:  # --abort --drop-old: the abandoned new index goes
                client.delete_index(indexArn=arn)
            return result
        if shadow_row is None:
            if model is None or dimensions is None:
                raise ReindexError("--model and --dimensions are required to start a reindex")
            result.new_index_arn = prepare(db, client, sync, model, dimensions)
            shadow = f"{sync}_rx"
        else:
            shadow, result.new_index_arn = str(shadow_row["name"]), str(shadow_row["index_arn"])
            if model is not None and (model, dimensions) != (shadow_row["embedding_model"], shadow_row["dimensions"]):
                raise ReindexError(
                    f"a reindex of {sync} to {shadow_row['embedding_model']} ({shadow_row['dimensions']} dimensions) "
                    "is in progress; finish it, or abandon it with --abort")
            log.info("reindex.resumed", sync=sync, shadow=shadow)

        for _round in range(verify_rounds):
            if not _wait(db, shadow, wait_seconds, poll_seconds, result, on_wait):
                result.state = "backfilling"
                return result
            report = reconcile_mod.reconcile_one(
                db, _target(db, shadow), client, reconcile_mod.ReconcileOptions(apply=True, segments=16))
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
            old_arn = db.value("reindex_switch", {"sync": sync})
        except DatabaseError as exc:
            raise ReindexError(f"cannot switch {sync} to the new index: {exc}") from exc
        result.old_index_arn, result.state = old_arn, "switched"
        log.info("reindex.switched", sync=sync, registered=result.registered_name, old_index_arn=old_arn,
                 new_index_arn=result.new_index_arn)
        if drop_old and old_arn:
            client.delete_index(indexArn=old_arn)
            result.dropped_old = True
        return result


def _wait(
    db: Database, shadow: str, wait_seconds: float, poll_seconds: float,
    result: ReindexResult, on_wait: Callable[[int], None] | None,
) -> bool:
    """Wait until the shadow's queue is empty; False when ``wait_seconds`` ran out first."""
    deadline = time.monotonic() + wait_seconds
    while True:
        result.pending, failed = pending(db, shadow)
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
