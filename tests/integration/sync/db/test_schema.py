"""``s3vl install-sql``: versioned, re-runnable, transactional; uninstall leaves nothing."""

from __future__ import annotations

import threading
from pathlib import Path

import psycopg
import pytest

from sync.db import schema
from sync.errors import DatabaseUnavailableError, SchemaError
from tests.support.pg import TestCluster


def _sql_dir(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, body in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body)
    return tmp_path


FILES = {
    "incremental/000-a.sql": "CREATE TABLE s3vl.a (id int PRIMARY KEY);",
    "incremental/001-b.sql": "ALTER TABLE s3vl.a ADD COLUMN b text;",
    "idempotent/000-f.sql": "CREATE OR REPLACE FUNCTION s3vl.f() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;",
}


def _migrations(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [r[0] for r in conn.execute("SELECT name FROM s3vl.migrations ORDER BY name").fetchall()]


def test_rerun_applies_each_migration_once(empty_db_url: str, tmp_path: Path) -> None:
    sql_dir = _sql_dir(tmp_path, FILES)
    first = schema.install(empty_db_url, sql_dir)
    assert first.applied == ["incremental/000-a.sql", "incremental/001-b.sql"]
    second = schema.install(empty_db_url, sql_dir)
    assert second.applied == []
    assert second.skipped == first.applied
    assert second.idempotent == ["idempotent/000-f.sql"]
    assert _migrations(empty_db_url) == first.applied


def test_new_migration_applies_on_upgrade(empty_db_url: str, tmp_path: Path) -> None:
    sql_dir = _sql_dir(tmp_path, FILES)
    schema.install(empty_db_url, sql_dir)
    _sql_dir(tmp_path, {"incremental/002-c.sql": "INSERT INTO s3vl.a VALUES (1, 'one');"})
    assert schema.install(empty_db_url, sql_dir).applied == ["incremental/002-c.sql"]
    with psycopg.connect(empty_db_url) as conn:
        assert conn.execute("SELECT b FROM s3vl.a").fetchall() == [("one",)]


def test_edited_migration_is_reported_not_rerun(empty_db_url: str, tmp_path: Path) -> None:
    sql_dir = _sql_dir(tmp_path, FILES)
    schema.install(empty_db_url, sql_dir)
    (sql_dir / "incremental/001-b.sql").write_text("ALTER TABLE s3vl.a ADD COLUMN b2 text;")
    report = schema.install(empty_db_url, sql_dir)
    assert report.changed == ["incremental/001-b.sql"]
    assert report.applied == []


def test_reworded_comments_are_not_a_change(empty_db_url: str, tmp_path: Path) -> None:
    sql_dir = _sql_dir(tmp_path, FILES)
    schema.install(empty_db_url, sql_dir)
    body = (sql_dir / "incremental/001-b.sql").read_text()
    (sql_dir / "incremental/001-b.sql").write_text(f"-- why this file exists, reworded\n\n{body}\n  -- and a note\n")
    report = schema.install(empty_db_url, sql_dir)
    assert report.changed == []
    assert report.skipped == ["incremental/000-a.sql", "incremental/001-b.sql"]


def test_failure_rolls_back_everything(empty_db_url: str, tmp_path: Path) -> None:
    sql_dir = _sql_dir(tmp_path, {**FILES, "idempotent/001-bad.sql": "SELECT * FROM s3vl.no_such_table;"})
    with pytest.raises(
        SchemaError, match=r'idempotent/001-bad.sql failed: relation "s3vl.no_such_table" does not exist'
    ):
        schema.install(empty_db_url, sql_dir)
    with psycopg.connect(empty_db_url) as conn:
        assert conn.execute("SELECT to_regnamespace('s3vl')").fetchone() == (None,)


def test_concurrent_installs_serialize(empty_db_url: str, tmp_path: Path) -> None:
    sql_dir = _sql_dir(tmp_path, FILES)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            schema.install(empty_db_url, sql_dir)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert _migrations(empty_db_url) == ["incremental/000-a.sql", "incremental/001-b.sql"]


def test_unreachable_database_is_a_clear_error() -> None:
    with pytest.raises(DatabaseUnavailableError, match=r"^database unavailable: connection failed"):
        schema.install("postgresql://nobody@127.0.0.1:1/none?connect_timeout=1")


def test_real_schema_installs_twice_and_uninstalls_cleanly(pg_cluster: TestCluster, empty_db_url: str) -> None:
    schema.install(empty_db_url)
    again = schema.install(empty_db_url)
    assert again.applied == []
    schema.uninstall(empty_db_url)
    with psycopg.connect(empty_db_url) as conn:
        assert conn.execute("SELECT to_regnamespace('s3vl')").fetchone() == (None,)
        leftovers = conn.execute(
            "SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 's3vl'"
        ).fetchone()
        assert leftovers == (0,)


def test_print_renders_a_complete_script(empty_db_url: str) -> None:
    script = schema.render_install_script()
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        conn.execute(script.encode())
        names = {r[0] for r in conn.execute("SELECT name FROM s3vl.migrations").fetchall()}
    assert names == {f.name for f in schema.sql_files("incremental")}
