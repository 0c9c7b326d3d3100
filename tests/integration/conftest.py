"""Integration fixtures: a real PostgreSQL cluster and the real local AWS endpoint.

* ``pg_cluster`` (session): a private cluster (same code as ``s3vl dev up``) on a free port.
* ``db_url`` (function): a fresh database cloned from a template with ``sql/`` installed.
* ``empty_db_url`` (function): a fresh database with nothing installed.
Endpoint fixtures (``endpoint``, ``s3v``, ``aws_env``, ...) live in ``endpoint_fixtures.py``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.endpoint import aws_env, endpoint, s3v  # noqa: F401 - shared fixtures
from tests.support.pg import TestCluster, session_cluster


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[TestCluster]:
    with session_cluster() as cluster:
        yield cluster


@pytest.fixture
def db_url(pg_cluster: TestCluster) -> Iterator[str]:
    url = pg_cluster.create_database(installed=True)
    yield url
    pg_cluster.drop_database(url)


@pytest.fixture
def empty_db_url(pg_cluster: TestCluster) -> Iterator[str]:
    url = pg_cluster.create_database(installed=False)
    yield url
    pg_cluster.drop_database(url)
