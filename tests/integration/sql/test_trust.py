"""The trust boundary (README, Security model), tried as hostile and careless users would, each as a
real non-superuser login holding exactly the documented grants (tests/support/pg.py):

* no role gains a privilege through s3vl: not through a key type's cast (the capture trigger),
  not through a sync's expression (the worker), not through a generated function altered by
  its owner, not through direct writes to s3vl's tables;
* a sync's expressions run with its declarer's privileges, whoever calls them;
* readers do not see what they could not SELECT;
* one index has one sync; s3vl's own tables, temporary tables and dropped tables are named.

The escalation tests end by checking that no role's attributes or memberships changed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from tests.support.pg import ADMIN, READER, WORKER, TestCluster, as_login
from tests.support.syncenv import PRODUCTS_DDL

ARN = "arn:aws:s3vectors:us-west-2:000000000000:bucket/bkt/index/{}"
#: a worker login more privileged than any admin (CREATEROLE, SELECT on a table no admin reads):
#: what s3vl must never lend to an admin's SQL
PRIVILEGED_WORKER = "s3vl_test_priv_worker"
#: another admin, who may read nothing of the first admin's tables until granted
SECOND_ADMIN = "s3vl_test_admin2"


def _roles(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    """Every role's attributes and memberships: what an escalation would change."""
    return conn.execute(
        "SELECT r.rolname, r.rolsuper, r.rolcreaterole, r.rolcreatedb, r.rolreplication, r.rolbypassrls, "
        "ARRAY(SELECT b.rolname FROM pg_auth_members m JOIN pg_roles b ON b.oid = m.roleid "
        "      WHERE m.member = r.oid ORDER BY 1) FROM pg_roles r ORDER BY 1").fetchall()


@pytest.fixture
def su(db_url: str, pg_cluster: TestCluster) -> Iterator[psycopg.Connection[Any]]:
    """The superuser: sets the scene (registers indexes), then checks nothing escalated."""
    with psycopg.connect(db_url, autocommit=True) as c:
        c.execute(f"""DO $$ BEGIN
            IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{PRIVILEGED_WORKER}') THEN
                CREATE ROLE {PRIVILEGED_WORKER} LOGIN CREATEROLE IN ROLE s3vl_worker;
            END IF;
            IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{SECOND_ADMIN}') THEN
                CREATE ROLE {SECOND_ADMIN} LOGIN IN ROLE s3vl_admin;
            END IF; END $$""")
        for name in ("products", "other", "tags"):
            c.execute("INSERT INTO s3vl.indexes (name, index_arn, region, account_id, bucket_name, index_name, "
                      "dimension) VALUES (%s, %s, 'us-west-2', '000000000000', 'bkt', %s, 256)",
                      (name, ARN.format(name), name))
        c.execute("CREATE TABLE public.secrets (v text)")
        c.execute("INSERT INTO public.secrets VALUES ('the worker may read this, no admin may')")
        c.execute(f"GRANT SELECT ON public.secrets TO {PRIVILEGED_WORKER}")
        before = _roles(c)
        yield c
        assert _roles(c) == before, "a role's attributes or memberships changed"


def _login(db_url: str, role: str) -> psycopg.Connection[Any]:
    return psycopg.connect(as_login(db_url, role), autocommit=True)


@pytest.fixture
def admin(db_url: str, su: psycopg.Connection[Any]) -> Iterator[psycopg.Connection[Any]]:
    with _login(db_url, ADMIN) as c:
        c.execute(PRODUCTS_DDL)
        c.execute("INSERT INTO products (id, name, description, category, price) "
                  "SELECT g, 'p' || g, 'd' || g, 'c', g FROM generate_series(1, 5) g")
        yield c


def _create(conn: psycopg.Connection[Any], **overrides: Any) -> Any:
    args: dict[str, Any] = {"name": "products", "source": "public.products", "index_name": "products",
                            "text_expression": "name || ' ' || coalesce(description, '')",
                            "metadata_columns": ["category", "price"], "dimensions": 256}
    args.update(overrides)
    named = ", ".join(f"{k} => %({k})s" for k in args)
    return conn.execute(f"SELECT * FROM s3vl.create_sync({named})", args).fetchone()


def _load(db_url: str, role: str, keys: list[str], sync: str = "products") -> list[tuple[Any, ...]]:
    with _login(db_url, role) as c:
        return c.execute("SELECT key, content, error FROM s3vl.load_v2(%s, %s) ORDER BY key", (sync, keys)).fetchall()


