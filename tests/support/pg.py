"""A private PostgreSQL cluster per test session, built with the same code as ``s3vl dev up``.

Each test that needs a database gets its own, cloned in milliseconds from a template that has
``sql/`` installed (``CREATE DATABASE ... TEMPLATE``), so tests never see each other's rows and
can run in any order.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from s3vl_local.cluster import Cluster
from s3vl_local.processes import free_port
from s3vl_local.stack import install_local_shims
from sync.db import schema

TEMPLATE = "s3vl_template"

#: Logins holding exactly the grants README's security model documents for each job (roles are
#: cluster-wide, so these exist once per test cluster):
#: the admin who declares syncs and owns the application's tables, the worker (REPLICATION for
#: logical capture), and a reader.
ADMIN, WORKER, READER = "s3vl_test_admin", "s3vl_test_worker", "s3vl_test_reader"
_LOGINS = f"""
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{ADMIN}') THEN
        CREATE ROLE {ADMIN} LOGIN IN ROLE s3vl_admin;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{WORKER}') THEN
        CREATE ROLE {WORKER} LOGIN REPLICATION IN ROLE s3vl_worker;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{READER}') THEN
        CREATE ROLE {READER} LOGIN IN ROLE s3vl_reader;
    END IF;
END
$$;
-- the application's schema: its owner (here the admin) creates the tables it syncs
GRANT CREATE ON SCHEMA public TO {ADMIN};
"""


def as_login(url: str, role: str) -> str:
    """The same database URL for another login (the test cluster trusts loopback)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{role}@{parts.hostname}:{parts.port}"))


@dataclass
class TestCluster:
    __test__ = False  # a helper, not a test class
    """The session's cluster: ``url`` is its ``s3vl`` database (no schema installed)."""

    cluster: Cluster
    root: Path
    _template_ready: bool = field(default=False)

    @property
    def url(self) -> str:
        return self.cluster.url()

    def url_for(self, database: str) -> str:
        return self.cluster.url(database)

    def admin(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(self.cluster.url("postgres"), autocommit=True)

    def ensure_template(self) -> None:
        """Create the template database with ``sql/`` (and the local shims) installed, once."""
        if self._template_ready:
            return
        with self.admin() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(TEMPLATE)))
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(TEMPLATE)))
        url = self.url_for(TEMPLATE)
        install_local_shims(url)
        schema.install(url)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(_LOGINS)
        self._template_ready = True

    def create_database(self, *, installed: bool = True, settings: dict[str, str] | None = None) -> str:
        """A new empty database (``installed``: cloned from the template); returns its URL.

        ``settings`` are database-level GUCs (``ALTER DATABASE ... SET``), which a TEMPLATE
        copy does not carry over, e.g. the local ``aws_lambda.endpoint_url``.
        """
        name = "t_" + uuid.uuid4().hex[:12]
        with self.admin() as conn:
            if installed:
                self.ensure_template()
                conn.execute(
                    sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(TEMPLATE))
                )
            else:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            for key, value in (settings or {}).items():
                conn.execute(
                    sql.SQL("ALTER DATABASE {} SET {} = {}").format(
                        sql.Identifier(name), sql.SQL(key), sql.Literal(value)
                    )
                )
        return self.url_for(name)

    def drop_database(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        with self.admin() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def make_root(prefix: str = "s3vl-test-") -> Path:
    """A temporary folder the ``postgres`` OS user can reach (pytest's tmp dirs are 0700)."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    root.chmod(0o755)
    return root


@contextmanager
def session_cluster(*, durable: bool = False, prefix: str = "s3vl-test-") -> Iterator[TestCluster]:
    """Start a throwaway cluster on a free port; stop and delete it afterwards.

    Test clusters skip fsync by default: a crashed *test machine* may lose them, which is fine.
    ``durable`` keeps fsync on, for tests that restart the server and count on every commit.
    """
    root = make_root(prefix)
    cluster = Cluster(root, free_port(), durable=durable)
    try:
        cluster.up()
        yield TestCluster(cluster, root)
    finally:
        cluster.destroy()
        if not os.environ.get("S3VL_KEEP_TEST_CLUSTER"):
            shutil.rmtree(root, ignore_errors=True)
