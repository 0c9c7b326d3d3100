"""The local stack as one unit: ``s3vl dev up | down | status | env``.

``up`` brings up, in order: the private PostgreSQL cluster, the local AWS endpoint (S3 Vectors,
Bedrock Runtime, Lambda), the local ``aws_lambda``/``aws_commons`` stand-ins and the ``s3vl``
schema. Every step is idempotent, so ``up`` on a running stack only checks it.

The ports and pids in use are recorded in ``<data_dir>/stack.json`` so that ``env`` and
``status`` describe the stack that runs, even from a shell whose settings differ.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import psycopg
import structlog

from s3vl_local import cluster as cluster_mod
from s3vl_local.endpoint import process as endpoint_process
from s3vl_local.endpoint.admin import AdminClient
from s3vl_local.errors import LocalStackError
from s3vl_local.processes import pid_alive, port_in_use
from sync.db import schema

log = structlog.get_logger(__name__)

LOCAL_ACCOUNT_ID = "000000000000"
LOCAL_REGION = "us-west-2"
LOCAL_ACCESS_KEY = "s3vl-local"
QUERY_FUNCTION_NAME = "s3vl-query"
#: The GUC through which the local ``aws_lambda`` stand-in finds the endpoint (sql/010-aws-lambda.sql).
ENDPOINT_GUC = "aws_lambda.endpoint_url"


def query_function_arn(region: str = LOCAL_REGION) -> str:
    return f"arn:aws:lambda:{region}:{LOCAL_ACCOUNT_ID}:function:{QUERY_FUNCTION_NAME}"


@dataclass
class StackState:
    """What runs where; persisted as ``stack.json`` in the data folder."""

    pg_port: int
    endpoint_port: int
    endpoint_pid: int | None = None
    embedder: str = "hash"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.endpoint_port}"

    @property
    def database_url(self) -> str:
        return f"postgresql://{cluster_mod.SUPERUSER}@127.0.0.1:{self.pg_port}/{cluster_mod.DATABASE}"


class Stack:
    """The local stack rooted at one data folder."""

    def __init__(self, data_dir: Path, pg_port: int, endpoint_port: int, *, durable: bool = True) -> None:
        self.data_dir = data_dir.resolve()
        self.state_file = self.data_dir / "stack.json"
        recorded = self.read_state()
        # A running stack keeps the ports it was started with.
        self.state = recorded or StackState(pg_port=pg_port, endpoint_port=endpoint_port)
        self.cluster = cluster_mod.Cluster(self.data_dir, self.state.pg_port, durable=durable)

    def read_state(self) -> StackState | None:
        try:
            raw = json.loads(self.state_file.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        return StackState(**raw)

    def _save_state(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self.state), indent=2))
        os.replace(tmp, self.state_file)

    # --- lifecycle -------------------------------------------------------------------------
    def up(self, *, embedder: str | None = None, install_schema: bool = True) -> StackState:
        """Start whatever is not running and wait until each part answers."""
        self.cluster.up()
        self._endpoint_up(embedder)
        self._save_state()
        self._install_local_shims()
        if install_schema:
            schema.install(self.state.database_url)
        return self.state

    def down(self, *, purge: bool = False) -> None:
        """Stop the endpoint and the cluster cleanly; ``purge`` also deletes their data."""
        if self.state.endpoint_pid is not None:
            endpoint_process.stop(self.state.endpoint_pid)
            self.state.endpoint_pid = None
        self.cluster.down()
        if purge:
            self.cluster.destroy()
            shutil.rmtree(self.data_dir / "endpoint", ignore_errors=True)
            self.state_file.unlink(missing_ok=True)
        elif self.state_file.parent.exists():
            self._save_state()

    def status(self) -> dict[str, Any]:
        """Facts for ``s3vl dev status`` (``--json`` prints this dict)."""
        pg = self.cluster.status()
        endpoint_ok = endpoint_process.is_healthy(self.state.endpoint_url)
        result: dict[str, Any] = {
            "data_dir": str(self.data_dir),
            "postgres": {
                "running": pg.running,
                "pid": pg.pid,
                "port": pg.port,
                "initialized": pg.initialized,
                "url": pg.url,
            },
            "endpoint": {
                "running": endpoint_ok,
                "pid": self.state.endpoint_pid,
                "url": self.state.endpoint_url,
                "embedder": self.state.embedder,
            },
        }
        if endpoint_ok:
            result["endpoint"]["counters"] = AdminClient(self.state.endpoint_url).counters()
        return result

    def env(self) -> dict[str, str]:
        """The variables a shell or a test needs to use this stack."""
        return {
            "S3VL_DATABASE_URL": self.state.database_url,
            "AWS_ENDPOINT_URL": self.state.endpoint_url,
            "AWS_REGION": LOCAL_REGION,
            "AWS_DEFAULT_REGION": LOCAL_REGION,
            "AWS_ACCESS_KEY_ID": LOCAL_ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": LOCAL_ACCESS_KEY,
            "S3VL_LAMBDA_FUNCTION_ARN": query_function_arn(),
        }

    # --- parts -----------------------------------------------------------------------------
    def _endpoint_up(self, embedder: str | None) -> None:
        wanted = embedder or self.state.embedder
        pid = self.state.endpoint_pid
        healthy = endpoint_process.is_healthy(self.state.endpoint_url)
        if healthy and pid is not None and wanted != self.state.embedder:
            endpoint_process.stop(pid)  # restart with the other embedder
            healthy = False
        if healthy:
            return
        if pid is not None and pid_alive(pid):
            endpoint_process.stop(pid)
        if port_in_use(self.state.endpoint_port):
            raise LocalStackError(
                f"port {self.state.endpoint_port} is in use by another process; stop it or choose "
                "another port with S3VL_DEV_ENDPOINT_PORT"
            )
        self.state.endpoint_pid = endpoint_process.start(
            host="127.0.0.1",
            port=self.state.endpoint_port,
            data_dir=self.data_dir / "endpoint",
            log_file=self.data_dir / "endpoint.log",
            embedder=wanted,
        )
        self.state.embedder = wanted
        log.info("endpoint.up", url=self.state.endpoint_url, pid=self.state.endpoint_pid, embedder=wanted)

    def _install_local_shims(self) -> None:
        url = self.state.database_url
        try:
            install_local_shims(url)
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(
                    psycopg.sql.SQL("ALTER DATABASE {} SET {} = {}").format(
                        psycopg.sql.Identifier(cluster_mod.DATABASE),
                        psycopg.sql.SQL(ENDPOINT_GUC),
                        psycopg.sql.Literal(self.state.endpoint_url),
                    )
                )
        except psycopg.Error as exc:
            raise LocalStackError(f"installing the local aws_lambda shims failed: {exc}") from exc


#: The local stand-ins for Aurora's ``aws_lambda``/``aws_commons`` (package data of this package).
SHIMS_DIR = Path(str(resources.files("s3vl_local") / "sql"))


def install_local_shims(conninfo: str) -> list[str]:
    """Apply the local stand-ins for Aurora's extensions (never run against a real Aurora)."""
    return schema.run_files(conninfo, [schema.SqlFile("local", p) for p in sorted(SHIMS_DIR.glob("*.sql"))])


def format_env(env: dict[str, str]) -> str:
    """``export`` lines for ``eval "$(s3vl dev env)"``; values are shell-quoted."""
    import shlex

    return "\n".join(f"export {key}={shlex.quote(value)}" for key, value in env.items())
