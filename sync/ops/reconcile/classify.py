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


def start(db: Database, target: SyncTarget, scoped: bool) -> None:
    """Fresh classification inputs: an empty scope, and (unless ``scoped``) every source row read.

    A scoped (rolling) run then fills ``s3vl_rc_scope`` with the keys it judges and
    ``s3vl_rc_src`` with their source rows itself; an unscoped run judges every key.
    """
    for step in ("scope_drop", "scope_create", "classify_drop") + (() if scoped else ("classify_source",)):
        db.execute(step, {"sync": target.name})


def build(db: Database, target: SyncTarget, since: datetime, scoped: bool = False) -> None:
    """Create the classification tables for one sync from the scan and source tables.

    Before it, :func:`start` (and, with ``scoped``, the rolling run) prepared the inputs.
    ``since`` is when the listing began: keys the worker wrote later are not judged.
    """
    params = {"sync": target.name, "ev": target.embedding_version, "since": since,
              "chunked": target.chunked, "scoped": scoped}
    for step in ("classify_source_analyze", "classify_state", "classify_state_index", "classify_state_analyze",
                 "classify_vectors", "classify_vectors_analyze", "classify_index", "classify_index_analyze",
                 "classify_keys", "classify_keys_analyze"):
        db.execute(step, params)


@dataclass
class Counts:
    categories: dict[str, CategoryResult]
    source_rows: int
    state_rows: int
    judged_vectors: int


def counts(db: Database, sync_name: str, sample_size: int) -> Counts:
    """Exact counts per category and the first ``sample_size`` keys (sorted) of each."""
    row = db.one("classify_counts", {"sync": sync_name})
    assert row is not None
    cats: dict[str, CategoryResult] = {}
    for cat in Category:
        n = int(row[cat.value])
        sample = [str(r["key"]) for r in db.all(f"sample_{cat.value}", {"limit": sample_size})] if n else []
        cats[cat.value] = CategoryResult(count=n, sample=sample)
    queueable = (Category.MISSING, Category.STALE, Category.METADATA_DRIFT)
    if any(row[c.value] for c in queueable):
        queued = db.one("classify_queued", {"sync": sync_name})
        assert queued is not None
        for c in queueable:
            cats[c.value].queued = int(queued[c.value])
    return Counts(categories=cats, source_rows=int(row["source_rows"]), state_rows=int(row["state_rows"]),
                  judged_vectors=int(row["judged_vectors"]))