# --- privilege escalation ----------------------------------------------------------------------
def test_a_user_type_key_cannot_make_its_owner_superuser(admin: psycopg.Connection[Any]) -> None:
    """Issue 11's exploit: a key whose cast to text is the admin's own function, run by the
    SECURITY DEFINER capture trigger. Keys must be of built-in types, and temporary tables are
    refused, so the trigger is never attached."""
    admin.execute("CREATE TYPE pg_temp.k2 AS (v int)")
    admin.execute(f"""CREATE FUNCTION pg_temp.k2_to_text(pg_temp.k2) RETURNS text LANGUAGE plpgsql AS $$
        BEGIN IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
          EXECUTE 'ALTER ROLE {ADMIN} SUPERUSER'; END IF; RETURN ($1).v::text; END $$""")
    admin.execute("CREATE CAST (pg_temp.k2 AS text) WITH FUNCTION pg_temp.k2_to_text(pg_temp.k2)")
    admin.execute("CREATE TEMP TABLE esc2 (id pg_temp.k2 PRIMARY KEY, body text)")
    with pytest.raises(psycopg.errors.WrongObjectType, match="temporary table"):
        _create(admin, name="esc2", source="pg_temp.esc2", text_expression="body", metadata_columns=[])
    # the same with a permanent table and types of the admin's own
    admin.execute("CREATE TYPE public.k3 AS (v int)")
    admin.execute("CREATE DOMAIN public.k4 AS int CHECK (VALUE > 0)")
    admin.execute("CREATE TYPE public.k5 AS ENUM ('a', 'b')")
    for typ in ("public.k3", "public.k4", "public.k5"):
        admin.execute(f"CREATE TABLE public.esc_{typ[-2:]} (id {typ} PRIMARY KEY, body text)")
        with pytest.raises(psycopg.errors.InvalidTableDefinition, match="must be of PostgreSQL's built-in types"):
            _create(admin, name=f"esc_{typ[-2:]}", source=f"public.esc_{typ[-2:]}", index_name="other",
                    text_expression="body", metadata_columns=[])
    assert admin.execute("SELECT count(*) FROM pg_trigger WHERE tgname LIKE 's3vl_esc%'").fetchone() == (0,)


def test_a_syncs_expression_runs_as_its_declarer_not_as_the_worker(db_url: str, admin: psycopg.Connection[Any]) -> None:
    """An admin's function in text_expression tries what only the (privileged) worker login may
    do: grant itself CREATEROLE, read a table only the worker may read. It runs as the admin."""
    admin.execute(f"""CREATE FUNCTION public.probe(x text) RETURNS text LANGUAGE plpgsql AS $$
        DECLARE got text;
        BEGIN
            BEGIN EXECUTE 'ALTER ROLE {ADMIN} CREATEROLE'; got := 'granted';
            EXCEPTION WHEN insufficient_privilege THEN got := 'refused'; END;
            BEGIN got := got || ' ' || (SELECT v FROM public.secrets LIMIT 1);
            EXCEPTION WHEN insufficient_privilege THEN got := got || ' secrets unreadable'; END;
            RETURN current_user || ': ' || got || ' ' || x;
        END $$""")
    _create(admin, text_expression="public.probe(name)")
    # the worker's one read per batch, the v1 read, the backfill scan and reconcile's source scan
    rows = _load(db_url, PRIVILEGED_WORKER, ["1", "2"])
    assert rows == [("1", f"{ADMIN}: refused secrets unreadable p1", None),
                    ("2", f"{ADMIN}: refused secrets unreadable p2", None)]
    with _login(db_url, PRIVILEGED_WORKER) as w:
        assert w.execute("SELECT content FROM s3vl.load_rows('products', ARRAY['3'])").fetchone() == (
            f"{ADMIN}: refused secrets unreadable p3",)
        assert w.execute("SELECT s3vl.resync('products')").fetchone() == (5,)
        assert w.execute("SELECT count(*) FROM s3vl.reconcile_source('products')").fetchone() == (5,)
    # an expression that is one subquery reading passwords is refused outright
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="may not contain a subquery"):
        admin.execute("SELECT s3vl.alter_sync('products', text_expression => "
                      "$$(SELECT string_agg(rolname || ':' || rolpassword, ',') FROM pg_authid)$$, store_text => true)")


