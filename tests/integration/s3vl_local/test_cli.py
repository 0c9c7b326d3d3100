"""``s3vl dev up | status | env | down`` as a user runs them: a real subprocess each time."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator

import psycopg
import pytest

from s3vl_local.processes import free_port
from tests.support.pg import make_root

pytestmark = pytest.mark.slow


@pytest.fixture
def dev_env() -> Iterator[dict[str, str]]:
    root = make_root("s3vl-dev-")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("S3VL_", "AWS_"))},
        "S3VL_DATA_DIR": str(root),
        "S3VL_DEV_PG_PORT": str(free_port()),
        "S3VL_DEV_ENDPOINT_PORT": str(free_port()),
        "S3VL_LOG_FORMAT": "json",
    }
    yield env
    subprocess.run([sys.executable, "-m", "sync", "dev", "down", "--purge"], env=env, check=False, capture_output=True)
    shutil.rmtree(root, ignore_errors=True)


def s3vl(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sync", *args], env=env, capture_output=True, text=True, check=False)


def parse_exports(text: str) -> dict[str, str]:
    out = subprocess.run(["bash", "-c", f"{text}\nenv -0"], capture_output=True, text=True, check=True, env={}).stdout
    return dict(item.split("=", 1) for item in out.split("\0") if "=" in item)


def test_up_env_psql_twice_then_down(dev_env: dict[str, str]) -> None:
    for _ in range(2):  # the acceptance check, twice in a row
        up = s3vl(dev_env, "dev", "up")
        assert up.returncode == 0, up.stderr
        env = s3vl(dev_env, "dev", "env")
        assert env.returncode == 0, env.stderr
        exported = parse_exports(env.stdout)
        assert exported["AWS_ENDPOINT_URL"] == f"http://127.0.0.1:{dev_env['S3VL_DEV_ENDPOINT_PORT']}"
        assert exported["AWS_REGION"] == "us-west-2"
        assert exported["S3VL_LAMBDA_FUNCTION_ARN"] == "arn:aws:lambda:us-west-2:000000000000:function:s3vl-query"
        psql = subprocess.run(
            ["psql", exported["S3VL_DATABASE_URL"], "-Atc", "select 1"], capture_output=True, text=True, check=False
        )
        assert psql.stdout.strip() == "1", psql.stderr

    status = s3vl(dev_env, "dev", "status", "--json")
    assert status.returncode == 0, status.stderr
    facts = json.loads(status.stdout)
    assert facts["postgres"]["running"] is True
    assert facts["endpoint"]["running"] is True
    assert facts["postgres"]["port"] == int(dev_env["S3VL_DEV_PG_PORT"])

    with psycopg.connect(exported["S3VL_DATABASE_URL"], autocommit=True) as conn:
        conn.execute("CREATE TABLE survives (v int)")
    down = s3vl(dev_env, "dev", "down")
    assert down.returncode == 0, down.stderr
    stopped = s3vl(dev_env, "dev", "status")
    assert stopped.returncode == 3
    assert "stopped" in stopped.stdout
    assert s3vl(dev_env, "dev", "up").returncode == 0
    with psycopg.connect(exported["S3VL_DATABASE_URL"]) as conn:
        assert conn.execute("SELECT to_regclass('survives')").fetchone() == ("survives",)


def test_port_in_use_message(dev_env: dict[str, str]) -> None:
    import socket

    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", int(dev_env["S3VL_DEV_PG_PORT"])))
        squatter.listen()
        up = s3vl(dev_env, "dev", "up")
    assert up.returncode == 1
    last = up.stderr.strip().splitlines()[-1]
    assert last == (
        f"s3vl: error: port {dev_env['S3VL_DEV_PG_PORT']} is in use by another process; "
        "stop it or choose another port with S3VL_DEV_PG_PORT"
    )


def test_install_sql_without_database_says_how_to_fix(dev_env: dict[str, str]) -> None:
    result = s3vl(dev_env, "install-sql")
    assert result.returncode == 2
    assert "set S3VL_DATABASE_URL (or --database-url), or start the local stack with 's3vl dev up'" in result.stderr


def test_print_install_script_needs_no_database(dev_env: dict[str, str]) -> None:
    result = s3vl(dev_env, "install-sql", "--print")
    assert result.returncode == 0
    assert result.stdout.startswith("BEGIN;")
    assert result.stdout.rstrip().endswith("COMMIT;")


def test_bad_flag_value_is_one_line(dev_env: dict[str, str]) -> None:
    result = s3vl(dev_env, "dev", "up", "--embedder", "gpt")
    assert result.returncode == 2
    assert "invalid choice: 'gpt'" in result.stderr


