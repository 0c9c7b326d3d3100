"""Upgrading a database that s3vl 0.1 installed, while 0.1 workers keep running (a rolling deploy).

The 0.1 schema is taken from the repository's history (the commit that landed 0.1), its syncs are
declared the 0.1 way, then this version's ``install-sql`` runs over it. The statements below are
what a 0.1 worker sends (``sync/outbox.py`` and ``sync/capture.py`` at 0.1, verbatim): they must
keep working, for a login holding what 0.1's README asked of a worker (s3vl_admin, SELECT on the
sources), until every worker runs this version.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from sync.db import schema
from tests.support.paths import REPO
from tests.support.pg import TestCluster

#: The commit that landed s3vl 0.1 (its sql/ is the schema a 0.1 install has).
RELEASE_0_1 = "14ef9e4"
OLD_WORKER = "s3vl_test_old_worker"

# --- a 0.1 worker's statements, verbatim --------------------------------------------------------
SYNCS = """
SELECT s.name, s.source::text AS source, s.key_columns, s.index_name, i.index_arn, s.text_expression,
       s.metadata_columns, s.embedding_model, s.dimensions, s.normalize_vectors, s.chunk_size,
       s.chunk_overlap, s.store_text, s.embedding_version, s.max_attempts
FROM s3vl.syncs s JOIN s3vl.indexes i ON i.name = s.index_name
"""
LEASE = "SELECT sync_name, key, version, attempts FROM s3vl.lease(%s, %s, %s, %s)"
LOAD = """
SELECT k.key, r.key IS NOT NULL AS present, r.content, r.metadata, r.content_hash,
       st.key IS NOT NULL AS has_state, st.content_hash AS state_hash, st.metadata_hash,
       st.embedding_version, st.chunk_count, st.chunked
FROM unnest(%(keys)s::text[]) AS k(key)
LEFT JOIN s3vl.load_rows(%(sync)s, %(keys)s::text[]) AS r ON r.key = k.key
LEFT JOIN s3vl.sync_state AS st ON st.sync_name = %(sync)s AND st.key = k.key
"""
BEGIN_WRITE = "SELECT s3vl.begin_write(%s, %s::jsonb) AS n"
COMPLETE = "SELECT completed, requeued FROM s3vl.complete(%s, %s, %s::jsonb)"
FAIL = "SELECT s3vl.fail(%s, %s, %s::jsonb, %s) AS n"
RELEASE = "SELECT s3vl.release(%s, %s, %s::text[]) AS n"
EXTEND = "SELECT s3vl.extend_lease(%s, %s, %s::text[], %s) AS n"
STATUS = ("SELECT sync_name, source::text AS source, index_name, embedding_model, embedding_version, "
          "capture, pending, leased, retrying, failed, "
          "extract(epoch FROM oldest_pending_age)::float8 AS lag_seconds, "
          "last_success, synced_keys, last_reconcile_at, last_reconcile, capture_lag_bytes "
          "FROM s3vl.sync_status ORDER BY 1")
FAILURES = "SELECT sync_name, key, attempts, last_error FROM s3vl.sync_failures ORDER BY sync_name, key LIMIT %s"
PENDING = ("SELECT count(*) AS n FROM s3vl.outbox WHERE status = 'pending' "
           "AND (%(s)s::text IS NULL OR sync_name = %(s)s)")
CAPTURE_STATE = ("SELECT s3vl.capture_slot_name(), "
                 "EXISTS (SELECT FROM s3vl.syncs WHERE capture = 'logical'), "
                 "EXISTS (SELECT FROM pg_replication_slots WHERE slot_name = s3vl.capture_slot_name())")
CAPTURE_POLL = "SELECT changes, enqueued, upto_lsn FROM s3vl.capture_logical(%s)"


def _old_sql(into: Path) -> Path:
    """0.1's sql/ folder, from the repository's history (skip where the history is not there)."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed: the 0.1 schema comes from the repository's history")
    listing = subprocess.run(["git", "-C", str(REPO), "ls-tree", "-r", "--name-only", RELEASE_0_1, "sql"],
                             capture_output=True, text=True, check=False)
    if listing.returncode != 0:
        pytest.skip(f"commit {RELEASE_0_1} (s3vl 0.1) is not in this clone's history: {listing.stderr.strip()}")
    for name in listing.stdout.split():
        body = subprocess.run(["git", "-C", str(REPO), "show", f"{RELEASE_0_1}:{name}"], capture_output=True,
                              check=True).stdout
        target = into / Path(name).relative_to("sql")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(body)
    return into