def test_a_generated_function_altered_by_its_owner_refuses_to_run(db_url: str, admin: psycopg.Connection[Any]) -> None:
    """The declarer owns its sync's functions and may ALTER them, e.g. to SECURITY INVOKER so
    that they run as their caller (the worker). Their guard stops them first."""
    admin.execute(f"""CREATE FUNCTION public.as_caller(x text) RETURNS text LANGUAGE plpgsql AS $$
        BEGIN EXECUTE 'ALTER ROLE {ADMIN} CREATEROLE'; RETURN x; END $$""")
    _create(admin, text_expression="public.as_caller(name)")
    owner = admin.execute("SELECT proowner::regrole::text FROM pg_proc WHERE proname = '_gen_rows_products'")
    assert owner.fetchone() == (ADMIN,)
    admin.execute("ALTER FUNCTION s3vl._gen_rows_products(text[]) SECURITY INVOKER")
    admin.execute("ALTER FUNCTION s3vl._gen_scan_products(boolean, text, bigint) SECURITY INVOKER")
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="run only as the role that declared it"):
        _load(db_url, PRIVILEGED_WORKER, ["1"])
    with _login(db_url, PRIVILEGED_WORKER) as w, pytest.raises(psycopg.errors.InsufficientPrivilege):
        w.execute("SELECT s3vl.resync('products')")
    # and it cannot replace their bodies: it has no CREATE on schema s3vl
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied for schema s3vl"):
        admin.execute("CREATE OR REPLACE FUNCTION s3vl._gen_rows_products(keys text[]) RETURNS TABLE "
                      "(s3vl_key text, s3vl_content text, s3vl_metadata jsonb, s3vl_hash text) "
                      "LANGUAGE sql AS 'SELECT NULL::text, NULL::text, NULL::jsonb, NULL::text'")
    # re-declaring regenerates them, guarded again
    admin.execute("SELECT s3vl.alter_sync('products', text_expression => 'name')")
    assert _load(db_url, PRIVILEGED_WORKER, ["1"]) == [("1", "p1", None)]


@pytest.mark.parametrize("role", [ADMIN, WORKER, READER])
@pytest.mark.parametrize("statement", [
    "UPDATE s3vl.syncs SET text_expression = 'description'",
    "DELETE FROM s3vl.syncs",
    "INSERT INTO s3vl.outbox (sync_name, key) VALUES ('products', '99')",
    "UPDATE s3vl.outbox SET status = 'failed'",
    "DELETE FROM s3vl.sync_state",
    "UPDATE s3vl.reconcile_runs SET report = '{}'",
    "UPDATE s3vl.indexes SET index_arn = 'x'",
    "UPDATE s3vl.config SET lambda_arn = 'x'",
    "INSERT INTO s3vl.migrations VALUES ('x', 'x', 'x')",
])
def test_no_role_writes_s3vls_tables_directly(db_url: str, admin: psycopg.Connection[Any], role: str,
                                              statement: str) -> None:
    """Definitions change only through validated functions: an UPDATE of s3vl.syncs would bypass
    create_sync's checks (issue 11: a text_expression reading pg_authid into vectors)."""
    _create(admin)
    with _login(db_url, role) as c, pytest.raises(psycopg.errors.InsufficientPrivilege):
        c.execute(statement)


def test_declaring_through_the_internal_function_still_records_the_caller(
        db_url: str, admin: psycopg.Connection[Any], su: psycopg.Connection[Any]) -> None:
    """s3vl._declare_sync is callable by admins (create_sync calls it for them); called directly,
    it still records the calling login as the owner, so a skipped check can only produce a sync
    that runs with its declarer's own privileges."""
    _create(admin, backfill=False)
    s = admin.execute("SELECT s FROM s3vl.syncs s WHERE name = 'products'").fetchone()
    assert s is not None
    admin.execute("SELECT s3vl.drop_sync('products')")
    admin.execute("SELECT s3vl._declare_sync(%s::s3vl.syncs, ARRAY['name'])", (s[0],))
    assert su.execute("SELECT owner::text FROM s3vl.syncs").fetchone() == (ADMIN,)
    assert su.execute("SELECT DISTINCT proowner::regrole::text FROM pg_proc WHERE proname LIKE '\\_%\\_products'"
                      " AND proname <> '_capture_sync_products'").fetchall() == [(ADMIN,)]
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        admin.execute("SELECT s3vl._store_sync(s, ARRAY['name'], 'postgres'::regrole) FROM s3vl.syncs s")


