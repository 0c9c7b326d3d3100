"""What a reconcile run found and did: the report, the safety check and the exit status.

Pure data and pure functions (no I/O besides rendering to a given console), so every rule here
has a unit test. The report is built from exact counts computed in PostgreSQL
(:mod:`sync.ops.reconcile.classify`); only a small sample of keys per category is ever in memory.

Categories (per sync):

* ``orphaned``  - vectors whose source row (or chunk) no longer exists, or whose key is not one
  s3vl writes for that row; repaired by DeleteVectors. Counted in *vectors*.
* ``missing``   - source rows with no vector, or with a chunk missing; repaired by enqueueing.
* ``stale``     - source rows whose vectors carry another embedding version (``s3vl_ev``) or
  another content hash (``s3vl_hash``) than the row's current one; repaired by enqueueing,
  at most ``--max-reembed`` per run (a rolling re-embed).
* ``metadata_drift`` - source rows whose vectors carry current text, hash and version but other
  metadata than the row's declared columns (written by another tool, or by an old s3vl); repaired
  by a metadata-only re-put (the worker reads the vectors back: no embedding call).
* ``state_drift`` - ``s3vl.sync_state`` rows that disagree with the index (after orphans are
  removed): a state row without vectors, vectors without a state row, or a different hash,
  version or chunk count; repaired by making the state row describe what the index holds, so
  the worker's diff re-embeds exactly what is needed.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.table import Table


class Category(enum.StrEnum):
    """A kind of disagreement between the source, the state table and the index."""

    ORPHANED = "orphaned"
    MISSING = "missing"
    STALE = "stale"
    METADATA_DRIFT = "metadata_drift"
    STATE_DRIFT = "state_drift"


#: What ``--apply`` does about each category (shown in the human table).
REPAIR = {
    Category.ORPHANED: "DeleteVectors",
    Category.MISSING: "enqueue",
    Category.STALE: "enqueue (re-embed)",
    Category.METADATA_DRIFT: "enqueue (re-put metadata)",
    Category.STATE_DRIFT: "correct state",
}


class ExitCode(enum.IntEnum):
    """Process exit status of ``s3vl reconcile`` (documented in ``--help``)."""

    CLEAN = 0  # no drift, or all drift repaired
    ERROR = 1  # the run failed (connection, AWS error, ...)
    DRIFT_NOT_REPAIRED = 3  # drift found and left (dry run, --max-reembed deferral)
    REFUSED = 4  # --apply refused by the safety limit (use --force)


@dataclass
class CategoryResult:
    """Exact count of one category, a sample of its keys, and what ``--apply`` repaired."""

    count: int = 0
    sample: list[str] = field(default_factory=list)
    repaired: int = 0
    #: keys of this category already waiting in the outbox (a worker will fix them)
    queued: int = 0

    @property
    def remaining(self) -> int:
        return max(self.count - self.repaired, 0)


@dataclass(frozen=True)
class SafetyDecision:
    """Whether deleting ``orphans`` of ``index_vectors`` vectors is allowed."""

    allowed: bool
    share: float
    limit: float
    reason: str | None = None


def check_delete_share(orphans: int, index_vectors: int, max_share: float, force: bool) -> SafetyDecision:
    """Refuse deleting more than ``max_share`` of the index unless ``force``.

    Protects against the one catastrophic mistake of a repair job: pointing it at the wrong (or an
    empty, or a restored-from-old-backup) database makes every vector an orphan. The share is
    orphans / vectors listed in the index; an empty index has nothing to lose.
    """
    if not 0.0 <= max_share <= 1.0:
        raise ValueError("max_share must be between 0 and 1")
    share = orphans / index_vectors if index_vectors > 0 else 0.0
    if orphans == 0 or share <= max_share or force:
        return SafetyDecision(allowed=True, share=share, limit=max_share)
    return SafetyDecision(
        allowed=False,
        share=share,
        limit=max_share,
        reason=(
            f"refusing to delete {orphans} of {index_vectors} vectors ({share:.1%} > limit {max_share:.0%}); "
            "nothing was changed; check S3VL_DATABASE_URL and the sync's index, then re-run with --force "
            "if this is intended"
        ),
    )


@dataclass
class RollingProgress:
    """Where a rolling run left its cycle."""

    cycle: int  # the cycle this run belongs to
    listed_segments: list[int]  # the segments this run listed (of 16)
    cycle_segments_done: int  # segments of the cycle listed so far, this run's included
    cycle_segments: int = 16
    judged: str = "share"  # "share": its keys; "all": completed the first snapshot; "none": snapshot incomplete
    cycle_complete: bool = False  # this run listed the cycle's last segment

    @property
    def done_share(self) -> float:
        return self.cycle_segments_done / self.cycle_segments


@dataclass
class ReconcileReport:
    """One sync's reconcile result; serialised as-is into ``s3vl.reconcile_runs.report``."""

    sync: str
    index: str
    index_arn: str
    embedding_version: str
    applied: bool
    started_at: datetime
    finished_at: datetime | None = None
    index_vectors: int = 0  # vectors listed by this run
    judged_vectors: int = 0  # vectors the classification judged (a rolling run: from the snapshot)
    source_rows: int = 0
    state_rows: int = 0
    segments: int = 0
    pages: int = 0
    scan_seconds: float = 0.0
    classify_seconds: float = 0.0
    repair_seconds: float = 0.0
    categories: dict[str, CategoryResult] = field(
        default_factory=lambda: {c.value: CategoryResult() for c in Category}
    )
    deferred_stale: int = 0
    refused: str | None = None
    error: str | None = None
    #: a rolling run (--segments-per-run): see :class:`RollingProgress`
    rolling: RollingProgress | None = None

    def category(self, cat: Category) -> CategoryResult:
        return self.categories[cat.value]

    @property
    def drift(self) -> int:
        """Total count over all categories."""
        return sum(r.count for r in self.categories.values())

    @property
    def remaining(self) -> int:
        """Drift that this run found and did not repair (all of it on a dry run)."""
        if not self.applied:
            return self.drift
        return sum(r.remaining for r in self.categories.values())

    def exit_code(self) -> ExitCode:
        if self.error is not None:
            return ExitCode.ERROR
        if self.refused is not None:
            return ExitCode.REFUSED
        return ExitCode.DRIFT_NOT_REPAIRED if self.remaining else ExitCode.CLEAN

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["started_at"] = self.started_at.isoformat()
        data["finished_at"] = self.finished_at.isoformat() if self.finished_at else None
        for name, result in data["categories"].items():
            result["remaining"] = self.categories[name].remaining if self.applied else result["count"]
        if self.rolling is not None:
            data["rolling"]["done_share"] = self.rolling.done_share
        data["drift"] = self.drift
        data["remaining"] = self.remaining
        data["exit_code"] = int(self.exit_code())
        return data


