"""A rolling reconcile run (``s3vl reconcile --segments-per-run K``): K of 16 segments a run.

A full run lists the whole index; at a billion vectors that is about a million ListVectors pages
and a billion-row join every night. A rolling run lists K of ListVectors' 16 segments, continuing
where the previous run stopped, so 16/K runs make a *cycle* over the whole index and each run
costs about K/16 of a full one (list calls, rows read, temporary space). What it needs between
runs lives in s3vl's tables (sql/incremental/204-reconcile-rolling.sql):

* ``s3vl.reconcile_snapshot``: every segment as it was last listed. A run replaces its segments'
  part and judges keys by the snapshot: a key's vectors may sit in several segments (chunks), and
  a key with no vector at all is "missing" only against the whole key set.
* ``s3vl.reconcile_cycles``: the cycle, the next segment, when each segment was last listed, what
  the cycle found so far and the summary of the last complete cycle.

Which keys a run judges (its *scope*): those with a vector in its segments (orphans, stale and
metadata drift there are found the run their segment is listed), those that lost a vector there
since the last listing (deleted behind s3vl's back: missing), and its share by hash (bucket n for
segment n) of the keys with no vector anywhere (source rows never synced, state rows without
vectors). So a cycle judges every key, and drift present when a cycle starts is found by that
cycle. Each judged key carries the time of the oldest listing it is judged by; keys the worker
wrote after it are left out (as a full run leaves out keys written after its scan began), so the
worker's writes during a cycle cannot be misreported. Until the first snapshot is complete nothing
is judged; the run that completes it judges every key once (a full classification, from the
snapshot). A run that fails leaves the cycle where it was: the next run lists the same segments.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import structlog

from sync.db.connection import Database
from sync.ops.reconcile import classify
from sync.ops.reconcile.report import ReconcileReport, RollingProgress
from sync.ops.reconcile.scan import MAX_SEGMENTS, PageLister, scan_into

log = structlog.get_logger(__name__)

#: Snapshot rows stored per s3vl.reconcile_snapshot_put call, and keys per source lookup.
STORE_ROWS = 20_000
SOURCE_KEYS = 10_000


@dataclass(frozen=True)
class Cycle:
    """A sync's row of ``s3vl.reconcile_cycles``."""

    cycle: int
    next_segment: int
    listed_at: list[datetime | None]


def next_segments(next_segment: int, per_run: int, segments: int = MAX_SEGMENTS) -> list[int]:
    """The segments a run lists: ``per_run`` from ``next_segment``, never past the cycle's end."""
    if not 1 <= per_run <= segments:
        raise ValueError(f"segments per run must be 1..{segments}")
    start = next_segment if 0 <= next_segment < segments else 0
    return list(range(start, min(start + per_run, segments)))


def _cycle(db: Database, sync: str) -> Cycle:
    row = db.one("rolling_cycle", {"sync": sync})
    assert row is not None
    return Cycle(cycle=int(row["cycle"]), next_segment=int(row["next_segment"]), listed_at=list(row["listed_at"]))


def scan_and_scope(
    db: Database,
    target: classify.SyncTarget,
    lister: PageLister,
    per_run: int,
    report: ReconcileReport,
    advance: Callable[[int], None] | None,
) -> tuple[Cycle, list[int], datetime | None, bool]:
    """List this run's segments (into the fresh scan table), refresh the snapshot, and prepare the
    classification's inputs.

    Returns the cycle, the listed segments, ``since`` for the classification (None: the snapshot
    is not complete, nothing to judge) and whether the classification is scoped.
    """
    cycle = _cycle(db, target.name)
    segs = next_segments(cycle.next_segment, per_run)
    params: dict[str, Any] = {"sync": target.name, "segs": segs, "chunked": target.chunked}
    stats = scan_into(db, lister, MAX_SEGMENTS, advance, only=segs)
    report.index_vectors, report.pages, report.scan_seconds = stats.vectors, stats.pages, stats.seconds

    # the segments' new listing replaces their old one (the vanished keys are noted first)
    t0 = time.monotonic()
    db.execute("rolling_drop")
    for step in ("rolling_listed", "rolling_listed_key_index", "rolling_vanished", "rolling_tombstones",
                 "rolling_listed_index"):
        db.execute(step, params)
    rows = int(db.value("rolling_listed_count") or 0)
    with db.transaction():
        db.execute("rolling_clear", params)
        for start in range(0, rows, STORE_ROWS):
            db.execute("rolling_store", {**params, "start": start, "end": start + STORE_ROWS})

    listed_at = list(cycle.listed_at)
    scoped = all(t is not None for t in listed_at)  # the snapshot was complete before this run
    for s in segs:
        listed_at[s] = report.started_at
    report.rolling = RollingProgress(cycle=cycle.cycle, listed_segments=segs, cycle_segments_done=segs[-1] + 1,
                                     judged="share" if scoped else "all")
    if not all(t is not None for t in listed_at):
        report.rolling.judged = "none"
        report.classify_seconds = time.monotonic() - t0
        return cycle, segs, None, False
    oldest = min(t for t in listed_at if t is not None)
    params.update(listed_at=listed_at, oldest=oldest, scoped=scoped)

    classify.start(db, target, scoped)
    if scoped:
        for step in ("rolling_scope_listed", "rolling_scope_state", "rolling_scope_source", "rolling_scope_analyze",
                     "rolling_scope_numbered", "rolling_scope_numbered_index", "rolling_source_create"):
            db.execute(step, params)
        judged = int(db.value("rolling_scope_count") or 0)
        for start in range(0, judged, SOURCE_KEYS):
            db.execute("rolling_source_batch", {**params, "start": start, "end": start + SOURCE_KEYS})
    db.execute("rolling_scan_truncate")
    db.execute("rolling_judged", params)
    db.execute("scan_analyze")
    report.classify_seconds = time.monotonic() - t0
    return cycle, segs, oldest, scoped


def advance_cycle(db: Database, target: classify.SyncTarget, cycle: Cycle, segs: list[int],
                  report: ReconcileReport) -> None:
    """Record the run in the cycle (after its repairs); completes the cycle after segment 15."""
    if report.rolling is not None and report.rolling.judged != "none":
        db.execute("rolling_prune", {"sync": target.name})
    found = {name: r.count for name, r in report.categories.items()}
    row = db.one("rolling_advance", {"sync": target.name, "cycle": cycle.cycle, "segs": segs,
                                     "listed_at": report.started_at, "found": orjson.dumps(found).decode(),
                                     "finished_at": report.finished_at or report.started_at})
    assert row is not None
    assert report.rolling is not None
    report.rolling.cycle_complete = int(row["cycle"]) != cycle.cycle
    log.info("reconcile.rolling", sync=target.name, cycle=cycle.cycle, segments=segs,
             done=report.rolling.cycle_segments_done, complete=report.rolling.cycle_complete)
