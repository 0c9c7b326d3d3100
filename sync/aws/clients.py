"""boto3 clients for the worker and the operations tools: botocore's own retries off (:mod:`.retry`
decides), connection pools sized by the caller, fast float bodies for S3 Vectors, and
``AWS_ENDPOINT_URL*``/region/credentials left to boto3's usual resolution."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config

from sync.aws import fastbody


def client(service: str, region: str | None = None, endpoint_url: str | None = None, pool: int = 16) -> Any:
    """A boto3 client with botocore's retries off (see :class:`RetryPolicy`) and a connection pool
    of ``pool`` (the most calls its caller has in flight); S3 Vectors clients send and read
    vectors without botocore's per-float work (:mod:`.fastbody`)."""
    config = Config(retries={"max_attempts": 1, "mode": "standard"}, max_pool_connections=pool,
                    connect_timeout=5, read_timeout=60)
    made = boto3.client(service, region_name=region, endpoint_url=endpoint_url, config=config)  # type: ignore[call-overload]
    return fastbody.install(made) if service == "s3vectors" else made