def test_a_sync_declared_over_columns_its_declarer_cannot_read_is_refused(db_url: str, admin: psycopg.Connection[Any],
                                                                          su: psycopg.Connection[Any]) -> None:
    su.execute("CREATE TABLE public.staff (id int PRIMARY KEY, bio text, salary numeric)")
    su.execute(f"GRANT SELECT (id, bio), TRIGGER ON public.staff TO {ADMIN}")
    with pytest.raises(psycopg.errors.InsufficientPrivilege,
                       match=f"role {ADMIN} may not read column\\(s\\) salary of public.staff") as err:
        _create(admin, name="staff", source="public.staff", text_expression="bio", metadata_columns=["salary"])
    assert err.value.diag.message_hint == (f"GRANT SELECT (salary) ON public.staff TO {ADMIN}, "
                                           "or have a role that may read them declare the sync.")
    _create(admin, name="staff", source="public.staff", text_expression="bio", metadata_columns=[])


def test_another_admin_changing_what_a_sync_exposes_becomes_its_owner(db_url: str, admin: psycopg.Connection[Any],
                                                                       su: psycopg.Connection[Any]) -> None:
    """An admin cannot make another's sync copy more of a table into an index than its owner chose:
    changing the text, the metadata or storing the text makes the caller the owner, checked as such."""
    _create(admin)
    with _login(db_url, SECOND_ADMIN) as other:
        other.execute("SELECT s3vl.alter_sync('products', max_attempts => 3)")   # keeps the owner
        assert other.execute("SELECT owner::text FROM s3vl.syncs").fetchone() == (ADMIN,)
        for change in ("store_text => true", "metadata_columns => ARRAY['category']",
                       "text_expression => 'name'"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied for table products"):
                other.execute(f"SELECT s3vl.alter_sync('products', {change})")
        assert other.execute("SELECT owner::text, store_text FROM s3vl.syncs").fetchone() == (ADMIN, False)
    admin.execute(f"GRANT SELECT ON products TO {SECOND_ADMIN}")
    with _login(db_url, SECOND_ADMIN) as other:
        other.execute("SELECT s3vl.alter_sync('products', store_text => true)")
        assert other.execute("SELECT owner::text FROM s3vl.syncs").fetchone() == (SECOND_ADMIN,)
        owners = other.execute("SELECT DISTINCT proowner::regrole::text FROM pg_proc "
                               "WHERE proname IN ('_gen_rows_products', '_gen_scan_products')").fetchall()
        assert owners == [(SECOND_ADMIN,)]


# --- what readers see ------------------------------------------------------------------------------
def test_readers_do_not_see_error_text_quoting_values_they_cannot_read(db_url: str, admin: psycopg.Connection[Any],
                                                                       su: psycopg.Connection[Any]) -> None:
    admin.execute("ALTER TABLE products ADD COLUMN code text")
    admin.execute("UPDATE products SET code = 'topsecret' WHERE id = 3")
    admin.execute("UPDATE products SET code = '7' WHERE id <> 3")
    _create(admin, text_expression="name || (code::int + 1)::text", max_attempts=1)
    assert _load(db_url, WORKER, ["3"])[0][2] == (
        'rendering the row failed: invalid input syntax for type integer: "topsecret" (SQLSTATE 22P02)')
    su.execute("UPDATE s3vl.outbox SET status = 'failed', last_error = 'invalid input syntax for type integer: "
               "\"topsecret\"' WHERE key = '3'")

    def seen(role: str) -> Any:
        with _login(db_url, role) as c:
            return c.execute("SELECT last_error FROM s3vl.sync_failures").fetchone()[0]  # type: ignore[index]

    assert "topsecret" in seen(ADMIN)                       # the table's owner
    assert seen(READER).startswith("(hidden: the error may quote values of public.products")
    assert seen(WORKER).startswith("(hidden:")
    admin.execute(f"GRANT SELECT ON products TO {READER}")   # a reader who may read the table sees it
    assert "topsecret" in seen(READER)


# --- integrity -------------------------------------------------------------------------------------
def test_one_index_has_one_sync(admin: psycopg.Connection[Any]) -> None:
    _create(admin)
    admin.execute("CREATE TABLE public.tags (id int PRIMARY KEY, label text)")
    with pytest.raises(psycopg.errors.DuplicateObject, match='index "products" is already written by sync "products"'):
        _create(admin, name="tags", source="public.tags", text_expression="label", metadata_columns=[])
    _create(admin, name="tags", source="public.tags", index_name="tags", text_expression="label", metadata_columns=[])
    with pytest.raises(psycopg.errors.DuplicateObject, match="already written by sync"):
        admin.execute("SELECT s3vl.alter_sync('tags', index_name => 'products')")
    # a second sync of the same source into another index is fine (a hot subset in pgvector, say)
    _create(admin, name="products_hot", index_name="other", backfill=False)


def test_sources_s3vl_cannot_sync_are_named(admin: psycopg.Connection[Any]) -> None:
    with pytest.raises(psycopg.errors.WrongObjectType, match="s3vl's own tables"):
        _create(admin, name="loop", source="s3vl.outbox", text_expression="key", metadata_columns=[])
    with pytest.raises(psycopg.errors.WrongObjectType, match="PostgreSQL's or s3vl's own tables"):
        _create(admin, name="cat", source="pg_catalog.pg_class", text_expression="relname", metadata_columns=[])


def test_a_composite_columns_field_is_a_column_of_the_row(admin: psycopg.Connection[Any]) -> None:
    admin.execute("CREATE TYPE public.address AS (street text, city text)")
    admin.execute("CREATE TABLE public.shops (id int PRIMARY KEY, addr public.address)")
    admin.execute("INSERT INTO shops VALUES (1, ROW('Main St', 'Springfield'))")
    row = _create(admin, name="shops", source="public.shops", text_expression="(addr).city", metadata_columns=[])
    assert row is not None
    assert admin.execute("SELECT read_columns FROM s3vl.syncs WHERE name = 'shops'").fetchone() == (["addr", "id"],)


def test_a_dropped_source_is_named_where_it_is_used(db_url: str, admin: psycopg.Connection[Any]) -> None:
    _create(admin)
    admin.execute("DROP TABLE products")
    with pytest.raises(psycopg.errors.UndefinedTable,
                       match=r'the source table public\.products of sync "products" no longer exists'):
        admin.execute("SELECT s3vl.enqueue('products', ARRAY['1'])")
    with pytest.raises(psycopg.errors.UndefinedTable, match="no longer exists"):
        _load(db_url, WORKER, ["1"])
    assert admin.execute("SELECT s3vl.drop_sync('products')").fetchone() == (True,)


# --- an installer that is not a superuser (Aurora's master user) -------------------------------
def test_a_non_superuser_installer_hands_the_generated_functions_over(pg_cluster: TestCluster) -> None:
    """On Aurora the schema's owner is no superuser: it must be a member of the declaring role to
    give it the functions, and the role must hold CREATE on s3vl to own them. Both are granted for
    the hand-over only."""
    from sync.db import schema

    installer = "s3vl_test_installer"
    with pg_cluster.admin() as c:
        c.execute(f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{installer}') THEN "
                  f"CREATE ROLE {installer} LOGIN CREATEROLE; END IF; END $$")
    url = pg_cluster.create_database(installed=False)
    name = url.rsplit("/", 1)[1]
    try:
        with pg_cluster.admin() as c:
            c.execute(f'ALTER DATABASE "{name}" OWNER TO {installer}')
        with psycopg.connect(url, autocommit=True) as c:
            c.execute(f"ALTER SCHEMA public OWNER TO {installer}")
        schema.install(as_login(url, installer))
        with psycopg.connect(as_login(url, installer), autocommit=True) as c:
            c.execute(f"GRANT CREATE ON SCHEMA public TO {ADMIN}")
            c.execute("INSERT INTO s3vl.indexes (name, index_arn, region, account_id, bucket_name, index_name, "
                      "dimension) VALUES ('products', %s, 'us-west-2', '000000000000', 'bkt', 'products', 256)",
                      (ARN.format("products"),))
        with _login(url, ADMIN) as a:
            a.execute(PRODUCTS_DDL)
            a.execute("INSERT INTO products (id, name) VALUES (1, 'one')")
            _create(a)
        with psycopg.connect(url, autocommit=True) as c:
            owners = c.execute("SELECT proname::text, proowner::regrole::text FROM pg_proc WHERE proname IN "
                               "('_gen_rows_products', '_gen_scan_products', '_capture_sync_products') "
                               "ORDER BY 1").fetchall()
            assert owners == [("_capture_sync_products", installer), ("_gen_rows_products", ADMIN),
                              ("_gen_scan_products", ADMIN)]
            assert c.execute("SELECT pg_has_role(%s, %s, 'MEMBER'), has_schema_privilege(%s, 's3vl', 'CREATE')",
                             (installer, ADMIN, ADMIN)).fetchone() == (False, False)
        assert _load(url, WORKER, ["1"]) == [("1", "one ", None)]
    finally:
        pg_cluster.drop_database(url)
