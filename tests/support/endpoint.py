"""Fixtures for the local AWS endpoint (imported by ``tests/integration/conftest.py``).

* ``endpoint`` (session): ``python -m s3vl_local.endpoint`` on a free port with its data in a
  temp dir; yields an :class:`EndpointHandle` (``.url``, ``.data_dir``, ``.admin``); stopped at
  the end of the session. Tests that change faults must clear them (``endpoint.admin.clear_faults()``).
* ``s3v``: an unmodified boto3 ``s3vectors`` client bound to it (dummy credentials).
* ``aws_env``: sets ``AWS_ENDPOINT_URL``, region and dummy credentials for code that builds its
  own clients (``boto3.client("s3vectors")`` then talks to the endpoint).
* :func:`running_endpoint` starts a private endpoint (for restart / kill -9 tests).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from s3vl_local.endpoint import process
from s3vl_local.endpoint.admin import AdminClient
from s3vl_local.processes import free_port

REGION = "us-west-2"
DUMMY_KEY = "s3vl-local"
LAMBDA_ARN = "arn:aws:lambda:us-west-2:000000000000:function:s3vl-query"


@dataclass
class EndpointHandle:
    host: str
    port: int
    data_dir: Path
    log_file: Path
    pid: int
    admin: AdminClient = field(init=False)

    def __post_init__(self) -> None:
        self.admin = AdminClient(self.url)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def client(self, service: str = "s3vectors", retries: int | None = None, **config: Any) -> Any:
        """A boto3 client for ``service`` bound to this endpoint; ``retries`` is the total number
        of attempts (``retries=1``: no retries, so injected faults surface as errors)."""
        if retries is not None:
            config["retries"] = {"total_max_attempts": retries, "mode": "standard"}
        return boto3.client(
            service,
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id=DUMMY_KEY,
            aws_secret_access_key=DUMMY_KEY,
            config=Config(**config) if config else None,
        )

    def stop(self) -> None:
        process.stop(self.pid)

    def kill9(self) -> None:
        """SIGKILL: no shutdown hooks run (durability tests)."""
        os.kill(self.pid, signal.SIGKILL)
        while process.pid_alive(self.pid):
            pass

    def start(self) -> None:
        """(Re)start on the same port and data dir."""
        self.pid = process.start(self.host, self.port, self.data_dir, self.log_file)


@contextmanager
def running_endpoint(tmp: Path, faults: dict[str, Any] | None = None) -> Iterator[EndpointHandle]:
    host, port = "127.0.0.1", free_port()
    data_dir, log_file = tmp / "endpoint-data", tmp / "endpoint.log"
    pid = process.start(host, port, data_dir, log_file, faults=faults)
    handle = EndpointHandle(host, port, data_dir, log_file, pid)
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture(scope="session")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EndpointHandle]:
    with running_endpoint(tmp_path_factory.mktemp("endpoint")) as handle:
        yield handle


@pytest.fixture
def s3v(endpoint: EndpointHandle) -> Any:
    return endpoint.client("s3vectors")


@pytest.fixture
def aws_env(endpoint: EndpointHandle, monkeypatch: pytest.MonkeyPatch) -> EndpointHandle:
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint.url)
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", DUMMY_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", DUMMY_KEY)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.setenv("S3VL_LAMBDA_FUNCTION_ARN", LAMBDA_ARN)
    return endpoint
