"""A private PostgreSQL 15 cluster for the local stack, from Debian's packages.

The cluster lives in ``<data_dir>/pg`` and listens on 127.0.0.1 at its own port, never 5432, so it
cannot collide with a system PostgreSQL. It runs with ``wal_level=logical`` and the
``plpython3u`` and ``wal2json`` extensions available, which is what Aurora gives s3vl in production.

PostgreSQL refuses to run as root, and we usually are root on development machines, so when the
current user is root every server command runs as the ``postgres`` system user that Debian's
package creates, and the cluster folder is owned by it. Authentication is ``trust`` on loopback:
this is a throwaway development cluster, reachable only from this machine.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
import structlog

from s3vl_local.errors import LocalStackError
from s3vl_local.processes import pid_alive, port_in_use

log = structlog.get_logger(__name__)

PG_VERSION = 15
PG_BIN = Path(f"/usr/lib/postgresql/{PG_VERSION}/bin")
PG_LIB = Path(f"/usr/lib/postgresql/{PG_VERSION}/lib")
#: Debian packages the cluster needs, with a file that proves each one is installed.
DEBIAN_PACKAGES = {
    f"postgresql-{PG_VERSION}": PG_BIN / "initdb",
    f"postgresql-plpython3-{PG_VERSION}": PG_LIB / "plpython3.so",
    f"postgresql-{PG_VERSION}-wal2json": PG_LIB / "wal2json.so",
}
DATABASE = "s3vl"
SUPERUSER = "postgres"
SERVER_USER = "postgres"  # the OS user that runs the server when we are root

# Settings the local stack relies on. Written to s3vl.conf, included from postgresql.conf, and
# rewritten on every start so a changed port takes effect.
_CONF_TEMPLATE = """\
# Written by s3vl on every start: edit local/s3vl_local/cluster.py, not this file.
listen_addresses = '127.0.0.1'
port = {port}
unix_socket_directories = '{socket_dir}'
wal_level = logical
max_replication_slots = 20
max_wal_senders = 20
{plugins_line}
max_connections = 200
shared_buffers = 128MB
fsync = {fsync}
synchronous_commit = {fsync}
full_page_writes = {fsync}
log_min_messages = warning
log_line_prefix = '%m [%p] %q%u@%d '
"""


@dataclass(frozen=True)
class ClusterStatus:
    """What ``s3vl dev status`` shows about the cluster."""

    initialized: bool
    running: bool
    pid: int | None
    port: int
    data_dir: Path
    url: str


def missing_packages() -> list[str]:
    """Debian packages the cluster needs that are not installed."""
    return [pkg for pkg, proof in DEBIAN_PACKAGES.items() if not proof.exists()]


def ensure_packages() -> None:
    """Install the missing Debian packages (``apt-get update`` first); needs root."""
    missing = missing_packages()
    if not missing:
        return
    if os.geteuid() != 0:
        raise LocalStackError(
            "missing Debian packages " + " ".join(missing) + "; install them with: "
            "sudo apt-get update && sudo apt-get install -y " + " ".join(missing)
        )
    log.info("cluster.installing_packages", packages=missing)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *missing]):
        result = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)  # noqa: S603
        if result.returncode != 0:
            tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
            raise LocalStackError(f"'{' '.join(cmd)}' failed: " + " | ".join(tail))


class Cluster:
    """Control of one private cluster: ``root`` is the stack's data folder, ``root/pg`` PGDATA."""

    def __init__(self, root: Path, port: int, *, durable: bool = True) -> None:
        self.root = root.resolve()
        self.port = port
        self.durable = durable  # tests trade crash safety of the *cluster* for speed
        self.pgdata = self.root / "pg"
        self.socket_dir = self.root / "pg-run"
        self.log_file = self.root / "pg.log"

    # --- facts -----------------------------------------------------------------------------
    def url(self, database: str = DATABASE) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    @property
    def initialized(self) -> bool:
        return (self.pgdata / "PG_VERSION").exists()

    def running_pid(self) -> int | None:
        """The postmaster's pid when it runs; a stale pid file counts as not running."""
        pid_file = self.pgdata / "postmaster.pid"
        try:
            first = pid_file.read_text().splitlines()[0]
        except (FileNotFoundError, IndexError):
            return None
        pid = int(first.strip())
        return pid if pid_alive(pid) else None

    def status(self) -> ClusterStatus:
        pid = self.running_pid()
        return ClusterStatus(self.initialized, pid is not None, pid, self.port, self.pgdata, self.url())

    # --- lifecycle -------------------------------------------------------------------------
    def up(self, timeout: float = 60.0) -> ClusterStatus:
        """Initialise when needed, start when stopped, wait until it accepts connections.

        Idempotent: a running cluster is left alone (but still checked to accept connections).
        """
        ensure_packages()
        if not self.initialized:
            self._initdb()
        if self.running_pid() is None:
            self._clear_stale_pid_file()
            if port_in_use(self.port):
                raise LocalStackError(
                    f"port {self.port} is in use by another process; stop it or choose another "
                    "port with S3VL_DEV_PG_PORT"
                )
            self._write_conf()
            self._pg_ctl("start", "-w", "-t", str(int(timeout)), "-l", str(self.log_file))
        self._wait_ready(timeout)
        self._ensure_database()
        log.info("cluster.up", port=self.port, data_dir=str(self.pgdata))
        return self.status()

    def down(self, timeout: float = 60.0) -> bool:
        """Stop cleanly (fast shutdown: sessions are ended, data is flushed); False if not running."""
        if self.running_pid() is None:
            self._clear_stale_pid_file()
            return False
        self._pg_ctl("stop", "-m", "fast", "-w", "-t", str(int(timeout)))
        log.info("cluster.down", port=self.port)
        return True

    def destroy(self) -> None:
        """Stop and delete the cluster's files (tests and ``s3vl dev down --purge``)."""
        self.down()
        for path in (self.pgdata, self.socket_dir):
            shutil.rmtree(path, ignore_errors=True)
        self.log_file.unlink(missing_ok=True)

    # --- internals ---------------------------------------------------------------------------
    def _run(self, *cmd: str) -> subprocess.CompletedProcess[str]:
        """Run a server binary, as the server's OS user when we are root."""
        as_root = os.geteuid() == 0
        user = pwd.getpwnam(SERVER_USER) if as_root else None
        result = subprocess.run(  # noqa: S603 - fixed binaries, arguments we build
            list(cmd),
            capture_output=True,
            text=True,
            check=False,
            cwd="/",
            user=user.pw_uid if user else None,
            group=user.pw_gid if user else None,
            extra_groups=[] if user else None,
        )
        if result.returncode != 0:
            output = (result.stderr or result.stdout).strip()
            raise LocalStackError(f"{Path(cmd[0]).name} failed: {output}" + self._log_tail())
        return result

    def _log_tail(self) -> str:
        with contextlib.suppress(OSError):
            lines = self.log_file.read_text(errors="replace").strip().splitlines()[-5:]
            if lines:
                return "\nlast lines of " + str(self.log_file) + ":\n  " + "\n  ".join(lines)
        return ""

    def _prepare_dirs(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        for path in (self.pgdata, self.socket_dir):
            path.mkdir(parents=True, exist_ok=True)
        self.log_file.touch(exist_ok=True)
        self.pgdata.chmod(0o700)
        if os.geteuid() == 0:
            user = pwd.getpwnam(SERVER_USER)
            for path in (self.pgdata, self.socket_dir, self.log_file):
                os.chown(path, user.pw_uid, user.pw_gid)
            # The server user must be able to reach its folders through ours.
            for parent in [self.root, *self.root.parents]:
                mode = parent.stat().st_mode
                if not mode & 0o001:
                    parent.chmod(mode | 0o001)

    def _initdb(self) -> None:
        self._prepare_dirs()
        log.info("cluster.initdb", data_dir=str(self.pgdata))
        self._run(
            str(PG_BIN / "initdb"),
            "-D",
            str(self.pgdata),
            "-U",
            SUPERUSER,
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "--no-instructions",
        )
        conf = self.pgdata / "postgresql.conf"
        with conf.open("a") as fh:
            fh.write("\ninclude_if_exists = 's3vl.conf'\n")

    def _write_conf(self) -> None:
        self._prepare_dirs()
        flag = "on" if self.durable else "off"
        text = _CONF_TEMPLATE.format(
            port=self.port, socket_dir=self.socket_dir, fsync=flag, plugins_line=self._output_plugins_line()
        )
        target = self.pgdata / "s3vl.conf"
        target.write_text(text)
        if os.geteuid() == 0:
            user = pwd.getpwnam(SERVER_USER)
            os.chown(target, user.pw_uid, user.pw_gid)

    def _output_plugins_line(self) -> str:
        """Allow wal2json as a logical decoding plugin where the server restricts plugins.

        Recent Debian builds of PostgreSQL 15 add ``output_plugin_libraries`` (default
        ``pgoutput, test_decoding``); older builds do not know the setting and would refuse to
        start if it appeared in the configuration, so it is written only when the server has it.
        """
        result = self._run(str(PG_BIN / "postgres"), "--describe-config")
        if any(line.split("\t", 1)[0] == "output_plugin_libraries" for line in result.stdout.splitlines()):
            return "output_plugin_libraries = 'pgoutput, test_decoding, wal2json'"
        return ""

    def _clear_stale_pid_file(self) -> None:
        pid_file = self.pgdata / "postmaster.pid"
        if pid_file.exists() and self.running_pid() is None:
            log.warning(
                "cluster.stale_pid_file",
                path=str(pid_file),
                hint="the server was not shut down cleanly; removing its pid file",
            )
            pid_file.unlink()

    def _pg_ctl(self, action: str, *args: str) -> None:
        self._run(str(PG_BIN / "pg_ctl"), action, "-D", str(self.pgdata), *args)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                with psycopg.connect(self.url("postgres"), connect_timeout=2) as conn:
                    conn.execute("SELECT 1")
                    return
            except psycopg.OperationalError as exc:
                last = exc
                time.sleep(0.2)
        raise LocalStackError(f"PostgreSQL on port {self.port} did not accept connections: {last}" + self._log_tail())

    def _ensure_database(self) -> None:
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone()
            if exists is None:
                conn.execute(f'CREATE DATABASE "{DATABASE}"')
