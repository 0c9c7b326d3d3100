"""S3 Vectors for the worker: put, delete, get and list vectors of one index, within the limits.

PutVectors and DeleteVectors take at most 500 items and GetVectors 100 keys per request
(botocore's model), and a request at most 20 MiB; larger inputs are split here. Every call goes
through the shared retry policy (throttling/5xx with backoff and jitter); writes also through two
client-side token buckets for the per-index write limits (requests/s and vectors/s), so a busy
worker slows itself down before S3 Vectors has to throttle it, and an adaptive limit on writes
in flight (from 2 up to ``max_writes``, halved on throttling) shared by the batches in flight.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import numpy as np
import orjson
from botocore.exceptions import ClientError

from sync.aws.retry import AdaptiveLimit, RateLimiter, RetryPolicy, error_code, is_throttling
from sync.errors import TransientAwsError, VectorStoreError
from sync.telemetry import metrics

T = TypeVar("T")

#: Request limits: PutVectors / DeleteVectors take 500 items, GetVectors 100 keys.
PUT_BATCH = 500
DELETE_BATCH = 500
GET_BATCH = 100
#: S3 Vectors write limits per index (AWS documentation).
WRITE_REQUESTS_PER_SECOND = 1000
WRITE_VECTORS_PER_SECOND = 2500
#: A request's payload may be 20 MiB; PutVectors batches stay under this estimate of it.
MAX_PUT_BYTES = 18 * 1024 * 1024
#: The longest text of one float32 in the body (``-1.17549435e-38,``), for that estimate.
_FLOAT_BYTES = 16


def _json_size(value: Any) -> int:
    try:
        return len(orjson.dumps(value, default=str))
    except TypeError:  # an integer beyond 64 bits: the stdlib writes it
        return len(json.dumps(value, default=str))


def put_batches(vectors: Sequence[Vector]) -> Iterator[list[Vector]]:
    """PutVectors batches: at most 500 vectors and, by a safe estimate, under the payload limit."""
    batch: list[Vector] = []
    size = 0
    for v in vectors:
        estimate = len(v.key) + 64 + _FLOAT_BYTES * len(v.data) + _json_size(v.metadata)
        if batch and (len(batch) == PUT_BATCH or size + estimate > MAX_PUT_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(v)
        size += estimate
    if batch:
        yield batch


def batched(items: Sequence[T] | Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of at most ``size`` items."""
    if size < 1:
        raise ValueError("batch size must be at least 1")
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


@dataclass
class Vector:
    key: str
    #: float32, 1-D: what S3 Vectors stores (sent without botocore's per-float work, see fastbody)
    data: np.ndarray
    metadata: dict[str, Any]


class VectorStore:
    """One S3 Vectors index, addressed by its ARN."""

    def __init__(self, client: Any, index_arn: str, *, policy: RetryPolicy | None = None,
                 requests_per_second: float = WRITE_REQUESTS_PER_SECOND,
                 vectors_per_second: float = WRITE_VECTORS_PER_SECOND, max_writes: int = 8) -> None:
        self.client = client
        self.index_arn = index_arn
        self.policy = policy or RetryPolicy()
        self.max_requests = requests_per_second
        self.max_vectors = vectors_per_second
        self.requests = RateLimiter(requests_per_second)
        self.vectors = RateLimiter(vectors_per_second)
        self.writes = AdaptiveLimit(min(2, max_writes), max_writes)

    def _call(self, op: str, fn: Callable[[], T], items: int = 0, write: bool = False,
              policy: RetryPolicy | None = None) -> T:
        def attempt() -> T:
            if not write:
                return timed()
            self.requests.acquire(1)
            if items:
                self.vectors.acquire(items)
            with self.writes:
                result = timed()
            self.writes.succeeded()
            self.requests.speed_up(self.max_requests)
            self.vectors.speed_up(self.max_vectors)
            return result

        def timed() -> T:
            start = time.perf_counter()
            try:
                return fn()
            finally:
                metrics.AWS_LATENCY.labels("s3vectors", op).observe(time.perf_counter() - start)

        def on_retry(exc: BaseException) -> None:
            metrics.AWS_ERRORS.labels("s3vectors", op, error_code(exc) or "error").inc()
            if write and is_throttling(exc):
                # S3 Vectors says we write too fast for this index: halve our own limits (AIMD)
                self.requests.slow_down(floor=5)
                self.vectors.slow_down(floor=50)
                self.writes.throttled()

        try:
            return (policy or self.policy).call(f"s3vectors {op}", attempt, on_retry=on_retry)
        except ClientError as exc:
            err = exc.response.get("Error", {})
            metrics.AWS_ERRORS.labels("s3vectors", op, str(err.get("Code", "error"))).inc()
            raise VectorStoreError(f"{op} on {self.index_arn}: {err.get('Code')}: {err.get('Message')}") from exc

    def put(self, vectors: Sequence[Vector], *, policy: RetryPolicy | None = None) -> int:
        """PutVectors in batches (:func:`put_batches`); returns the number of requests."""
        n = 0
        for batch in put_batches(vectors):
            body = [{"key": v.key, "data": {"float32": v.data}, "metadata": v.metadata} for v in batch]
            self._call("PutVectors", partial(self.client.put_vectors, indexArn=self.index_arn, vectors=body),
                       items=len(body), write=True, policy=policy)
            n += 1
        return n

    def reachable(self) -> bool:
        """Does S3 Vectors answer for this index now (GetIndex, briefly retried)? Any answer counts."""
        try:
            self._call("GetIndex", partial(self.client.get_index, indexArn=self.index_arn),
                       policy=RetryPolicy(attempts=2, max_seconds=5.0))
        except TransientAwsError:
            return False
        except VectorStoreError:
            return True
        return True

    def delete(self, keys: Sequence[str]) -> int:
        """DeleteVectors in batches of at most 500 (deleting an absent key is not an error)."""
        n = 0
        for batch in batched(keys, DELETE_BATCH):
            self._call("DeleteVectors", partial(self.client.delete_vectors, indexArn=self.index_arn, keys=batch),
                       items=len(batch), write=True)
            n += 1
        return n

    def get(self, keys: Sequence[str], *, data: bool = True, metadata: bool = False) -> dict[str, Vector]:
        """GetVectors in batches of at most 100; absent keys are absent from the result."""
        found: dict[str, Vector] = {}
        for batch in batched(keys, GET_BATCH):
            resp: dict[str, Any] = self._call("GetVectors", partial(
                self.client.get_vectors, indexArn=self.index_arn, keys=batch, returnData=data,
                returnMetadata=metadata))
            for v in resp.get("vectors", []):
                found[v["key"]] = Vector(v["key"], np.asarray(v.get("data", {}).get("float32", []), dtype=np.float32),
                                         dict(v.get("metadata") or {}))
        return found

    def non_filterable_keys(self) -> list[str]:
        """The index's non-filterable metadata keys (GetIndex)."""
        resp: dict[str, Any] = self._call("GetIndex", partial(self.client.get_index, indexArn=self.index_arn))
        conf = resp.get("index", {}).get("metadataConfiguration") or {}
        return list(conf.get("nonFilterableMetadataKeys") or [])