def report_from_dict(data: Mapping[str, Any]) -> ReconcileReport:
    """Inverse of :meth:`ReconcileReport.to_dict` (for ``s3vl status`` and tests)."""
    fields = {k: v for k, v in data.items() if k in ReconcileReport.__dataclass_fields__}
    fields["started_at"] = datetime.fromisoformat(data["started_at"])
    if data.get("rolling"):
        fields["rolling"] = RollingProgress(**{k: v for k, v in data["rolling"].items()
                                               if k in RollingProgress.__dataclass_fields__})
    fields["finished_at"] = datetime.fromisoformat(data["finished_at"]) if data.get("finished_at") else None
    fields["categories"] = {
        name: CategoryResult(count=r["count"], sample=list(r["sample"]), repaired=r.get("repaired", 0),
                             queued=r.get("queued", 0))
        for name, r in data["categories"].items()
    }
    for cat in Category:  # reports of older versions lack newer categories
        fields["categories"].setdefault(cat.value, CategoryResult())
    return ReconcileReport(**fields)


def to_json(reports: list[ReconcileReport]) -> str:
    """The ``--json`` output: one object with every sync's report and the overall exit status."""
    code = max((r.exit_code() for r in reports), default=ExitCode.CLEAN)
    return json.dumps({"exit_code": int(code), "syncs": [r.to_dict() for r in reports]}, indent=2)


