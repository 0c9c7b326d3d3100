"""VectorStore against a canned client: request splitting by count and size, writes in flight that adapt."""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import pytest
from botocore.exceptions import ClientError

from sync.aws.retry import RetryPolicy
from sync.aws.s3vectors import MAX_PUT_BYTES, PUT_BATCH, Vector, VectorStore, put_batches

ARN = "arn:aws:s3vectors:us-west-2:000000000000:bucket/b/index/i"


def _vectors(n: int, dims: int, metadata: dict[str, Any] | None = None) -> list[Vector]:
    data = np.zeros(dims, dtype=np.float32)
    return [Vector(f"k{i}", data, dict(metadata or {"s3vl_id": f"k{i}"})) for i in range(n)]


def test_put_batches_hold_500_vectors() -> None:
    sizes = [len(b) for b in put_batches(_vectors(1234, 8))]
    assert sizes == [PUT_BATCH, PUT_BATCH, 234]


def test_put_batches_stay_under_the_payload_limit() -> None:
    """500 vectors of 4,096 floats would be about 30 MiB of JSON: such batches are split by size."""
    batches = list(put_batches(_vectors(500, 4096)))
    assert len(batches) > 1
    assert sum(len(b) for b in batches) == 500
    for batch in batches:
        floats = sum(len(v.data) for v in batch)
        assert floats * 16 < MAX_PUT_BYTES  # the estimate's bound per float


def test_a_vector_with_a_huge_integer_in_its_metadata_is_still_sized() -> None:
    (batch,) = put_batches(_vectors(2, 4, {"n": 2**70}))
    assert len(batch) == 2


class SlowClient:
    """PutVectors that takes ``seconds``; counts the calls in flight; throttles the first ``throttle``."""

    def __init__(self, seconds: float, throttle: int = 0) -> None:
        self.seconds = seconds
        self.throttle = throttle
        self.lock = threading.Lock()
        self.running = 0
        self.most = 0

    def put_vectors(self, **_: Any) -> dict[str, Any]:
        with self.lock:
            if self.throttle:
                self.throttle -= 1
                raise ClientError({"Error": {"Code": "TooManyRequestsException", "Message": "slow down"},
                                   "ResponseMetadata": {"HTTPStatusCode": 429}}, "PutVectors")
            self.running += 1
            self.most = max(self.most, self.running)
        time.sleep(self.seconds)
        with self.lock:
            self.running -= 1
        return {}


def _put_from_threads(store: VectorStore, threads: int, calls: int) -> None:
    def work() -> None:
        for _ in range(calls):
            store.put(_vectors(1, 4))

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()


def test_writes_in_flight_start_at_two_and_grow_to_the_maximum() -> None:
    client = SlowClient(0.01)
    store = VectorStore(client, ARN, max_writes=6, requests_per_second=1e6, vectors_per_second=1e6)
    _put_from_threads(store, threads=8, calls=30)
    assert client.most == 6
    assert store.writes.limit == 6


def test_throttling_halves_writes_in_flight() -> None:
    client = SlowClient(0.0, throttle=3)
    store = VectorStore(client, ARN, max_writes=8, requests_per_second=1e6, vectors_per_second=1e6,
                        policy=RetryPolicy(attempts=6, base=0.001, cap=0.002))
    store.writes.limit = 8
    store.put(_vectors(1, 4))
    assert store.writes.limit == 4  # halved once: the other throttles came within the cool-down
    assert store.requests.rate < 1e6  # the token buckets slowed down too


@pytest.mark.parametrize("dims", [1024, 3072])
def test_one_batch_of_1024_dims_is_one_request(dims: int) -> None:
    expected = 1 if dims == 1024 else 2
    assert len(list(put_batches(_vectors(500, dims)))) == expected
