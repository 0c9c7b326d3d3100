"""Helpers for the sync worker's integration tests: an index on the local endpoint registered in a
test database, a products table with a sync, a worker bound to the endpoint, and the two views
to compare at the end (what the source says the index must hold, and what the index holds).

Roles as in production (tests/support/pg.py): the products table belongs to the admin login,
which declares the sync, and workers log in as the worker login; ``sql`` is the superuser's, for
setting up and inspecting."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import psycopg

from sync.aws.retry import RetryPolicy
from sync.datapath.worker import Worker, WorkerOptions
from tests.support.endpoint import REGION, EndpointHandle
from tests.support.pg import ADMIN, WORKER, as_login

DIMS = 256
MODEL = "amazon.titan-embed-text-v2:0"


@dataclass
class SyncEnv:
    db_url: str
    endpoint: EndpointHandle
    index_arn: str
    sync: str = "products"

    @property
    def admin_url(self) -> str:
        return as_login(self.db_url, ADMIN)

    @property
    def worker_url(self) -> str:
        return as_login(self.db_url, WORKER)

    def sql(self, query: str, params: Any = None, *, url: str | None = None) -> list[tuple[Any, ...]]:
        with psycopg.connect(url or self.db_url, autocommit=True) as conn:
            cur = conn.execute(query, params)
            return cur.fetchall() if cur.description else []

    def admin_sql(self, query: str, params: Any = None) -> list[tuple[Any, ...]]:
        return self.sql(query, params, url=self.admin_url)

    def worker(self, worker_id: str | None = None, **options: Any) -> Worker:
        opts = WorkerOptions(batch_size=options.pop("batch_size", 50), lease_seconds=options.pop("lease_seconds", 30),
                             poll_seconds=0.05, concurrency=options.pop("concurrency", 4),
                             retry_after=options.pop("retry_after", 0.0), region=REGION,
                             endpoint_url=self.endpoint.url,
                             policy=options.pop("policy", RetryPolicy(attempts=6, max_seconds=20, base=0.01, cap=0.2)),
                             give_up_seconds=options.pop("give_up_seconds", 20.0),
                             **options)
        return Worker(self.worker_url, opts, worker_id=worker_id)

    def drain(self, **options: Any) -> None:
        self.worker(**options).run(once=True)

    def index(self) -> dict[str, dict[str, Any]]:
        """key -> metadata of every vector in the index."""
        s3v = self.endpoint.client("s3vectors")
        out: dict[str, dict[str, Any]] = {}
        token: str | None = None
        while True:
            kw: dict[str, Any] = {"indexArn": self.index_arn, "returnMetadata": True, "maxResults": 1000}
            if token:
                kw["nextToken"] = token
            resp = s3v.list_vectors(**kw)
            for v in resp.get("vectors", []):
                out[v["key"]] = v.get("metadata", {})
            token = resp.get("nextToken")
            if not token:
                return out

    def expected(self) -> dict[str, dict[str, Any]]:
        """What the source says the index must hold (unchunked sync): key -> {hash, metadata}."""
        rows = self.sql(
            f"SELECT {_q(self, 'sync_key_sql')}, {_q(self, 'sync_hash_sql')}, {_q(self, 'sync_metadata_sql')} "
            f"FROM {self.sql('SELECT source::text FROM s3vl.syncs WHERE name = %s', (self.sync,))[0][0]} AS t")
        return {k: {"hash": h, "metadata": m} for k, h, m in rows}

    def assert_converged(self) -> None:
        expected = self.expected()
        actual = self.index()
        assert set(actual) == set(expected), (sorted(set(actual) ^ set(expected)))[:10]
        for key, want in expected.items():
            got = actual[key]
            assert got["s3vl_hash"] == want["hash"], key
            assert got["s3vl_id"] == key
            for name, value in want["metadata"].items():
                assert got[name] == value, (key, name)
        assert self.sql("SELECT count(*) FROM s3vl.outbox WHERE sync_name = %s", (self.sync,))[0][0] == 0


def _q(env: SyncEnv, fn: str) -> str:
    return str(env.sql(f"SELECT s3vl.{fn}(%s, 't')", (env.sync,))[0][0])


def make_index(endpoint: EndpointHandle, dims: int = DIMS) -> str:
    s3v = endpoint.client("s3vectors")
    bucket = "b-" + uuid.uuid4().hex[:12]
    s3v.create_vector_bucket(vectorBucketName=bucket)
    resp = s3v.create_index(vectorBucketName=bucket, indexName="products", dataType="float32", dimension=dims,
                            distanceMetric="cosine",
                            metadataConfiguration={"nonFilterableMetadataKeys": ["s3vl_hash", "s3vl_text"]})
    return str(resp["indexArn"])


def register(db_url: str, name: str, arn: str, dims: int = DIMS, model: str = MODEL) -> None:
    bucket = arn.split("/")[1]
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO s3vl.indexes (name, index_arn, region, account_id, bucket_name, index_name, dimension, "
            "distance_metric, embedding_model) VALUES (%s, %s, %s, '000000000000', %s, 'products', %s, 'cosine', %s)",
            (name, arn, REGION, bucket, dims, model))


PRODUCTS_DDL = """
CREATE TABLE public.products (
    id          int PRIMARY KEY,
    name        text NOT NULL,
    description text,
    category    text,
    price       numeric(10, 2),
    in_stock    boolean DEFAULT true,
    views       int DEFAULT 0
)"""


def products_env(db_url: str, endpoint: EndpointHandle, rows: int = 20, *, model: str = MODEL, dims: int = DIMS,
                 **sync_args: Any) -> SyncEnv:
    """A products table of ``rows`` rows synced to a new index (``model``, ``dims``) by sync "products"."""
    arn = make_index(endpoint, dims)
    register(db_url, "products", arn, dims, model)
    env = SyncEnv(db_url, endpoint, arn)
    env.admin_sql(PRODUCTS_DDL)
    if rows:
        env.admin_sql("INSERT INTO products (id, name, description, category, price) "
                      "SELECT g, 'product ' || g, 'a fine thing number ' || g, 'cat' || (g %% 3), g * 1.5 "
                      "FROM generate_series(1, %s) g", (rows,))
    args = {"metadata_columns": ["category", "price", "in_stock"], "embedding_model": model, "dimensions": dims,
            **sync_args}
    names = ", ".join(f"{k} => %({k})s" for k in args)
    env.admin_sql("SELECT s3vl.create_sync(name => 'products', source => 'public.products', "
                  "index_name => 'products', text_expression => $$name || '. ' || coalesce(description, '')$$, "
                  + names + ")", args)
    return env


def bedrock_texts(endpoint: EndpointHandle) -> int:
    return int(endpoint.admin.counters().get("bedrock", {}).get("InvokeModel", {}).get("texts", 0))