@pytest.fixture
def upgraded(pg_cluster: TestCluster, tmp_path: Path) -> Iterator[str]:
    """A database installed by 0.1 with a trigger sync and a logical one, upgraded to this version."""
    old = _old_sql(tmp_path / "sql-0.1")
    url = pg_cluster.create_database(installed=False)
    try:
        schema.install(url, old)
        with psycopg.connect(url, autocommit=True) as c:
            c.execute("INSERT INTO s3vl.indexes (name, index_arn, region, account_id, bucket_name, index_name, "
                      "dimension) VALUES "
                      "('products', 'arn:aws:s3vectors:us-west-2:000000000000:bucket/b/index/products', "
                      "'us-west-2', '000000000000', 'b', 'products', 256), "
                      "('notes', 'arn:aws:s3vectors:us-west-2:000000000000:bucket/b/index/notes', "
                      "'us-west-2', '000000000000', 'b', 'notes', 256)")
            c.execute("CREATE TABLE public.products (id int PRIMARY KEY, name text, category text)")
            c.execute("INSERT INTO products SELECT g, 'p' || g, 'c' FROM generate_series(1, 6) g")
            c.execute("CREATE TABLE public.notes (id int PRIMARY KEY, body text)")
            c.execute("SELECT s3vl.create_sync('products', 'products', 'products', $$name$$, ARRAY['category'], "
                      "dimensions => 256, max_attempts => 2)")
            c.execute("SELECT s3vl.create_sync('notes', 'notes', 'notes', $$body$$, dimensions => 256, "
                      "capture => 'logical')")
            c.execute(f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{OLD_WORKER}') THEN "
                      f"CREATE ROLE {OLD_WORKER} LOGIN REPLICATION IN ROLE s3vl_admin; END IF; END $$")
            c.execute(f"GRANT SELECT ON products, notes TO {OLD_WORKER}")
        report = schema.install(url)
        assert report.changed == [], "the upgrade reports 0.1's migrations as edited"
        assert report.applied == ["incremental/203-sync-trust.sql", "incremental/204-reconcile-rolling.sql"]
        yield url
    finally:
        pg_cluster.drop_database(url)


def test_the_upgrade_gives_old_syncs_an_owner_and_their_functions(upgraded: str) -> None:
    with psycopg.connect(upgraded, autocommit=True) as c:
        owners = c.execute("SELECT name, owner::text FROM s3vl.syncs ORDER BY name").fetchall()
        assert owners == [("notes", "postgres"), ("products", "postgres")]  # their tables' owner
        generated = {r[0] for r in c.execute("SELECT proname FROM pg_proc WHERE proname ~ '^_gen_(rows|scan)_'")}
        assert generated == {"_gen_rows_products", "_gen_scan_products", "_gen_rows_notes", "_gen_scan_notes"}
        # triggers written in 0.1 call the regenerated capture function
        assert c.execute("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'products'::regclass "
                         "AND tgfoid = 's3vl._capture_sync_products()'::regprocedure").fetchone() == (4,)
        c.execute("UPDATE products SET name = 'renamed' WHERE id = 1")
        assert c.execute("SELECT key FROM s3vl.outbox WHERE sync_name = 'products' AND key = '1'").fetchone() == ("1",)


def test_a_0_1_workers_statements_still_work_after_the_upgrade(upgraded: str) -> None:
    url = upgraded.replace("postgresql://postgres@", f"postgresql://{OLD_WORKER}@")
    with psycopg.connect(url, autocommit=True) as c:
        syncs = c.execute(SYNCS + " ORDER BY s.name").fetchall()
        assert [s[0] for s in syncs] == ["notes", "products"]
        leased = c.execute(LEASE, ("old-worker", 4, 30.0, "products")).fetchall()
        assert len(leased) == 4
        keys = [r[1] for r in leased]
        loaded: list[Any] = c.execute(LOAD, {"sync": "products", "keys": keys}).fetchall()
        assert [(r[0], r[1], r[2]) for r in loaded] == [(k, True, f"p{k}") for k in keys]
        assert all(r[3] == {"category": "c"} for r in loaded)
        first, second, *rest = leased
        writes = [{"key": k, "embedding_version": syncs[1][13], "chunk_count": 1, "chunked": False} for k in keys[:2]]
        assert c.execute(BEGIN_WRITE, ("products", json.dumps(writes))).fetchone() == (2,)
        results = [{"key": r[1], "version": r[2], "deleted": False, "content_hash": row[4], "metadata_hash": "m",
                    "embedding_version": syncs[1][13], "chunk_count": 1, "chunked": False}
                   for r, row in zip((first, second), loaded, strict=False)]
        assert c.execute(COMPLETE, ("products", "old-worker", json.dumps(results))).fetchone() == (2, 0)
        assert c.execute(EXTEND, ("products", "old-worker", [rest[0][1]], 60.0)).fetchone() == (1,)
        failures = [{"key": rest[0][1], "version": rest[0][2], "error": "boom"}]
        assert c.execute(FAIL, ("products", "old-worker", json.dumps(failures), 0.0)).fetchone() == (1,)
        assert c.execute(RELEASE, ("products", "old-worker", [rest[1][1]])).fetchone() == (1,)
        status = {r[0]: r for r in c.execute(STATUS).fetchall()}
        assert status["products"][12] == 2        # synced_keys
        assert c.execute(FAILURES, (20,)).fetchall() == []  # one attempt of two: still pending
        assert c.execute(PENDING, {"s": "products"}).fetchone() == (4,)
        slot, wanted, exists = c.execute(CAPTURE_STATE).fetchone()  # type: ignore[misc]
        assert (wanted, exists) == (True, False)
        c.execute("SELECT pg_create_logical_replication_slot(%s, 'wal2json')", (slot,))
        try:
            with psycopg.connect(upgraded, autocommit=True) as writer:
                writer.execute("SET synchronous_commit = on")  # decoding reads flushed WAL only
                writer.execute("INSERT INTO notes VALUES (1, 'a note')")
            with c.transaction():
                changes, enqueued, _lsn = c.execute(CAPTURE_POLL, (1000,)).fetchone()  # type: ignore[misc]
            assert (changes, enqueued) == (1, 1)
        finally:
            c.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
