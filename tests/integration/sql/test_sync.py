"""Sync definitions in SQL: validation of create/alter/drop, capture triggers, the outbox protocol."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from tests.support.syncenv import PRODUCTS_DDL

ARN = "arn:aws:s3vectors:us-west-2:000000000000:bucket/bkt/index/products"


@pytest.fixture
def conn(db_url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(db_url, autocommit=True) as c:
        c.execute("INSERT INTO s3vl.indexes (name, index_arn, region, account_id, bucket_name, index_name, dimension) "
                  "VALUES ('products', %s, 'us-west-2', '000000000000', 'bkt', 'products', 1024)", (ARN,))
        c.execute(PRODUCTS_DDL)
        c.execute("INSERT INTO products (id, name, description, category, price) "
                  "SELECT g, 'p' || g, 'd' || g, 'c', g FROM generate_series(1, 5) g")
        yield c


def _create(conn: psycopg.Connection[Any], **overrides: Any) -> Any:
    args: dict[str, Any] = {"name": "products", "source": "public.products", "index_name": "products",
                            "text_expression": "name || ' ' || coalesce(description, '')",
                            "metadata_columns": ["category", "price"]}
    args.update(overrides)
    named = ", ".join(f"{k} => %({k})s" for k in args)
    return conn.execute(f"SELECT * FROM s3vl.create_sync({named})", args).fetchone()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"source": "public.nope"}, 'relation "public.nope" does not exist'),
        ({"text_expression": "nosuch || 'x'"}, 'column "nosuch" does not exist'),
        ({"text_expression": "name ||"}, "is not valid over"),
        ({"text_expression": "price * 2"}, "text_expression must be of type text, not numeric"),
        ({"text_expression": "  "}, "text_expression is empty"),
        ({"text_expression": "name) IS NOT NULL; CREATE TABLE public.pwned (a int); "
                             "SELECT 1 FROM public.products t WHERE (name"},
         "must be one SQL expression"),
        ({"text_expression": "(SELECT max(index_name) FROM s3vl.indexes)"}, "may not contain a subquery"),
        ({"text_expression": "count(*)::text"}, "aggregate functions are not allowed"),
        ({"text_expression": "unnest(ARRAY[name, name])"}, "set-returning functions are not allowed"),
        ({"metadata_columns": ["category", "missing"]}, 'metadata column "missing" does not exist'),
        ({"metadata_columns": ["s3vl_id"]}, "the s3vl_ prefix is reserved"),
        ({"index_name": "unregistered"}, 'index "unregistered" is not registered'),
        ({"embedding_model": "openai.ada"}, "unknown embedding model 'openai.ada'"),
        ({"dimensions": 512}, "dimensions 512 do not match index"),
        ({"embedding_model": "cohere.embed-english-v3", "dimensions": 256}, "does not produce 256 dimensions"),
        ({"capture": "polling"}, "capture must be 'trigger' or 'logical'"),
        ({"capture": "logical", "key_columns": ["name"]}, "are not the primary key"),
        ({"chunk_size": 50}, "chunk_size 50 is out of range"),
        ({"chunk_size": 200, "chunk_overlap": 150}, "chunk_overlap 150 must be"),
        ({"name": "Bad Name"}, "invalid sync name"),
        ({"key_columns": ["name"]}, "are not the primary key"),
        ({"key_columns": ["ghost"]}, 'key column "ghost" does not exist'),
    ],
)
def test_create_sync_refuses_bad_definitions(conn: psycopg.Connection[Any], overrides: dict[str, Any],
                                             message: str) -> None:
    with pytest.raises(psycopg.Error, match=message):
        _create(conn, **overrides)
    assert conn.execute("SELECT count(*) FROM s3vl.syncs").fetchone() == (0,)
    assert conn.execute("SELECT to_regclass('public.pwned')").fetchone() == (None,)


def test_table_without_primary_key_is_refused(conn: psycopg.Connection[Any]) -> None:
    conn.execute("CREATE TABLE nokey (a int, b text)")
    with pytest.raises(psycopg.Error, match="has no primary key") as err:
        _create(conn, source="nokey", text_expression="b", metadata_columns=[])
    assert err.value.diag.message_hint
    assert "primary key" in err.value.diag.message_hint


def test_create_installs_triggers_and_backfills(conn: psycopg.Connection[Any]) -> None:
    row = _create(conn)
    assert row is not None
    triggers = {r[0] for r in conn.execute("SELECT tgname FROM pg_trigger WHERE tgrelid = 'products'::regclass")}
    assert triggers == {"s3vl_products_ins", "s3vl_products_upd", "s3vl_products_del", "s3vl_products_trunc"}
    assert conn.execute("SELECT count(*), max(version) FROM s3vl.outbox").fetchone() == (5, 1)
    s = conn.execute("SELECT key_columns, read_columns, dimensions, length(embedding_version) FROM s3vl.syncs"
                     ).fetchone()
    assert s == (["id"], ["category", "description", "id", "name", "price"], 1024, 12)
    with pytest.raises(psycopg.Error, match='sync "products" already exists'):
        _create(conn)


def test_capture_coalesces_and_bumps_version(conn: psycopg.Connection[Any]) -> None:
    _create(conn, backfill=False)
    conn.execute("UPDATE products SET name = name || '!' WHERE id = 1")
    conn.execute("UPDATE products SET name = name || '!' WHERE id = 1")
    conn.execute("UPDATE products SET views = 10")  # not read by the sync
    assert conn.execute("SELECT key, version FROM s3vl.outbox").fetchall() == [("1", 2)]
    conn.execute("UPDATE products SET id = 50 WHERE id = 2")  # a key change: old key goes, new key comes
    conn.execute("DELETE FROM products WHERE id = 3")
    keys = {r[0]: r[1] for r in conn.execute("SELECT key, version FROM s3vl.outbox")}
    assert keys == {"1": 2, "2": 1, "50": 1, "3": 1}


def test_bulk_statement_enqueues_each_key_once(conn: psycopg.Connection[Any]) -> None:
    _create(conn, backfill=False)
    conn.execute("INSERT INTO products (id, name) SELECT g, 'bulk' FROM generate_series(100, 5099) g")
    assert conn.execute("SELECT count(*), max(version) FROM s3vl.outbox").fetchone() == (5000, 1)


def test_composite_keys_round_trip(conn: psycopg.Connection[Any]) -> None:
    conn.execute("CREATE TABLE docs (tenant text, id int, body text, PRIMARY KEY (tenant, id))")
    conn.execute("INSERT INTO docs VALUES ('a/b%c', 1, 'x'), ('t', 2, 'y')")
    _create(conn, name="docs", source="docs", text_expression="body", metadata_columns=[])
    keys = sorted(r[0] for r in conn.execute("SELECT key FROM s3vl.outbox"))
    assert keys == ["a%2Fb%25c/1", "t/2"]
    loaded = conn.execute("SELECT key, content FROM s3vl.load_rows('docs', %s) ORDER BY key", (keys,)).fetchall()
    assert loaded == [("a%2Fb%25c/1", "x"), ("t/2", "y")]
    with pytest.raises(psycopg.Error, match="does not match the key columns"):
        conn.execute("SELECT s3vl.enqueue('docs', ARRAY['t/notanint'])")


def test_hash_sql_matches_python(conn: psycopg.Connection[Any]) -> None:
    from sync.datapath.contract import content_hash

    _create(conn)
    conn.execute("UPDATE products SET description = 'ünïcødé ✓' WHERE id = 1")
    expr = conn.execute("SELECT s3vl.sync_hash_sql('products', 'p'), s3vl.sync_text_sql('products', 'p')").fetchone()
    assert expr is not None
    h, text = conn.execute(f"SELECT {expr[0]}, {expr[1]} FROM products p WHERE id = 1").fetchone()  # type: ignore[misc]
    assert h == content_hash(text)


def test_alter_sync_requeues_only_when_vectors_or_metadata_change(conn: psycopg.Connection[Any]) -> None:
    _create(conn, backfill=False)
    ev = conn.execute("SELECT embedding_version FROM s3vl.syncs").fetchone()
    conn.execute("SELECT s3vl.alter_sync('products', max_attempts => 3)")
    assert conn.execute("SELECT count(*) FROM s3vl.outbox").fetchone() == (0,)
    conn.execute("SELECT s3vl.alter_sync('products', metadata_columns => ARRAY['category'])")
    assert conn.execute("SELECT count(*) FROM s3vl.outbox").fetchone() == (5,)
    assert conn.execute("SELECT embedding_version FROM s3vl.syncs").fetchone() == ev
    conn.execute("SELECT s3vl.alter_sync('products', text_expression => 'name')")
    assert conn.execute("SELECT embedding_version FROM s3vl.syncs").fetchone() != ev
    assert conn.execute("SELECT read_columns FROM s3vl.syncs").fetchone() == (["category", "id", "name"],)
    with pytest.raises(psycopg.Error, match="must be of type text"):
        conn.execute("SELECT s3vl.alter_sync('products', text_expression => 'id')")
    with pytest.raises(psycopg.Error, match='sync "nope" does not exist'):
        conn.execute("SELECT s3vl.alter_sync('nope', max_attempts => 3)")


def test_drop_sync_removes_triggers_queue_and_state(conn: psycopg.Connection[Any]) -> None:
    _create(conn)
    assert conn.execute("SELECT s3vl.drop_sync('products')").fetchone() == (True,)
    assert conn.execute("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'products'::regclass").fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM s3vl.outbox").fetchone() == (0,)
    conn.execute("UPDATE products SET name = 'x'")  # no trigger left behind
    assert conn.execute("SELECT s3vl.drop_sync('products', if_exists => true)").fetchone() == (False,)
    with pytest.raises(psycopg.Error, match='sync "products" does not exist'):
        conn.execute("SELECT s3vl.drop_sync('products')")


def test_lease_skip_locked_and_fail_to_failed(conn: psycopg.Connection[Any]) -> None:
    _create(conn, max_attempts=2)
    a = conn.execute("SELECT key, version FROM s3vl.lease('a', 3, 60)").fetchall()
    b = conn.execute("SELECT key, version FROM s3vl.lease('b', 10, 60)").fetchall()
    assert len(a) == 3
    assert len(b) == 2
    assert not {k for k, _ in a} & {k for k, _ in b}
    key = a[0][0]
    fail = json.dumps([{"key": key, "version": 1, "error": "boom"}])
    conn.execute("SELECT s3vl.fail('products', 'a', %s::jsonb)", (fail,))
    assert conn.execute("SELECT status, attempts FROM s3vl.outbox WHERE key = %s", (key,)).fetchone() == ("pending", 1)
    conn.execute("SELECT s3vl.fail('products', 'a', %s::jsonb)", (fail,))
    assert conn.execute("SELECT status, attempts, last_error FROM s3vl.outbox WHERE key = %s", (key,)).fetchone() == (
        "failed", 2, "boom")
    assert conn.execute("SELECT failed FROM s3vl.sync_status").fetchone() == (1,)
    assert conn.execute("SELECT s3vl.retry_failed('products')").fetchone() == (1,)
    assert conn.execute("SELECT status, attempts FROM s3vl.outbox WHERE key = %s", (key,)).fetchone() == ("pending", 0)


def test_roles_can_use_what_they_should(conn: psycopg.Connection[Any], db_url: str) -> None:
    _create(conn)
    conn.execute("DROP ROLE IF EXISTS sync_test_writer")
    conn.execute("CREATE ROLE sync_test_writer")
    conn.execute("GRANT SELECT, INSERT, UPDATE, DELETE ON products TO sync_test_writer")
    try:
        conn.execute("SET ROLE sync_test_writer")
        conn.execute("INSERT INTO products (id, name) VALUES (999, 'by a writer with no s3vl rights')")
        with pytest.raises(psycopg.Error, match="permission denied"):
            conn.execute("SELECT * FROM s3vl.outbox")
        conn.execute("RESET ROLE")
        assert conn.execute("SELECT count(*) FROM s3vl.outbox WHERE key = '999'").fetchone() == (1,)
        conn.execute("GRANT s3vl_reader TO sync_test_writer")
        conn.execute("SET ROLE sync_test_writer")
        assert conn.execute("SELECT pending FROM s3vl.sync_status").fetchone() == (6,)
    finally:
        conn.execute("RESET ROLE")
        conn.execute("DROP OWNED BY sync_test_writer")
        conn.execute("DROP ROLE sync_test_writer")


def _capture_functions(conn: psycopg.Connection[Any]) -> set[str]:
    return {r[0] for r in conn.execute(
        "SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
        "WHERE n.nspname = 's3vl' AND p.proname LIKE '\\_capture\\_sync\\_%%'")}


def _trigger_functions(conn: psycopg.Connection[Any], table: str = "products") -> set[str]:
    return {r[0] for r in conn.execute("SELECT tgfoid::regprocedure::text FROM pg_trigger WHERE tgrelid = %s::regclass",
                                       (table,))}


def test_capture_function_is_generated_per_sync_and_dropped_with_it(conn: psycopg.Connection[Any]) -> None:
    _create(conn, backfill=False)
    assert _trigger_functions(conn) == {"s3vl._capture_sync_products()"}
    row = conn.execute(
        "SELECT proowner = (SELECT nspowner FROM pg_namespace WHERE nspname = 's3vl'), prosecdef, proconfig "
        "FROM pg_proc WHERE oid = 's3vl._capture_sync_products()'::regprocedure").fetchone()
    assert row == (True, True, ["search_path=pg_catalog, pg_temp", "work_mem=64MB"])
    conn.execute("SELECT s3vl.drop_sync('products')")
    assert _capture_functions(conn) == set()


def test_update_compares_read_columns_by_value(conn: psycopg.Connection[Any]) -> None:
    _create(conn, backfill=False)
    conn.execute("UPDATE products SET name = name, price = price, views = views + 1")  # nothing read changed
    conn.execute("UPDATE products SET description = NULL WHERE id = 4")
    conn.execute("UPDATE products SET price = price + 0.001 WHERE id = 5")  # numeric(10,2): rounds to the same
    assert conn.execute("SELECT key FROM s3vl.outbox").fetchall() == [("4",)]
    conn.execute("UPDATE products SET id = id * 10 WHERE id IN (1, 2)")  # keys move: old and new keys queued
    assert sorted(r[0] for r in conn.execute("SELECT key FROM s3vl.outbox")) == ["1", "10", "2", "20", "4"]


def test_alter_sync_regenerates_capture_for_new_read_columns(conn: psycopg.Connection[Any]) -> None:
    _create(conn, backfill=False)
    conn.execute("SELECT s3vl.alter_sync('products', text_expression => 'name', metadata_columns => '{}')")
    conn.execute("TRUNCATE s3vl.outbox")
    conn.execute("UPDATE products SET description = 'no longer read', category = 'x'")
    assert conn.execute("SELECT count(*) FROM s3vl.outbox").fetchone() == (0,)
    conn.execute("UPDATE products SET name = 'read' WHERE id = 2")
    assert conn.execute("SELECT key FROM s3vl.outbox").fetchall() == [("2",)]


def test_composite_key_change_enqueues_old_and_new(conn: psycopg.Connection[Any]) -> None:
    conn.execute("CREATE TABLE docs (tenant text, id numeric, body text, note text, PRIMARY KEY (tenant, id))")
    conn.execute("INSERT INTO docs VALUES ('a', 1, 'x', ''), ('b', 2, 'y', '')")
    _create(conn, name="docs", source="docs", text_expression="body", metadata_columns=[], backfill=False)
    conn.execute("UPDATE docs SET note = 'unread'")
    conn.execute("UPDATE docs SET tenant = 'a/c' WHERE id = 1")
    conn.execute("UPDATE docs SET id = 2.0 WHERE id = 2")  # equal as numeric, another key text
    assert sorted(r[0] for r in conn.execute("SELECT key FROM s3vl.outbox")) == ["a%2Fc/1", "a/1", "b/2", "b/2.0"]
    conn.execute("DELETE FROM docs")
    assert conn.execute("SELECT count(*), max(version) FROM s3vl.outbox").fetchone() == (4, 2)


def test_sync_deleted_without_drop_sync_queues_nothing(conn: psycopg.Connection[Any]) -> None:
    _create(conn)
    conn.execute("DELETE FROM s3vl.syncs")  # cascades to the outbox (no foreign key: s3vl._syncs_cascade)
    assert conn.execute("SELECT count(*) FROM s3vl.outbox").fetchone() == (0,)
    conn.execute("INSERT INTO products (id, name) VALUES (77, 'after')")
    conn.execute("UPDATE products SET name = 'x'")
    conn.execute("TRUNCATE products")
    assert conn.execute("SELECT count(*) FROM s3vl.outbox").fetchone() == (0,)


LEGACY_CAPTURE = """
CREATE FUNCTION s3vl._capture() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM s3vl.enqueue(TG_ARGV[0], ARRAY['424242']);
    RETURN NULL;
