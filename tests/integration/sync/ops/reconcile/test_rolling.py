"""Rolling reconcile (``--segments-per-run``) against real PostgreSQL: a cycle finds what a full
run finds, keeps finding it while the worker writes, resumes after an interrupted run, and costs
each run its share of the listing."""

from __future__ import annotations

from typing import Any

import psycopg
from botocore.exceptions import EndpointConnectionError

from sync.ops.reconcile.report import Category, ExitCode, ReconcileReport
from sync.ops.reconcile.run import ReconcileOptions, reconcile
from tests.support.reconcileenv import (
    FakeVectors,
    counts,
    create_docs_sync,
    drain_outbox,
    inject_everything,
    write_synced,
)

ZERO = {c.value: 0 for c in Category}
#: what a full run reports for inject_everything (test_run.py test_each_category_exact_counts)
INJECTED = {"orphaned": 4, "missing": 2, "stale": 3, "metadata_drift": 2, "state_drift": 6}


def run(db_url: str, index: FakeVectors, **opts: Any) -> ReconcileReport:
    options = ReconcileOptions(**{"page_size": 7, **opts})
    (report,) = reconcile(db_url, options, ["docs"], client_factory=lambda region: index)
    assert report.error is None, report.error
    return report


def cycle(db_url: str, index: FakeVectors, per_run: int, **opts: Any) -> list[ReconcileReport]:
    """One cycle of rolling runs (16 / per_run of them), from wherever the cycle stands."""
    reports = []
    while True:
        report = run(db_url, index, segments_per_run=per_run, **opts)
        reports.append(report)
        assert report.rolling is not None
        if report.rolling.cycle_complete:
            return reports


def total(reports: list[ReconcileReport]) -> dict[str, int]:
    return {c.value: sum(r.category(c).count for r in reports) for c in Category}


def samples(reports: list[ReconcileReport]) -> dict[str, list[str]]:
    return {c.value: sorted(k for r in reports for k in r.category(c).sample) for c in Category}


def test_first_cycle_builds_the_snapshot_then_judges_every_key_once(
        conn: psycopg.Connection[Any], db_url: str) -> None:
    index = FakeVectors()
    write_synced(conn, index, create_docs_sync(conn, 120))
    inject_everything(conn, index)
    reports = cycle(db_url, index, per_run=4)
    assert len(reports) == 4
    assert [r.rolling.judged for r in reports if r.rolling] == ["none", "none", "none", "all"]
    assert [r.rolling.listed_segments for r in reports if r.rolling] == [[0, 1, 2, 3], [4, 5, 6, 7],
                                                                         [8, 9, 10, 11], [12, 13, 14, 15]]
    assert [r.rolling.cycle_segments_done for r in reports if r.rolling] == [4, 8, 12, 16]
    # each run listed only its segments: 16 segments' pages over the cycle, each once
    assert sum(r.index_vectors for r in reports) == len(index.vectors)
    assert {seg for seg, count, _ in index.list_calls} == set(range(16))
    assert all(count == 16 for _, count, _ in index.list_calls)
    assert total(reports) == INJECTED
    (full,) = reconcile(db_url, ReconcileOptions(page_size=7), ["docs"], client_factory=lambda r: index)
    assert counts(full) == INJECTED
    assert samples(reports) == samples([full])


def test_a_cycle_finds_drift_injected_after_the_snapshot_exactly_as_a_full_run(
        conn: psycopg.Connection[Any], db_url: str) -> None:
    index = FakeVectors()
    write_synced(conn, index, create_docs_sync(conn, 120))
    assert total(cycle(db_url, index, per_run=4)) == ZERO  # the first snapshot
    inject_everything(conn, index)
    (full,) = reconcile(db_url, ReconcileOptions(page_size=7), ["docs"], client_factory=lambda r: index)
    reports = cycle(db_url, index, per_run=4)
    assert [r.rolling.judged for r in reports if r.rolling] == ["share"] * 4
    assert total(reports) == counts(full) == INJECTED
    assert samples(reports) == samples([full])
    # every run judged only its share of the keys, not the whole index
    assert all(r.judged_vectors < 0.5 * len(index.vectors) for r in reports)
    # the next cycle still finds what nothing repaired (a dry run changes nothing)
    assert total(cycle(db_url, index, per_run=4)) == INJECTED
    # the cycle's summary is what sync_status shows
    (last,) = conn.execute("SELECT last_reconcile_cycle FROM s3vl.sync_status WHERE sync_name = 'docs'").fetchone()
    assert last["cycle"] == 3
    assert last["found"] == INJECTED


