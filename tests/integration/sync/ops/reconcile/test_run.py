"""Reconcile against real PostgreSQL: every drift category injected on purpose, exact counts,
``--apply`` repairs, and a second run (after the worker's pass) reports zero.

The index here is :class:`FakeVectors` (in-memory, ListVectors/DeleteVectors semantics); the
same flow against the real local endpoint is in test_cli.py.
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from sync.ops.reconcile.report import Category, ExitCode
from sync.ops.reconcile.run import ReconcileOptions, reconcile
from tests.support.reconcileenv import (
    FakeVectors,
    counts,
    create_docs_sync,
    current_rows,
    drain_outbox,
    inject_everything,
    write_synced,
)

ZERO = {"orphaned": 0, "missing": 0, "stale": 0, "metadata_drift": 0, "state_drift": 0}


def run(db_url: str, index: FakeVectors, **opts: Any) -> Any:
    options = ReconcileOptions(**{"segments": 4, "page_size": 7, **opts})
    (report,) = reconcile(db_url, options, ["docs"], client_factory=lambda region: index)
    return report


def test_clean_sync_reports_zero(conn: psycopg.Connection[Any], db_url: str) -> None:
    index = FakeVectors()
    ev = create_docs_sync(conn, 50)
    write_synced(conn, index, ev)
    report = run(db_url, index)
    assert counts(report) == ZERO
    assert report.index_vectors == 50
    assert report.source_rows == 50
    assert report.state_rows == 50
    assert report.exit_code() is ExitCode.CLEAN


def test_each_category_exact_counts(conn: psycopg.Connection[Any], db_url: str) -> None:
    index = FakeVectors()
    ev = create_docs_sync(conn, 50)
    write_synced(conn, index, ev)
    inject_everything(conn, index)

    report = run(db_url, index)
    # the lost state row of 7 also leaves its vector's metadata unvouched for: re-put
    assert counts(report) == {"orphaned": 4, "missing": 2, "stale": 3, "metadata_drift": 2, "state_drift": 6}
    assert report.category(Category.ORPHANED).sample == ["6", "x1", "x2", "x3"]
    assert report.category(Category.METADATA_DRIFT).sample == ["7", "9"]
    assert report.category(Category.MISSING).sample == ["1", "2"]
    assert report.category(Category.STALE).sample == ["3", "4", "5"]
    assert report.category(Category.STATE_DRIFT).sample == ["1", "2", "3", "4", "7", "8"]
    assert report.exit_code() is ExitCode.DRIFT_NOT_REPAIRED
    # a dry run changes nothing
    assert len(index.vectors) == 51
    assert conn.execute("SELECT count(*) FROM s3vl.outbox").fetchone() == (0,)
    (stored,) = conn.execute("SELECT report FROM s3vl.reconcile_runs ORDER BY id DESC LIMIT 1").fetchone() or (None,)
    assert stored["categories"]["orphaned"]["count"] == 4
    assert stored["applied"] is False
    status = conn.execute("SELECT last_reconcile->'categories'->'stale'->>'count' FROM s3vl.sync_status "
                          "WHERE sync_name = 'docs'").fetchone()
    assert status == ("3",)


def test_apply_repairs_and_second_run_is_clean(conn: psycopg.Connection[Any], db_url: str) -> None:
    index = FakeVectors()
    ev = create_docs_sync(conn, 50)
    write_synced(conn, index, ev)
    inject_everything(conn, index)

    report = run(db_url, index, apply=True)
    assert {n: r.repaired for n, r in report.categories.items()} == {
        "orphaned": 4, "missing": 2, "stale": 3, "metadata_drift": 2, "state_drift": 6}
    assert report.exit_code() is ExitCode.CLEAN
    assert not {"6", "x1", "x2", "x3"} & index.vectors.keys()
    queued = [r[0] for r in conn.execute("SELECT key FROM s3vl.outbox ORDER BY key")]
    assert queued == ["1", "2", "3", "4", "5", "7", "9"]
    # the worker re-puts 9's metadata without embedding: its recorded metadata hash is forgotten
    assert conn.execute("SELECT metadata_hash FROM s3vl.sync_state WHERE key = '9'").fetchone() == (None,)
    # state now describes the index: the deleted row's state went with its vector
    assert conn.execute("SELECT count(*) FROM s3vl.sync_state WHERE key IN ('1', '2', '6')").fetchone() == (0,)
    assert conn.execute("SELECT content_hash FROM s3vl.sync_state WHERE key = '3'").fetchone() == ("0" * 32,)

    queued = run(db_url, index)  # before the worker's pass: the same keys, known to be queued
    assert queued.category(Category.MISSING).queued == 2
    assert queued.category(Category.STALE).queued == 3
    drain_outbox(conn, index, ev)  # the worker's pass
    again = run(db_url, index)
    assert counts(again) == ZERO
    assert again.exit_code() is ExitCode.CLEAN


def test_safety_limit_refuses_mass_delete(conn: psycopg.Connection[Any], db_url: str) -> None:
    index = FakeVectors()
    ev = create_docs_sync(conn, 40)
    write_synced(conn, index, ev)
    conn.execute("SET session_replication_role = replica")
    conn.execute("DELETE FROM public.docs WHERE id <= 5")  # 5 of 40 = 12.5% > 10%
    conn.execute("SET session_replication_role = origin")
    del index.vectors["20"]  # a missing vector: not enqueued either when the run is refused

    refused = run(db_url, index, apply=True)
    assert refused.category(Category.ORPHANED).count == 5
    assert refused.refused
    assert "--force" in refused.refused
    assert refused.exit_code() is ExitCode.REFUSED
    assert len(index.vectors) == 39
    assert index.delete_calls == []
    assert conn.execute("SELECT count(*) FROM s3vl.outbox").fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM s3vl.sync_state").fetchone() == (40,)

    allowed = run(db_url, index, apply=True, max_delete_share=0.2)
    assert allowed.category(Category.ORPHANED).repaired == 5
    assert len(index.vectors) == 34


def test_force_overrides_safety_limit(conn: psycopg.Connection[Any], db_url: str) -> None:
    index = FakeVectors()
    ev = create_docs_sync(conn, 10)
    write_synced(conn, index, ev)
    conn.execute("SET session_replication_role = replica")
    conn.execute("DELETE FROM public.docs")  # the "wrong database" case, confirmed on purpose
    conn.execute("SET session_replication_role = origin")
    report = run(db_url, index, apply=True, force=True)
    assert report.category(Category.ORPHANED).repaired == 10
    assert index.vectors == {}
    assert conn.execute("SELECT count(*) FROM s3vl.sync_state").fetchone() == (0,)


def test_max_reembed_is_rolling(conn: psycopg.Connection[Any], db_url: str) -> None:
    index = FakeVectors()
    create_docs_sync(conn, 30)
    write_synced(conn, index, "previous-ev")  # every vector from an older embedding version
    ev = conn.execute("SELECT embedding_version FROM s3vl.syncs").fetchone()
    assert ev is not None

    first = run(db_url, index, apply=True, max_reembed=12)
    assert first.category(Category.STALE).count == 30
    assert first.category(Category.STALE).repaired == 12
    assert first.deferred_stale == 18
    assert first.exit_code() is ExitCode.DRIFT_NOT_REPAIRED
    drain_outbox(conn, index, ev[0])
    second = run(db_url, index, apply=True, max_reembed=12)
    assert second.category(Category.STALE).count == 18
    drain_outbox(conn, index, ev[0])
    third = run(db_url, index, apply=True, max_reembed=12)
    assert third.category(Category.STALE).count == 6
    assert third.exit_code() is ExitCode.CLEAN
    drain_outbox(conn, index, ev[0])
    assert counts(run(db_url, index)) == ZERO


def test_chunked_sync_missing_and_orphan_chunks(conn: psycopg.Connection[Any], db_url: str) -> None:
    index = FakeVectors()
    ev = create_docs_sync(conn, 10, chunk_size=200)
    write_synced(conn, index, ev, chunks=3)
    del index.vectors["2#1"]                          # a missing chunk
    index.put("3#3", {"s3vl_id": "3", "s3vl_ev": ev, "s3vl_hash": "old", "s3vl_chunk": 3})  # leftover chunk
    index.put("4", {"s3vl_id": "4", "s3vl_ev": ev})   # not a key s3vl writes for a chunked sync
    report = run(db_url, index)
    assert counts(report) == {"orphaned": 2, "missing": 1, "stale": 0, "metadata_drift": 0, "state_drift": 1}
    assert report.category(Category.ORPHANED).sample == ["3#3", "4"]

    applied = run(db_url, index, apply=True)
    assert applied.exit_code() is ExitCode.CLEAN
    # the incomplete key's state is marked unknown, so the worker re-embeds all of its chunks
    assert conn.execute("SELECT content_hash, chunk_count FROM s3vl.sync_state WHERE key = '2'").fetchone() == (None, 3)
    drain_outbox(conn, index, ev, chunks=3)
    assert counts(run(db_url, index)) == ZERO


def test_scan_covers_every_segment_and_page(conn: psycopg.Connection[Any], db_url: str) -> None:
    index = FakeVectors()
    ev = create_docs_sync(conn, 101)
    write_synced(conn, index, ev)
    report = run(db_url, index, segments=16, page_size=3)
    assert report.index_vectors == 101
    assert counts(report) == ZERO
    segments = {s for s, n, _ in index.list_calls}
    assert segments == set(range(16))
    assert {n for _, n, _ in index.list_calls} == {16}
    assert report.pages >= 101 // 3
    # every page after the first of a segment was asked for with the token the last one returned
    assert sum(1 for _, _, token in index.list_calls if token is None) == 16


def test_unknown_sync_is_an_error(conn: psycopg.Connection[Any], db_url: str) -> None:
    from sync.errors import UnknownSyncError

    create_docs_sync(conn, 1)
    with pytest.raises(UnknownSyncError, match="no such sync: nope"):
        reconcile(db_url, ReconcileOptions(), ["nope"], client_factory=lambda r: FakeVectors())


def test_source_rows_drive_hashes(conn: psycopg.Connection[Any]) -> None:
    create_docs_sync(conn, 3)
    rows = current_rows(conn)
    assert [k for k, _ in rows] == ["1", "2", "3"]
    assert all(len(h) == 32 for _, h in rows)


def test_blank_text_rows_have_no_vectors(conn: psycopg.Connection[Any], db_url: str) -> None:
    index = FakeVectors()
    ev = create_docs_sync(conn, 10)
    write_synced(conn, index, ev)
    conn.execute("SET session_replication_role = replica")
    conn.execute("UPDATE public.docs SET title = NULL WHERE id IN (9, 10)")  # text NULL: nothing to embed
    conn.execute("SET session_replication_role = origin")
    del index.vectors["10"]
    conn.execute("DELETE FROM s3vl.sync_state WHERE key = '10'")  # as the worker leaves a blank row
    report = run(db_url, index)
    # 9 still has its vector: an orphan the worker would delete; 10 is not "missing"
    assert counts(report) == {"orphaned": 1, "missing": 0, "stale": 0, "metadata_drift": 0, "state_drift": 0}
    assert report.source_rows == 8
    run(db_url, index, apply=True, max_delete_share=0.5)
    assert counts(run(db_url, index)) == ZERO


def test_chunking_turned_on_makes_old_vectors_stale_not_orphans(
    conn: psycopg.Connection[Any], db_url: str
) -> None:
    index = FakeVectors()
    ev = create_docs_sync(conn, 12)
    write_synced(conn, index, ev)
    conn.execute("SELECT s3vl.alter_sync('docs', chunk_size => 200)")  # queues every row again
    report = run(db_url, index)
    assert counts(report) == {"orphaned": 0, "missing": 0, "stale": 12, "metadata_drift": 0, "state_drift": 0}
    # a plain-key vector with no state row cannot be an old layout: it is an orphan
    conn.execute("DELETE FROM s3vl.sync_state WHERE key = '1'")
    report = run(db_url, index)
    assert report.category(Category.ORPHANED).sample == ["1"]
    assert report.category(Category.MISSING).count == 1


def test_one_reconcile_per_sync_at_a_time(conn: psycopg.Connection[Any], db_url: str) -> None:
    index = FakeVectors()
    ev = create_docs_sync(conn, 5)
    write_synced(conn, index, ev)
    with psycopg.connect(db_url, autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(hashtextextended('s3vl.reconcile:docs', 0))")
        busy = run(db_url, index)
        assert busy.error is not None
        assert "another reconcile" in busy.error
        assert busy.exit_code() is ExitCode.ERROR
    assert run(db_url, index).exit_code() is ExitCode.CLEAN


def test_scan_commits_in_bounded_statements(db_url: str) -> None:
    from sync.db.connection import Database
    from sync.ops.reconcile.scan import boto3_lister, create_scan_table, scan_into
    from tests.support.reconcileenv import INDEX_ARN

    index = FakeVectors()
    for i in range(101):
        index.put(f"k{i}", {"s3vl_id": f"k{i}"})
    with Database(db_url) as db:
        create_scan_table(db)
        stats = scan_into(db, boto3_lister(index, INDEX_ARN, page_size=5), segments=3, rows_per_statement=7)
        assert stats.vectors == 101
        assert sum(stats.per_segment) == 101
        with db.cursor() as cur:
            cur.execute("SELECT count(*) AS n, count(DISTINCT key) AS d FROM s3vl_reconcile_scan")
            assert cur.fetchone() == {"n": 101, "d": 101}


def test_unusable_syncs_report_an_error_and_others_still_run(conn: psycopg.Connection[Any], db_url: str) -> None:
    index = FakeVectors()
    ev = create_docs_sync(conn, 5)
    write_synced(conn, index, ev)
    conn.execute("CREATE TABLE public.gone (id int PRIMARY KEY, t text)")
    conn.execute("INSERT INTO s3vl.indexes (name, index_arn, region, account_id, bucket_name, index_name) VALUES "
                 "('gone', 'arn:aws:s3vectors:us-west-2:000000000000:bucket/rc-bucket/index/gone', 'us-west-2', "
                 "'000000000000', 'rc-bucket', 'gone')")
    conn.execute("SELECT s3vl.create_sync(name => 'gone', source => 'public.gone', index_name => 'gone', "
                 "text_expression => 't', dimensions => 256, backfill => false)")
    conn.execute("DROP TABLE public.gone CASCADE")
    docs, gone = reconcile(db_url, ReconcileOptions(segments=2), None, client_factory=lambda r: index)
    assert docs.exit_code() is ExitCode.CLEAN
    assert gone.error is not None
    assert "no longer exists" in gone.error
    assert gone.exit_code() is ExitCode.ERROR


def test_keys_already_in_the_outbox_are_not_enqueued_again(conn: psycopg.Connection[Any], db_url: str) -> None:
    index = FakeVectors()
    ev = create_docs_sync(conn, 10)
    write_synced(conn, index, ev)
    for k in ("1", "2", "3"):
        del index.vectors[k]
    conn.execute("SELECT s3vl.enqueue('docs', ARRAY['1'])")  # pending: a worker has it (maybe in flight)
    conn.execute("SELECT s3vl.enqueue('docs', ARRAY['2'])")
    conn.execute("UPDATE s3vl.outbox SET status = 'failed', last_error = 'boom' WHERE key = '2'")  # operator's
    report = run(db_url, index, apply=True)
    missing = report.category(Category.MISSING)
    assert (missing.count, missing.queued, missing.repaired) == (3, 1, 2)
    assert report.exit_code() is ExitCode.DRIFT_NOT_REPAIRED  # the failed key needs s3vl retry-failed
    rows = conn.execute("SELECT key, version, status FROM s3vl.outbox ORDER BY key").fetchall()
    assert rows == [("1", 1, "pending"), ("2", 1, "failed"), ("3", 1, "pending")]