def overall_exit_code(reports: list[ReconcileReport]) -> ExitCode:
    """The worst status over all syncs (ERROR counts as the worst)."""
    codes = [r.exit_code() for r in reports]
    if ExitCode.ERROR in codes:
        return ExitCode.ERROR
    return max(codes, default=ExitCode.CLEAN)


def render(reports: list[ReconcileReport], console: Console, sample_size: int = 5) -> None:
    """The human report: one table per sync, then a line saying what to do next."""
    for r in reports:
        mode = "apply" if r.applied else "dry run"
        if r.error:  # nothing was counted: a table of zeros would read as "clean"
            console.print(f"reconcile {r.sync} -> {r.index} ({mode}) [red]failed[/red]: {r.error}")
            continue
        title = f"reconcile {r.sync} -> {r.index} ({mode})"
        table = Table(title=title, title_justify="left")
        table.add_column("category")
        table.add_column("count", justify="right")
        table.add_column("repaired" if r.applied else "repair", justify="right")
        table.add_column("sample keys", overflow="fold")
        for cat in Category:
            res = r.category(cat)
            repaired = str(res.repaired) if r.applied else (REPAIR[cat] if res.count else "-")
            sample = ", ".join(res.sample[:sample_size]) + (" ..." if res.count > sample_size else "")
            count = f"{res.count} ({res.queued} queued)" if res.queued else str(res.count)
            table.add_row(cat.value, count, repaired, sample)
        console.print(table)
        if r.rolling is not None:
            p = r.rolling
            judged = {"share": "judged their keys", "all": "completed the first snapshot: judged every key",
                      "none": "snapshot not complete yet: nothing judged"}[p.judged]
            console.print(f"rolling cycle {p.cycle}: listed segments {', '.join(map(str, p.listed_segments))} "
                          f"({judged}); {p.cycle_segments_done}/{p.cycle_segments} of the cycle done"
                          + ("; cycle complete" if p.cycle_complete else ""))
        console.print(
            f"index vectors {r.index_vectors}  source rows {r.source_rows}  state rows {r.state_rows}  "
            f"segments {r.segments}  pages {r.pages}  scan {r.scan_seconds:.1f}s  "
            f"classify {r.classify_seconds:.1f}s" + (f"  repair {r.repair_seconds:.1f}s" if r.applied else "")
        )
        if r.refused:
            console.print(f"[red]refused:[/red] {r.refused}")
        elif r.deferred_stale:
            console.print(f"{r.deferred_stale} stale keys deferred to the next run (--max-reembed)")
        if not r.applied and r.drift:
            console.print("dry run: nothing changed; re-run with --apply to repair")


class TerminalProgress:
    """A rich progress bar per sync on stderr (only when stderr is a terminal).

    Used as ``progress=`` of :func:`sync.ops.reconcile.run.reconcile`: called with the sync and the
    expected vector count (from the state table; None when unknown), returns the page callback.
    """

    def __init__(self, console: Console) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self._progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), console=console, transient=False,
        )

    def __enter__(self) -> TerminalProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def __call__(self, sync: str, expected: int | None) -> Callable[[int], None]:
        import time

        task = self._progress.add_task(f"scan {sync}", total=expected, rate="")
        started = time.monotonic()
        done = 0

        def advance(n: int) -> None:
            nonlocal done
            done += n
            elapsed = max(time.monotonic() - started, 1e-6)
            total = self._progress.tasks[task].total
            if total is not None and done > total:
                self._progress.update(task, total=done)
            self._progress.update(task, advance=n, rate=f"{done / elapsed:,.0f} vectors/s")

        return advance
