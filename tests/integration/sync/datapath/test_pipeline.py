"""The pipeline over real PostgreSQL with in-memory fakes for S3 Vectors and Bedrock, to reach the
paths the local endpoint never takes (a PutVectors refused after the client-side checks passed, a
row whose requests keep failing with 5xx while the others succeed)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import psycopg
import pytest

from sync.aws.embedders.base import Embedded, Embedder
from sync.aws.retry import RetryPolicy
from sync.aws.s3vectors import Vector
from sync.datapath.outbox import Outbox
from sync.datapath.pipeline import Pipeline
from sync.db.connection import Database
from sync.errors import RowError, TransientAwsError, VectorStoreError
from tests.support.syncenv import PRODUCTS_DDL

ARN = "arn:aws:s3vectors:us-west-2:000000000000:bucket/bkt/index/products"


class FakeStore:
    """Holds vectors in a dict; refuses any request that contains a key in ``refuse`` (a 4xx), and
    fails any that contains a key in ``poison`` as a 5xx would after its retries; ``down``: every
    request fails so, and the service does not answer."""

    def __init__(self, refuse: set[str] | None = None, poison: set[str] | None = None, down: bool = False) -> None:
        self.vectors: dict[str, Vector] = {}
        self.refuse = refuse or set()
        self.poison = poison or set()
        self.down = down
        self.requests: list[tuple[str, int]] = []

    def reachable(self) -> bool:
        return not self.down

    def put(self, vectors: Sequence[Vector], *, policy: RetryPolicy | None = None) -> int:
        self.requests.append(("put", len(vectors)))
        if self.down or any(v.key in self.poison for v in vectors):
            raise TransientAwsError("s3vectors PutVectors: InternalServerException after 8 attempts")
        if any(v.key in self.refuse for v in vectors):
            raise VectorStoreError("PutVectors: ValidationException: invalid metadata")
        for v in vectors:
            self.vectors[v.key] = v
        return 1

    def delete(self, keys: Sequence[str]) -> int:
        self.requests.append(("delete", len(keys)))
        for k in keys:
            self.vectors.pop(k, None)
        return 1

    def get(self, keys: Sequence[str], *, data: bool = True, metadata: bool = False) -> dict[str, Vector]:
        self.requests.append(("get", len(keys)))
        return {k: self.vectors[k] for k in keys if k in self.vectors}


class FakeEmbedder(Embedder):
    model = "amazon.titan-embed-text-v2:0"
    dimensions = 4

    def __init__(self, poison: set[str] | None = None, throttled: bool = False) -> None:
        self.texts = 0
        self.poison = poison or set()  # texts whose calls keep failing with 5xx
        self.throttled = throttled

    def embed(self, texts: Sequence[str], *, policy: RetryPolicy | None = None,
              stop: threading.Event | None = None) -> Embedded:
        if self.throttled:
            raise TransientAwsError("bedrock InvokeModel: ThrottlingException after 8 attempts", throttled=True)
        if self.poison & set(texts):
            raise TransientAwsError("bedrock InvokeModel: ModelErrorException 500 after 8 attempts")
        self.texts += len(texts)
        out: list[np.ndarray | RowError] = [
            RowError("too long") if "TOO LONG" in t else np.array([len(t), 1.0, 0.0, 0.0], dtype=np.float32)
            for t in texts]
        return Embedded(vectors=out, calls=len(texts), texts=len(texts))


@pytest.fixture
def outbox(db_url: str) -> Outbox:
    with psycopg.connect(db_url, autocommit=True) as c:
        c.execute("INSERT INTO s3vl.indexes (name, index_arn, region, account_id, bucket_name, index_name, dimension) "
                  "VALUES ('products', %s, 'us-west-2', '000000000000', 'bkt', 'products', 256)", (ARN,))
        c.execute(PRODUCTS_DDL)
        c.execute("INSERT INTO products (id, name, category) SELECT g, 'p' || g, 'c' FROM generate_series(1, 6) g")
        c.execute("SELECT s3vl.create_sync('products', 'products', 'products', 'name', ARRAY['category'], "
                  "dimensions => 256, max_attempts => 1)")
    return Outbox(Database(db_url))


def _run(outbox: Outbox, store: FakeStore, embedder: FakeEmbedder) -> Any:
    pipe = Pipeline(outbox.sync("products"), store, embedder, "w")  # type: ignore[arg-type]
    lease = outbox.lease("w", 100, 30)
    assert lease is not None
    return pipe.process(lease, outbox)


def test_refused_put_is_retried_row_by_row(outbox: Outbox) -> None:
    store = FakeStore(refuse={"4"})
    report = _run(outbox, store, FakeEmbedder())
    assert (report.embedded, report.failed, report.completed) == (5, 1, 5)
    assert set(store.vectors) == {"1", "2", "3", "5", "6"}
    assert store.requests[0] == ("put", 6)             # one request for the batch, refused
    assert sum(1 for op, n in store.requests if op == "put" and n == 1) == 6  # then one per row
    failures = outbox.db.all("sync_failures", {"limit": 10})
    assert [(f["key"], "ValidationException" in f["last_error"]) for f in failures] == [("4", True)]


def test_embedding_refusal_and_metadata_only_reuse(outbox: Outbox, db_url: str) -> None:
    store, embedder = FakeStore(), FakeEmbedder()
    with psycopg.connect(db_url, autocommit=True) as c:
        c.execute("UPDATE products SET name = 'TOO LONG' WHERE id = 2")
    report = _run(outbox, store, embedder)
    assert (report.embedded, report.failed) == (5, 1)
    assert embedder.texts == 6
    with psycopg.connect(db_url, autocommit=True) as c:
        c.execute("UPDATE products SET category = 'new' WHERE id IN (1, 3)")
    report = _run(outbox, store, embedder)
    assert (report.metadata_only, report.embedded) == (2, 0)
    assert embedder.texts == 6                          # no new text embedded
    assert store.vectors["1"].metadata["category"] == "new"
    assert store.vectors["1"].data.tolist() == [2.0, 1.0, 0.0, 0.0]  # the stored vector, reused

    # a metadata-only row whose vector vanished from the index is embedded after all
    del store.vectors["3"]
    with psycopg.connect(db_url, autocommit=True) as c:
        c.execute("UPDATE products SET category = 'newer' WHERE id = 3")
    report = _run(outbox, store, embedder)
    assert (report.metadata_only, report.embedded) == (0, 1)
    assert "3" in store.vectors


def test_slow_batch_keeps_its_lease(outbox: Outbox, db_url: str) -> None:
    import time

    class SlowEmbedder(FakeEmbedder):
        def embed(self, texts: Sequence[str], *, policy: RetryPolicy | None = None,
                  stop: threading.Event | None = None) -> Embedded:
            time.sleep(0.7)
            return super().embed(texts)

    seen: list[float] = []

    class WatchingStore(FakeStore):
        def put(self, vectors: Sequence[Vector], *, policy: RetryPolicy | None = None) -> int:
            with psycopg.connect(db_url) as c:
                row = c.execute("SELECT extract(epoch FROM min(lease_until) - now()) FROM s3vl.outbox").fetchone()
            seen.append(float(row[0]))  # type: ignore[index]
            return super().put(vectors)

    pipe = Pipeline(outbox.sync("products"), WatchingStore(), SlowEmbedder(), "w",  # type: ignore[arg-type]
                    lease_seconds=1.0)
    lease = outbox.lease("w", 100, 1.0)
    assert lease is not None
    report = pipe.process(lease, outbox)
    assert report.completed == 6
    assert seen
    assert seen[0] > 0.8  # renewed after the slow embedding (without it: about 0.3 s left)


def _failures(outbox: Outbox) -> dict[str, tuple[int, str]]:
    rows = outbox.db.all("sync_failures", {"limit": 10})
    return {str(r["key"]): (int(r["attempts"]), str(r["last_error"])) for r in rows}


def test_a_row_whose_put_keeps_failing_with_5xx_fails_alone(outbox: Outbox) -> None:
    """A poison row (S3 Vectors answers 5xx for any request holding it) is found by halving the
    batch, charged an attempt and failed with its error; the rest of the batch syncs."""
    store = FakeStore(poison={"4"})
    report = _run(outbox, store, FakeEmbedder())
    assert (report.embedded, report.failed, report.completed) == (5, 1, 5)
    assert set(store.vectors) == {"1", "2", "3", "5", "6"}
    assert _failures(outbox) == {"4": (1, "writing this row kept failing: s3vectors PutVectors: "
                                          "InternalServerException after 8 attempts")}


def test_a_text_whose_embedding_keeps_failing_with_5xx_fails_alone(outbox: Outbox, db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as c:
        c.execute("UPDATE products SET name = 'crashes the model' WHERE id = 5")
    store = FakeStore()
    report = _run(outbox, store, FakeEmbedder(poison={"crashes the model"}))
    assert (report.embedded, report.failed, report.completed) == (5, 1, 5)
    assert set(store.vectors) == {"1", "2", "3", "4", "6"}
    assert list(_failures(outbox)) == ["5"]
    assert "embedding this row kept failing: bedrock InvokeModel: ModelErrorException" in _failures(outbox)["5"][1]


def test_an_outage_blames_no_row(outbox: Outbox) -> None:
    """Every part of the batch fails and the service does not answer: the error goes up (the
    worker gives the batch back) and no row is charged an attempt."""
    with pytest.raises(TransientAwsError, match="InternalServerException"):
        _run(outbox, FakeStore(down=True), FakeEmbedder())
    assert _failures(outbox) == {}
    assert outbox.db.value("pending", {"sync": "products"}) == 6


def test_throttling_is_never_isolated(outbox: Outbox) -> None:
    store = FakeStore()
    with pytest.raises(TransientAwsError, match="ThrottlingException"):
        _run(outbox, store, FakeEmbedder(throttled=True))
    assert _failures(outbox) == {}
    assert store.requests == []
