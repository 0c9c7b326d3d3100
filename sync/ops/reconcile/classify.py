"""Classify drift in SQL: the scanned index joined with the source and ``s3vl.sync_state``.

The statements are the named queries of ``sql/queries/reconcile.sql`` (which documents the
temporary tables); this module runs them in order and reads back exact counts and a few sample
keys. The source is read through ``s3vl.reconcile_source``: the sync's own function, running with
the privileges of the role that declared the sync, never with reconcile's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sync.db.connection import Database
from sync.ops.reconcile.report import Category, CategoryResult


@dataclass(frozen=True)
class SyncTarget:
    """What reconcile needs to know about one sync and its index."""

    name: str
    source: str  # the source table's name, for messages
    index_name: str
    index_arn: str
    region: str
    embedding_version: str
    chunked: bool
    problem: str | None = None  # why this sync cannot be reconciled (reported as its error)


def build(db: Database, target: SyncTarget, scan_started_at: datetime) -> None:
    """Create the classification tables for one sync from the scan table."""
    params = {"sync": target.name, "ev": target.embedding_version, "since": scan_started_at,
              "chunked": target.chunked}
    for step in ("classify_drop", "classify_source", "classify_source_analyze", "classify_vectors",
                 "classify_vectors_analyze", "classify_index", "classify_index_analyze", "classify_keys",
                 "classify_keys_analyze"):
        db.execute(step, params)


@dataclass
class Counts:
    categories: dict[str, CategoryResult]
    source_rows: int
    state_rows: int


def counts(db: Database, sync_name: str, sample_size: int) -> Counts:
    """Exact counts per category and the first ``sample_size`` keys (sorted) of each."""
    row = db.one("classify_counts", {"sync": sync_name})
    assert row is not None
    cats: dict[str, CategoryResult] = {}
    for cat in Category:
        n = int(row[cat.value])
        sample = [str(r["key"]) for r in db.all(f"sample_{cat.value}", {"limit": sample_size})] if n else []
        cats[cat.value] = CategoryResult(count=n, sample=sample)
    if row["missing"] or row["stale"]:
        queued = db.one("classify_queued", {"sync": sync_name})
        assert queued is not None
        cats[Category.MISSING.value].queued = int(queued["missing"])
        cats[Category.STALE.value].queued = int(queued["stale"])
    return Counts(categories=cats, source_rows=int(row["source_rows"]), state_rows=int(row["state_rows"]))
