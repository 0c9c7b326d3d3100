"""The private PostgreSQL cluster behind ``s3vl dev up``: lifecycle, data kept, clear errors."""

from __future__ import annotations

import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from s3vl_local.cluster import Cluster
from s3vl_local.errors import LocalStackError
from s3vl_local.processes import free_port
from tests.support.pg import make_root


@pytest.fixture
def root() -> Iterator[Path]:
    path = make_root("s3vl-cluster-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_up_twice_down_up_keeps_data(root: Path) -> None:
    cluster = Cluster(root, free_port(), durable=False)
    try:
        first = cluster.up()
        assert first.running
        assert first.pid
        again = cluster.up()  # idempotent: the same server keeps running
        assert again.pid == first.pid
        with psycopg.connect(cluster.url(), autocommit=True) as conn:
            conn.execute("CREATE TABLE kept (v text)")
            conn.execute("INSERT INTO kept VALUES ('still here')")
            settings = dict(
                conn.execute(
                    "SELECT name, setting FROM pg_settings WHERE name IN "
                    "('wal_level', 'max_replication_slots', 'max_wal_senders', 'listen_addresses')"
                ).fetchall()
            )
            extensions = {r[0] for r in conn.execute("SELECT name FROM pg_available_extensions").fetchall()}
        assert settings == {
            "wal_level": "logical",
            "max_replication_slots": "20",
            "max_wal_senders": "20",
            "listen_addresses": "127.0.0.1",
        }
        assert "plpython3u" in extensions
        assert cluster.down() is True
        assert cluster.status().running is False
        assert cluster.down() is False  # stopping a stopped cluster is not an error
        cluster.up()
        with psycopg.connect(cluster.url()) as conn:
            assert conn.execute("SELECT v FROM kept").fetchone() == ("still here",)
            # wal2json is a logical decoding plugin, not an extension: prove it loads.
            conn.execute("SELECT pg_create_logical_replication_slot('probe', 'wal2json')")
            conn.execute("SELECT pg_drop_replication_slot('probe')")
    finally:
        cluster.destroy()


def test_stale_pid_file_is_cleared(root: Path) -> None:
    cluster = Cluster(root, free_port(), durable=False)
    try:
        cluster.up()
        cluster.down()
        dead_pid = 2**22 - 7  # above the default pid_max: no process has it
        (cluster.pgdata / "postmaster.pid").write_text(f"{dead_pid}\n{cluster.pgdata}\n")
        assert cluster.status().running is False
        assert cluster.up().running is True
    finally:
        cluster.destroy()


def test_port_in_use_is_a_clear_error(root: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        cluster = Cluster(root, port, durable=False)
        try:
            with pytest.raises(LocalStackError, match=f"port {port} is in use by another process; .*S3VL_DEV_PG_PORT"):
                cluster.up()
        finally:
            cluster.destroy()