def test_apply_repairs_each_share_and_the_next_cycle_is_clean(conn: psycopg.Connection[Any], db_url: str) -> None:
    index = FakeVectors()
    ev = create_docs_sync(conn, 120)
    write_synced(conn, index, ev)
    cycle(db_url, index, per_run=8)
    inject_everything(conn, index)
    reports = cycle(db_url, index, per_run=8, apply=True, max_delete_share=1.0)
    assert all(r.exit_code() is ExitCode.CLEAN for r in reports)
    assert {c: sum(r.category(Category(c)).repaired for r in reports) for c in INJECTED} == INJECTED
    assert not {"6", "x1", "x2", "x3"} & index.vectors.keys()
    drain_outbox(conn, index, ev)  # the worker's pass
    assert total(cycle(db_url, index, per_run=8)) == ZERO
    assert total(cycle(db_url, index, per_run=8)) == ZERO  # tombstones of repaired keys mislead nothing


def test_an_interrupted_run_leaves_the_cycle_where_it_was(conn: psycopg.Connection[Any], db_url: str) -> None:
    index = FakeVectors()
    write_synced(conn, index, create_docs_sync(conn, 120))
    cycle(db_url, index, per_run=4)
    inject_everything(conn, index)
    first = run(db_url, index, segments_per_run=4)
    assert first.rolling is not None
    assert first.rolling.listed_segments == [0, 1, 2, 3]

    class Broken(FakeVectors):
        def list_vectors(self, **kw: Any) -> dict[str, Any]:
            raise EndpointConnectionError(endpoint_url="https://s3vectors.us-west-2.amazonaws.com")

    broken = Broken()
    broken.vectors = index.vectors
    (failed,) = reconcile(db_url, ReconcileOptions(segments_per_run=4, page_size=7), ["docs"],
                          client_factory=lambda r: broken)
    assert failed.error is not None
    assert failed.exit_code() is ExitCode.ERROR
    # the next run lists the segments the failed one did not finish, and the cycle still adds up
    rest = cycle(db_url, index, per_run=4)
    assert [r.rolling.listed_segments[0] for r in rest if r.rolling] == [4, 8, 12]
    assert total([first, *rest]) == INJECTED


def test_the_workers_writes_during_a_cycle_are_not_misreported(conn: psycopg.Connection[Any], db_url: str) -> None:
    index = FakeVectors()
    ev = create_docs_sync(conn, 120)
    write_synced(conn, index, ev)
    cycle(db_url, index, per_run=4)
    first = run(db_url, index, segments_per_run=4)
    assert counts(first) == ZERO
    # the worker now inserts, rewrites and deletes rows whose segments were listed or not yet
    conn.execute("INSERT INTO public.docs SELECT g, 'new ' || g, 'row' FROM generate_series(200, 260) g")
    conn.execute("UPDATE public.docs SET body = 'changed' WHERE id BETWEEN 1 AND 40")
    conn.execute("DELETE FROM public.docs WHERE id BETWEEN 41 AND 60")
    changed = [r[0] for r in conn.execute("SELECT key FROM s3vl.outbox")]
    drain_outbox(conn, index, ev)
    # (the stand-in worker backdates its state rows; the real one writes them now)
    conn.execute("UPDATE s3vl.sync_state SET synced_at = clock_timestamp() WHERE key = ANY(%s)", (changed,))
    rest = cycle(db_url, index, per_run=4)
    assert total(rest) == ZERO
    assert total(cycle(db_url, index, per_run=4)) == ZERO
