"""The pipeline over real PostgreSQL with in-memory fakes for S3 Vectors and Bedrock, to reach the
paths the local endpoint never takes (a PutVectors refused after the client-side checks passed)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
import pytest

from sync.aws.embedders.base import Embedded, Embedder
from sync.aws.s3vectors import Vector
from sync.datapath.outbox import Outbox
from sync.datapath.pipeline import Pipeline
from sync.errors import RowError, VectorStoreError
from tests.support.syncenv import PRODUCTS_DDL

ARN = "arn:aws:s3vectors:us-west-2:000000000000:bucket/bkt/index/products"


class FakeStore:
    """Holds vectors in a dict; refuses any request that contains a key in ``refuse``."""

    def __init__(self, refuse: set[str] | None = None) -> None:
        self.vectors: dict[str, Vector] = {}
        self.refuse = refuse or set()
        self.requests: list[tuple[str, int]] = []

    def put(self, vectors: Sequence[Vector]) -> int:
        self.requests.append(("put", len(vectors)))
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

    def __init__(self) -> None:
        self.texts = 0

    def embed(self, texts: Sequence[str]) -> Embedded:
        self.texts += len(texts)
        out: list[list[float] | RowError] = [
            RowError("too long") if "TOO LONG" in t else [float(len(t)), 1.0, 0.0, 0.0] for t in texts]
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
    return Outbox(db_url)


def _run(outbox: Outbox, store: FakeStore, embedder: FakeEmbedder) -> Any:
    pipe = Pipeline(outbox.sync("products"), outbox, store, embedder, "w")  # type: ignore[arg-type]
    lease = outbox.lease("w", 100, 30)
    assert lease is not None
    return pipe.process(lease)


def test_refused_put_is_retried_row_by_row(outbox: Outbox) -> None:
    store = FakeStore(refuse={"4"})
    report = _run(outbox, store, FakeEmbedder())
    assert (report.embedded, report.failed, report.completed) == (5, 1, 5)
    assert set(store.vectors) == {"1", "2", "3", "5", "6"}
    assert store.requests[0] == ("put", 6)             # one request for the batch, refused
    assert sum(1 for op, n in store.requests if op == "put" and n == 1) == 6  # then one per row
    failures = outbox.failures()
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
    assert store.vectors["1"].data == [2.0, 1.0, 0.0, 0.0]  # the stored vector, reused

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
        def embed(self, texts: Sequence[str]) -> Embedded:
            time.sleep(0.7)
            return super().embed(texts)

    seen: list[float] = []

    class WatchingStore(FakeStore):
        def put(self, vectors: Sequence[Vector]) -> int:
            with psycopg.connect(db_url) as c:
                row = c.execute("SELECT extract(epoch FROM min(lease_until) - now()) FROM s3vl.outbox").fetchone()
            seen.append(float(row[0]))  # type: ignore[index]
            return super().put(vectors)

    pipe = Pipeline(outbox.sync("products"), outbox, WatchingStore(), SlowEmbedder(), "w",  # type: ignore[arg-type]
                    lease_seconds=1.0)
    lease = outbox.lease("w", 100, 1.0)
    assert lease is not None
    report = pipe.process(lease)
    assert report.completed == 6
    assert seen
    assert seen[0] > 0.8  # renewed after the slow embedding (without it: about 0.3 s left)
