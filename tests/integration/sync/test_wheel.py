"""The production package as a user gets it: a wheel, installed into a fresh venv with core requirements only.

It must carry sql/ (and the retry codes shared with the Lambda) as real files, install the schema
into a real database, and say in one line what to install when a local-stack command is used.
Needs PyPI (or pip's cache) for the core requirements, as ``./run setup`` does.
"""

from __future__ import annotations

import json
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import psycopg
import pytest

from tests.support.paths import REPO
from tests.support.pg import TestCluster

pytestmark = pytest.mark.slow

#: Distributions only the local stack needs: a core install must not pull any of them in.
LOCAL_ONLY = {"s3vl-local", "werkzeug", "tokenizers", "safetensors"}


def _run(*args: str | Path, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=300, check=False)
    if check and done.returncode != 0:
        pytest.fail(f"{' '.join(map(str, args))} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done


@pytest.fixture(scope="module")
def core_install(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the built wheel, the fresh venv's bin/ with that wheel and its requirements installed)."""
    root = tmp_path_factory.mktemp("wheel")
    dist = root / "dist"
    _run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", dist, REPO, cwd=root)
    wheel = next(dist.glob("s3vl-*.whl"))
    venv.EnvBuilder(with_pip=True).create(root / "venv")
    bin_dir = root / "venv" / "bin"
    _run(bin_dir / "python", "-m", "pip", "install", "--quiet", wheel, cwd=root)
    return wheel, bin_dir


def test_the_wheel_carries_sql_as_real_files(core_install: tuple[Path, Path]) -> None:
    wheel, _ = core_install
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        for path in REPO.glob("sql/**/*.sql"):
            member = "sync/sql/" + path.relative_to(REPO / "sql").as_posix()
            assert member in names, member
            assert zf.read(member) == path.read_bytes(), member  # the file itself, not a link
        codes = zf.read("sync/aws/retryable_codes.json")
        assert codes == (REPO / "lambda" / "s3vl_query" / "retryable_codes.json").read_bytes()
        assert not any(n.startswith(("s3vl_local/", "tests/", "lambda/")) for n in names)


def test_a_core_install_has_no_local_stack_requirement(core_install: tuple[Path, Path], tmp_path: Path) -> None:
    _, bin_dir = core_install
    listed = _run(bin_dir / "python", "-m", "pip", "list", "--format", "json", cwd=tmp_path)
    installed = {d["name"].lower() for d in json.loads(listed.stdout)}
    assert "s3vl" in installed
    assert not installed & LOCAL_ONLY
    _run(bin_dir / "python", "-m", "pip", "check", cwd=tmp_path)


def test_install_sql_from_the_wheel(core_install: tuple[Path, Path], pg_cluster: TestCluster,
                                    tmp_path: Path) -> None:
    _, bin_dir = core_install
    printed = _run(bin_dir / "s3vl", "install-sql", "--print", cwd=tmp_path).stdout
    assert printed.startswith("BEGIN;")
    assert printed.rstrip().endswith("COMMIT;")
    assert "-- incremental/203-sync-trust.sql" in printed
    assert "-- idempotent/900-grants.sql" in printed
    url = pg_cluster.create_database(installed=False)
    try:
        _run(bin_dir / "s3vl", "install-sql", "--database-url", url, cwd=tmp_path)
        with psycopg.connect(url) as conn:
            applied = conn.execute("SELECT count(*) FROM s3vl.migrations").fetchone()
            assert applied == (len(list(REPO.glob("sql/incremental/*.sql"))),)
    finally:
        pg_cluster.drop_database(url)


def test_worker_help_from_the_wheel(core_install: tuple[Path, Path], tmp_path: Path) -> None:
    _, bin_dir = core_install
    assert "--batch-size" in _run(bin_dir / "s3vl", "worker", "--help", cwd=tmp_path).stdout


@pytest.mark.parametrize("command", [["dev", "up"], ["demo"]])
def test_local_stack_commands_say_what_to_install(core_install: tuple[Path, Path], tmp_path: Path,
                                                  command: list[str]) -> None:
    _, bin_dir = core_install
    done = _run(bin_dir / "s3vl", *command, cwd=tmp_path, check=False)
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "install s3vl-local" in lines[0]