END $$
"""


def test_install_sql_moves_old_triggers_onto_generated_functions(conn: psycopg.Connection[Any], db_url: str) -> None:
    from sync.db import schema

    _create(conn, backfill=False)
    # the layout of an install before generated capture functions: one shared s3vl._capture(sync)
    conn.execute(LEGACY_CAPTURE)
    conn.execute("SELECT s3vl._drop_triggers(s) FROM s3vl.syncs s")
    conn.execute("DROP FUNCTION s3vl._capture_sync_products()")
    for op, ref in (("INSERT", "REFERENCING NEW TABLE AS s3vl_new"), ("UPDATE", "REFERENCING OLD TABLE AS s3vl_old "
                    "NEW TABLE AS s3vl_new"), ("DELETE", "REFERENCING OLD TABLE AS s3vl_old"), ("TRUNCATE", "")):
        suffix = {"INSERT": "ins", "UPDATE": "upd", "DELETE": "del", "TRUNCATE": "trunc"}[op]
        conn.execute(f"CREATE TRIGGER s3vl_products_{suffix} AFTER {op} ON products {ref} "
                     "FOR EACH STATEMENT EXECUTE FUNCTION s3vl._capture('products')")
    conn.execute("INSERT INTO products (id, name) VALUES (90, 'old')")
    assert conn.execute("SELECT key FROM s3vl.outbox").fetchall() == [("424242",)]
    conn.execute("DELETE FROM s3vl.outbox")

    schema.install(db_url)
    assert _trigger_functions(conn) == {"s3vl._capture_sync_products()"}
    assert {r[0] for r in conn.execute("SELECT tgname FROM pg_trigger WHERE tgrelid = 'products'::regclass")} == {
        "s3vl_products_ins", "s3vl_products_upd", "s3vl_products_del", "s3vl_products_trunc"}
    assert _capture_functions(conn) == {"_capture_sync_products"}
    assert conn.execute("SELECT to_regprocedure('s3vl._capture()')").fetchone() == (None,)
    conn.execute("INSERT INTO products (id, name) VALUES (91, 'new')")
    assert conn.execute("SELECT key FROM s3vl.outbox").fetchall() == [("91",)]
    schema.install(db_url)  # again: nothing to move, the function is regenerated in place
    assert _trigger_functions(conn) == {"s3vl._capture_sync_products()"}


def test_uninstall_takes_capture_triggers_and_functions(conn: psycopg.Connection[Any], db_url: str) -> None:
    from sync.db import schema

    _create(conn)
    schema.uninstall(db_url)
    assert conn.execute("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'products'::regclass").fetchone() == (0,)
    assert conn.execute("SELECT to_regnamespace('s3vl')").fetchone() == (None,)
    conn.execute("INSERT INTO products (id, name) VALUES (92, 'no sync any more')")


def test_key_swap_under_deferrable_key_and_upsert(conn: psycopg.Connection[Any]) -> None:
    conn.execute("CREATE TABLE tags (id int PRIMARY KEY DEFERRABLE INITIALLY DEFERRED, label text)")
    conn.execute("INSERT INTO tags VALUES (1, 'a'), (2, 'b'), (3, 'c')")
    conn.execute("INSERT INTO s3vl.indexes (name, index_arn, region, account_id, bucket_name, index_name, dimension) "
                 "VALUES ('tags', %s, 'us-west-2', '000000000000', 'bkt', 'tags', 1024)",
                 (ARN.replace("products", "tags"),))
    _create(conn, name="tags", source="tags", index_name="tags", text_expression="label", metadata_columns=[],
            backfill=False)
    conn.execute("UPDATE tags SET id = 3 - id WHERE id < 3")  # a swap: each key is both old and new
    assert conn.execute("SELECT key, version FROM s3vl.outbox ORDER BY key").fetchall() == [("1", 1), ("2", 1)]
    _create(conn, backfill=False)
    conn.execute("INSERT INTO products (id, name) VALUES (1, 'upserted'), (60, 'new') "
                 "ON CONFLICT (id) DO UPDATE SET name = excluded.name")
    assert conn.execute("SELECT key FROM s3vl.outbox WHERE sync_name = 'products' ORDER BY key").fetchall() == [
        ("1",), ("60",)]


def test_truncate_during_a_batch_requeues_its_keys(conn: psycopg.Connection[Any]) -> None:
    _create(conn)  # 5 rows queued, none in sync_state yet
    leased = conn.execute("SELECT key, version FROM s3vl.lease('w', 10, 60)").fetchall()
    assert len(leased) == 5
    conn.execute("TRUNCATE products")  # while the batch (rows loaded before it) is in flight
    results = json.dumps([{"key": k, "version": v, "content_hash": "h", "embedding_version": "e", "chunk_count": 1}
                          for k, v in leased])
    done = conn.execute("SELECT * FROM s3vl.complete('products', 'w', %s::jsonb)", (results,)).fetchone()
    assert done == (0, 5)  # not completed: the next pass finds the rows gone and deletes their vectors
    assert conn.execute("SELECT count(*) FROM s3vl.sync_state WHERE content_hash IS NULL").fetchone() == (5,)


def test_capture_function_cannot_be_borrowed_by_another_table(conn: psycopg.Connection[Any]) -> None:
    """Attaching a sync's capture function elsewhere must not let anyone queue keys into that sync."""
    _create(conn)
    fn = "s3vl._capture_sync_products()"
    conn.execute("TRUNCATE s3vl.outbox")
    # a superuser can still attach it, but it refuses to fire on a table that is not the source
    conn.execute("CREATE TABLE decoy (id int PRIMARY KEY, name text, description text, category text, price numeric)")
    conn.execute(f"CREATE TRIGGER borrow AFTER INSERT ON decoy REFERENCING NEW TABLE AS s3vl_new "
                 f"FOR EACH STATEMENT EXECUTE FUNCTION {fn}")
    refused = r"of sync products fired on table public\.decoy, which is not its source"
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match=refused):
        conn.execute("INSERT INTO decoy VALUES (999, 'x', 'y', 'c', 1)")
    assert conn.execute("SELECT count(*) FROM s3vl.outbox").fetchone() == (0,)
    # an ordinary role may not attach it at all (EXECUTE is s3vl_admin's only)
    conn.execute("DROP ROLE IF EXISTS s3vl_test_writer")
    conn.execute("CREATE ROLE s3vl_test_writer")
    conn.execute("GRANT USAGE, CREATE ON SCHEMA public TO s3vl_test_writer")
    try:
        conn.execute("SET ROLE s3vl_test_writer")
        conn.execute("CREATE TABLE mine (id int PRIMARY KEY, name text)")
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied"):
            conn.execute(f"CREATE TRIGGER borrow AFTER TRUNCATE ON mine FOR EACH STATEMENT EXECUTE FUNCTION {fn}")
    finally:
        conn.execute("RESET ROLE")
        conn.execute("DROP TABLE IF EXISTS mine")
        conn.execute("REVOKE ALL ON SCHEMA public FROM s3vl_test_writer")
        conn.execute("DROP ROLE s3vl_test_writer")
    # the real source still captures, whoever writes to it
    conn.execute("INSERT INTO products (id, name, description, category, price) VALUES (77, 'n', 'd', 'c', 1)")
    assert conn.execute("SELECT key FROM s3vl.outbox").fetchall() == [("77",)]


def test_an_s3vl_admin_who_is_not_superuser_manages_a_sync(conn: psycopg.Connection[Any]) -> None:
    conn.execute("DROP ROLE IF EXISTS sync_test_admin")
    conn.execute("CREATE ROLE sync_test_admin IN ROLE s3vl_admin")
    conn.execute("GRANT SELECT, TRIGGER ON products TO sync_test_admin")
    try:
        conn.execute("SET ROLE sync_test_admin")
        _create(conn)
        conn.execute("RESET ROLE")
        conn.execute("UPDATE products SET description = 'changed' WHERE id = 2")
        assert ("2",) in conn.execute("SELECT key FROM s3vl.outbox").fetchall()
        # PostgreSQL lets only a table's owner drop its triggers: so too with drop_sync
        conn.execute("SET ROLE sync_test_admin")
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="must be owner of relation products"):
            conn.execute("SELECT s3vl.drop_sync('products')")
        conn.execute("RESET ROLE")
        conn.execute("SELECT s3vl.drop_sync('products')")
    finally:
        conn.execute("RESET ROLE")
        conn.execute("DROP OWNED BY sync_test_admin")
        conn.execute("DROP ROLE sync_test_admin")
    assert _trigger_functions(conn) == set()
