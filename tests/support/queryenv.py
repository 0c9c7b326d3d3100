"""Fixtures and helpers for the SQL query interface tests (test_query_*.py).

Import ``walk_fixture`` / ``ready_fixture`` into a test module to use the fixtures
``walk`` / ``ready``.

* ``walk`` (module): a database with ``sql/`` and the local aws_lambda shims installed, pointed at
  the session's endpoint, loaded with ``s3vl example walkthrough``'s data (own bucket per module).
* ``ready`` (module): the same, configured (``s3vl.configure``) and with ``test-index-5d``
  registered.
* :func:`register_function` registers a fixture Lambda handler on the endpoint.
"""

from __future__ import annotations

import json
import subprocess
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from s3vl_local.cluster import PG_BIN
from s3vl_local.examples import walkthrough
from tests.support.endpoint import LAMBDA_ARN, EndpointHandle
from tests.support.paths import REPO
from tests.support.pg import TestCluster

ENDPOINT_GUC = "aws_lambda.endpoint_url"
FAKES = Path(__file__).resolve().parent / "fake_lambdas.py"


@dataclass
class Walk:
    url: str
    index_arn: str
    lambda_arn: str
    bucket: str
    endpoint: EndpointHandle

    def connect(self, **kwargs: Any) -> psycopg.Connection[tuple[Any, ...]]:
        return psycopg.connect(self.url, autocommit=True, **kwargs)

    def psql(
        self, script: str, *variables: tuple[str, str], user: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run ``script`` with psql (-X, ON_ERROR_STOP) and ``-v name=value`` variables."""
        cmd = [str(PG_BIN / "psql"), "-X", "-v", "ON_ERROR_STOP=1", "-d", self.url]
        if user:
            cmd[-1] = self.url.replace("://postgres@", f"://{user}@")
        for name, value in variables:
            cmd += ["-v", f"{name}={value}"]
        return subprocess.run(cmd, input=script, capture_output=True, text=True, timeout=120, check=False)


def new_walk(pg_cluster: TestCluster, endpoint: EndpointHandle) -> Walk:
    url = pg_cluster.create_database(installed=True, settings={ENDPOINT_GUC: endpoint.url})
    bucket = "wt-" + uuid.uuid4().hex[:12]
    result = walkthrough.run(url, "us-west-2", bucket=bucket, client=endpoint.client("s3vectors"))
    return Walk(url, result.index_arn, result.lambda_arn, bucket, endpoint)


@pytest.fixture(scope="module", name="walk")
def walk_fixture(pg_cluster: TestCluster, endpoint: EndpointHandle) -> Iterator[Walk]:
    w = new_walk(pg_cluster, endpoint)
    yield w
    pg_cluster.drop_database(w.url)


@pytest.fixture(scope="module", name="ready")
def ready_fixture(walk: Walk) -> Walk:
    with walk.connect() as conn:
        conn.execute("SELECT s3vl.configure(%s, 'us-west-2')", (LAMBDA_ARN,))
        conn.execute("SELECT s3vl.register_index('test-index-5d', %s, 'Test 5-dimensional vectors')", (walk.index_arn,))
    return walk


def admin_request(endpoint: EndpointHandle, method: str, path: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(endpoint.url + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        raw = resp.read()
    return json.loads(raw) if raw else None


def register_function(endpoint: EndpointHandle, name: str, function: str, timeout_s: float = 30.0,
                      environment: dict[str, str] | None = None, handler_file: Path = FAKES) -> str:
    """Register ``handler_file:function`` as Lambda ``name``; returns its local ARN."""
    admin_request(endpoint, "PUT", f"/_s3vl/lambda/functions/{name}",
                  {"handler": f"{handler_file}:{function}", "timeout_s": timeout_s,
                   "environment": environment or {}})
    return f"arn:aws:lambda:us-west-2:000000000000:function:{name}"


def query_handler_file() -> Path:
    return REPO / "lambda" / "handler.py"

