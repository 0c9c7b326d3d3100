"""Property: whatever drift is injected, a dry run changes nothing, and ``--apply`` followed by one
worker pass leaves an index and a state table that a second reconcile finds clean, with exactly
the vectors the source says it must hold."""

from __future__ import annotations

from typing import Any

import psycopg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sync.ops.reconcile.run import ReconcileOptions, reconcile
from tests.support.reconcileenv import (
    FakeVectors,
    counts,
    create_docs_sync,
    current_rows,
    drain_outbox,
    write_synced,
)

ROWS = 12
ZERO = {"orphaned": 0, "missing": 0, "stale": 0, "metadata_drift": 0, "state_drift": 0}

ids = st.integers(min_value=1, max_value=ROWS + 3)
ops = st.lists(st.one_of(
    st.tuples(st.just("delete_vector"), ids),
    st.tuples(st.just("ghost_vector"), ids),
    st.tuples(st.just("vector_hash"), ids),
    st.tuples(st.just("vector_ev"), ids),
    st.tuples(st.just("vector_no_metadata"), ids),
    st.tuples(st.just("update_row"), ids),
    st.tuples(st.just("delete_row"), ids),
    st.tuples(st.just("insert_row"), ids),
    st.tuples(st.just("blank_row"), ids),
    st.tuples(st.just("delete_state"), ids),
    st.tuples(st.just("state_hash"), ids),
    st.tuples(st.just("state_chunks"), ids),
    st.tuples(st.just("state_for_nothing"), ids),
), max_size=12)


def apply_op(conn: psycopg.Connection[Any], index: FakeVectors, op: str, i: int) -> None:
    key = str(i)
    if op == "delete_vector":
        index.vectors.pop(key, None)
    elif op == "ghost_vector":
        index.put(f"ghost{i}", {"s3vl_id": f"ghost{i}", "s3vl_ev": "x"})
    elif op == "vector_hash" and key in index.vectors:
        index.vectors[key]["s3vl_hash"] = "f" * 32
    elif op == "vector_ev" and key in index.vectors:
        index.vectors[key]["s3vl_ev"] = "older"
    elif op == "vector_no_metadata" and key in index.vectors:
        index.vectors[key] = {}
    elif op == "update_row":
        conn.execute("UPDATE public.docs SET body = body || ' more' WHERE id = %s", (i,))
    elif op == "delete_row":
        conn.execute("DELETE FROM public.docs WHERE id = %s", (i,))
    elif op == "insert_row":
        conn.execute("INSERT INTO public.docs VALUES (%s, 'new', 'row') ON CONFLICT DO NOTHING", (i,))
    elif op == "blank_row":
        conn.execute("UPDATE public.docs SET title = NULL WHERE id = %s", (i,))
    elif op == "delete_state":
        conn.execute("DELETE FROM s3vl.sync_state WHERE key = %s", (key,))
    elif op == "state_hash":
        conn.execute("UPDATE s3vl.sync_state SET content_hash = 'bogus' WHERE key = %s", (key,))
    elif op == "state_chunks":
        conn.execute("UPDATE s3vl.sync_state SET chunk_count = 3 WHERE key = %s", (key,))
    elif op == "state_for_nothing":
        conn.execute("INSERT INTO s3vl.sync_state (sync_name, key, content_hash, chunk_count, synced_at) "
                     "VALUES ('docs', %s, 'h', 1, now() - interval '1 hour') ON CONFLICT DO NOTHING", (f"s{i}",))


def snapshot(conn: psycopg.Connection[Any], index: FakeVectors) -> Any:
    state = conn.execute("SELECT key, content_hash, embedding_version, chunk_count, chunked FROM s3vl.sync_state "
                         "ORDER BY key").fetchall()
    outbox = conn.execute("SELECT key FROM s3vl.outbox ORDER BY key").fetchall()
    return ({k: dict(v) for k, v in index.vectors.items()}, state, outbox)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(drift=ops)
def test_apply_then_worker_pass_converges(db_url: str, drift: list[tuple[str, int]]) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS public.docs CASCADE")
        conn.execute("DELETE FROM s3vl.syncs")
        conn.execute("DELETE FROM s3vl.indexes")
        index = FakeVectors()
        ev = create_docs_sync(conn, ROWS)
        write_synced(conn, index, ev)
        conn.execute("SET session_replication_role = replica")  # drift behind the worker's back
        for op, i in drift:
            apply_op(conn, index, op, i)
        conn.execute("SET session_replication_role = origin")

        options = ReconcileOptions(segments=3, page_size=4, max_delete_share=1.0)
        before = snapshot(conn, index)
        (dry,) = reconcile(db_url, options, ["docs"], client_factory=lambda r: index)
        assert snapshot(conn, index) == before  # a dry run changes nothing

        (applied,) = reconcile(db_url, ReconcileOptions(**{**options.__dict__, "apply": True}), ["docs"],
                               client_factory=lambda r: index)
        assert applied.error is None
        assert counts(applied) == counts(dry)
        drain_outbox(conn, index, ev)
        (again,) = reconcile(db_url, options, ["docs"], client_factory=lambda r: index)
        assert counts(again) == ZERO, (drift, counts(dry))
        expected = {k: h for k, h in current_rows(conn) if k in {str(r[0]) for r in conn.execute(
            "SELECT id FROM public.docs WHERE title IS NOT NULL")}}
        assert {k: v["s3vl_hash"] for k, v in index.vectors.items()} == expected
