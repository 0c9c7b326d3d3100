"""boto3 clients (one per service and region, reused across invocations) and the one place
that turns botocore failures into :mod:`s3vl_query.errors`.

botocore's own retries are off (``max_attempts=1``): :func:`call` retries throttling and
transient failures itself, with exponential backoff and full jitter, and never past the
invocation's :class:`Budget`, so a slow AWS answer becomes a clean ``timeout`` error rather
than the Lambda being killed mid-request.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from s3vl_query.errors import (
    AccessDeniedError,
    DimensionMismatchError,
    EmbeddingError,
    IndexNotFoundError,
    InvalidArgumentError,
    InvalidFilterError,
    QueryError,
    QueryTimeoutError,
    ServiceUnavailableError,
    ThrottledError,
)

T = TypeVar("T")

# One list with the sync worker's (sync/aws/retryable_codes.json links to this file). Any 429 or
# 5xx is retried whatever its code; the lists name what arrives with another status.
_CODES = json.loads((Path(__file__).parent / "retryable_codes.json").read_text(encoding="utf-8"))
THROTTLING_CODES = frozenset(_CODES["throttling"])
TRANSIENT_CODES = frozenset(_CODES["transient"])
BASE_DELAY_S = 0.05
MAX_DELAY_S = 2.0
SAFETY_MARGIN_S = 0.25  # at least this much time is kept back to build and return the answer
SAFETY_FRACTION = 0.1  # ... or this fraction of the invocation's time, if more

_CONFIG = Config(
    retries={"max_attempts": 1, "mode": "standard"},
    connect_timeout=float(os.environ.get("S3VL_QUERY_CONNECT_TIMEOUT_S", "2")),
    read_timeout=float(os.environ.get("S3VL_QUERY_READ_TIMEOUT_S", "10")),
    max_pool_connections=16,
)


@cache
def client(service: str, region: str) -> Any:
    """The boto3 client for ``service`` in ``region``: created once per container, then reused."""
    return boto3.session.Session().client(service, region_name=region, config=_CONFIG)  # type: ignore[call-overload]


@dataclass
class Budget:
    """How long this invocation may still spend: from the Lambda context, minus a margin."""

    deadline: float  # time.monotonic() value

    @classmethod
    def from_context(cls, context: Any, default_s: float = 30.0) -> Budget:
        remaining_ms = None
        getter = getattr(context, "get_remaining_time_in_millis", None)
        if callable(getter):
            try:
                remaining_ms = int(getter())
            except (TypeError, ValueError):
                remaining_ms = None
        remaining = remaining_ms / 1000.0 if remaining_ms is not None else default_s
        margin = max(SAFETY_MARGIN_S, SAFETY_FRACTION * remaining)
        return cls(time.monotonic() + max(remaining - margin, 0.0))

    def remaining(self) -> float:
        return self.deadline - time.monotonic()


def translate(exc: Exception, what: str) -> QueryError:
    """The s3vl error for a botocore failure of ``what`` (e.g. ``"QueryVectors"``)."""
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        code = str(err.get("Code", "Unknown"))
        message = str(err.get("Message", "")) or code
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        text = f"{what}: {code}: {message}"
        lowered = message.lower()
        if code in THROTTLING_CODES or status == 429:
            return ThrottledError(text)
        if code in ("AccessDeniedException", "AccessDenied", "UnrecognizedClientException"):
            return AccessDeniedError(text)
        if code in ("NotFoundException", "ResourceNotFoundException", "NoSuchIndex", "NoSuchVectorBucket"):
            if what == "InvokeModel":
                return EmbeddingError(text)
            return IndexNotFoundError(text)
        if code == "ModelTimeoutException":
            return QueryTimeoutError(text)
        if code in TRANSIENT_CODES or status >= 500:
            return ServiceUnavailableError(text)
        if code in ("ValidationException", "BadRequestException", "InvalidParameterValue"):
            if what == "InvokeModel":
                return EmbeddingError(text)
            if "filter" in lowered:
                return InvalidFilterError(text)
            if "dimension" in lowered or "must have length" in lowered:
                return DimensionMismatchError(text)
            return InvalidArgumentError(text)
        return ServiceUnavailableError(text) if status == 0 else InvalidArgumentError(text)
    if isinstance(exc, ConnectTimeoutError | ReadTimeoutError):
        return QueryTimeoutError(f"{what}: {exc}")
    if isinstance(exc, EndpointConnectionError | ConnectionClosedError | BotoCoreError):
        return ServiceUnavailableError(f"{what}: {exc}")
    raise exc


def call(fn: Callable[..., T], what: str, budget: Budget, **kwargs: Any) -> T:
    """``fn(**kwargs)``, retrying throttling and transient errors with backoff inside ``budget``."""
    attempt = 0
    while True:
        if budget.remaining() <= 0:
            raise QueryTimeoutError(f"{what}: the Lambda's time budget ran out")
        t0 = time.monotonic()
        try:
            return fn(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            error = translate(exc, what)
            if not error.retryable:
                raise error from exc
            took = time.monotonic() - t0
            delay = random.uniform(0, min(MAX_DELAY_S, BASE_DELAY_S * (2**attempt)))  # noqa: S311
            # Retry only if, after the pause, another attempt (as slow as this one, with room to
            # spare) still fits: a clean error beats being killed at the Lambda's timeout.
            if budget.remaining() <= delay + 2 * took:
                if isinstance(error, ThrottledError):
                    raise ThrottledError(
                        f"{error.message} (still throttled after {attempt + 1} attempts)"
                    ) from exc
                raise error from exc
            time.sleep(delay)
            attempt += 1
