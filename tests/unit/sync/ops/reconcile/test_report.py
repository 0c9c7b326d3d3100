"""Pure parts of reconcile: the safety limit, the report, exit codes, and the segment fan-out."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from rich.console import Console

from sync.datapath.contract import metadata_hash
from sync.ops.reconcile.report import (
    Category,
    ExitCode,
    ReconcileReport,
    check_delete_share,
    overall_exit_code,
    render,
    report_from_dict,
    to_json,
)
from sync.ops.reconcile.scan import iter_pages, to_row


def _report(applied: bool = False, **counts: int) -> ReconcileReport:
    r = ReconcileReport(sync="s", index="i", index_arn="arn", embedding_version="ev1", applied=applied,
                        started_at=datetime(2026, 1, 1, tzinfo=UTC))
    for name, n in counts.items():
        r.categories[name].count = n
        r.categories[name].sample = [f"k{i}" for i in range(min(n, 3))]
    return r


@pytest.mark.parametrize(
    ("orphans", "size", "share", "force", "allowed"),
    [
        (0, 0, 0.1, False, True),
        (0, 100, 0.0, False, True),
        (10, 100, 0.1, False, True),   # exactly at the limit is allowed
        (11, 100, 0.1, False, False),
        (11, 100, 0.1, True, True),
        (100, 100, 0.1, False, False),  # wrong database: everything is an orphan
        (1, 100, 0.0, False, False),
        (100, 100, 1.0, False, True),
    ],
)
def test_check_delete_share(orphans: int, size: int, share: float, force: bool, allowed: bool) -> None:
    decision = check_delete_share(orphans, size, share, force)
    assert decision.allowed is allowed
    assert (decision.reason is None) is allowed
    if not allowed:
        assert "--force" in (decision.reason or "")
        assert str(orphans) in (decision.reason or "")


def test_check_delete_share_rejects_bad_limit() -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        check_delete_share(1, 10, 1.5, False)


def test_exit_codes() -> None:
    assert _report().exit_code() is ExitCode.CLEAN
    assert _report(missing=2).exit_code() is ExitCode.DRIFT_NOT_REPAIRED  # dry run
    applied = _report(applied=True, missing=2, stale=3)
    applied.category(Category.MISSING).repaired = 2
    applied.category(Category.STALE).repaired = 1  # two deferred by --max-reembed
    assert applied.remaining == 2
    assert applied.exit_code() is ExitCode.DRIFT_NOT_REPAIRED
    applied.category(Category.STALE).repaired = 3
    assert applied.exit_code() is ExitCode.CLEAN
    refused = _report(applied=True, orphaned=50)
    refused.refused = "too many"
    assert refused.exit_code() is ExitCode.REFUSED
    failed = _report()
    failed.error = "boom"
    assert overall_exit_code([refused, failed, _report()]) is ExitCode.ERROR
    assert overall_exit_code([refused, _report(missing=1)]) is ExitCode.REFUSED
    assert overall_exit_code([]) is ExitCode.CLEAN


def test_json_round_trip() -> None:
    r = _report(orphaned=4, state_drift=1)
    r.finished_at = datetime(2026, 1, 1, 0, 1, tzinfo=UTC)
    data = json.loads(to_json([r]))
    assert data["exit_code"] == ExitCode.DRIFT_NOT_REPAIRED
    (sync,) = data["syncs"]
    assert sync["categories"]["orphaned"] == {"count": 4, "sample": ["k0", "k1", "k2"], "repaired": 0,
                                             "queued": 0, "remaining": 4}
    assert sync["drift"] == 5
    back = report_from_dict(sync)
    assert back.category(Category.ORPHANED).count == 4
    assert back.finished_at == r.finished_at
    assert back.to_dict() == sync


def test_render_human_table() -> None:
    out = io.StringIO()
    r = _report(missing=7)
    r.category(Category.MISSING).queued = 7
    render([r], Console(file=out, width=200))
    text = out.getvalue()
    assert "reconcile s -> i (dry run)" in text
    assert "missing" in text
    assert "k0, k1, k2 ..." in text
    assert "7 (7 queued)" in text
    assert "--apply" in text


def test_to_row_reads_reserved_metadata() -> None:
    row = to_row({"key": "7#2", "metadata": {"s3vl_id": "7", "s3vl_ev": "e", "s3vl_hash": "h",
                                            "s3vl_chunk": 2.0, "other": 1}}, 3)
    assert row[:6] == ("7#2", "7", "e", "h", 2, 3)
    # the hash the worker records for the declared metadata it wrote (s3vl_ keys are not declared)
    assert row[6] == metadata_hash({"other": 1}, False)
    assert to_row({"key": "x"}, 0) == ("x", None, None, None, None, 0, metadata_hash({}, False))
    with_text = to_row({"key": "x", "metadata": {"s3vl_text": "t", "a": "b"}}, 0)[6]
    assert with_text == metadata_hash({"a": "b"}, True) != metadata_hash({"a": "b"}, False)
    assert to_row({"key": "x", "metadata": {"s3vl_id": 12.0, "s3vl_chunk": True}}, 0)[1:5] == (
        "12", None, None, None)


class FakeIndex:
    """An index of ``n`` keys split into segments by hash, paged like ListVectors."""

    def __init__(self, n: int, page: int, fail_segment: int | None = None) -> None:
        self.keys = [f"k{i}" for i in range(n)]
        self.page = page
        self.fail_segment = fail_segment
        self.calls = 0
        self.lock = threading.Lock()

    def __call__(self, segment: int, segments: int, token: str | None
                 ) -> tuple[Sequence[Mapping[str, Any]], str | None]:
        with self.lock:
            self.calls += 1
        if segment == self.fail_segment:
            raise RuntimeError("throttled for good")
        mine = [k for k in self.keys if hash(k) % segments == segment]
        start = int(token or 0)
        chunk = mine[start:start + self.page]
        nxt = str(start + self.page) if start + self.page < len(mine) else None
        return [{"key": k, "metadata": {"s3vl_id": k}} for k in chunk], nxt


@pytest.mark.parametrize("segments", [1, 3, 16])
def test_iter_pages_covers_every_segment_and_page(segments: int) -> None:
    index = FakeIndex(1234, page=50)
    seen: list[str] = []
    for _segment, rows in iter_pages(index, segments, queue_pages=2):
        seen.extend(r[0] for r in rows)
    assert sorted(seen) == sorted(index.keys)
    assert len(seen) == len(set(seen))


def test_iter_pages_raises_a_segment_error() -> None:
    with pytest.raises(RuntimeError, match="throttled for good"):
        for _ in iter_pages(FakeIndex(500, page=10, fail_segment=2), 4, queue_pages=1):
            pass


def test_iter_pages_rejects_bad_segment_count() -> None:
    with pytest.raises(ValueError, match="segments"):
        list(iter_pages(FakeIndex(1, 1), 17))


def test_terminal_progress_counts_pages() -> None:
    from sync.ops.reconcile.report import TerminalProgress

    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120)
    with TerminalProgress(console) as bar:
        advance = bar("docs", 10)
        advance(6)
        advance(6)  # more than the state table expected: the total grows with it
    text = out.getvalue()
    assert "scan docs" in text
    assert "12/12" in text


def test_new_physical_index_name() -> None:
    from sync.ops.reindex import new_physical_name

    assert new_physical_name("docs", 1_700_000_000) == "docs-r1700000000"
    assert new_physical_name("docs-r1700000000", 1_800_000_000) == "docs-r1800000000"
    assert len(new_physical_name("x" * 63, 1_700_000_000)) <= 63
