"""Throughput of the whole sync pipeline: trigger -> outbox -> worker -> local Bedrock -> S3 Vectors.

Run: ``.venv/bin/python tests/bench/bench_pipeline.py [--rows 5000] [--minilm-rows 600]``

It starts a private PostgreSQL cluster and private local endpoints (nothing shared), then:

1. **fast embedder** (hashed features): backfill ``--rows`` rows with Titan v2 (one text per call,
   concurrent) and with Cohere (96 texts per call); then a metadata-only update of every row
   (vectors reused, no model call) and an unchanged resync (no AWS call). Prints rows/s.
2. **semantic model** (MiniLM): the local embedder's own throughput in-process (texts/s, batches
   of 96), then the pipeline's rows/s through the endpoint with Cohere batching, and the ratio
   pipeline / embedder: the share of the model's speed the pipeline keeps (1.0 = no overhead).

Figures are noisy on a shared 2-core machine: compare ratios, and rerun.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

# One BLAS thread, as the endpoint runs MiniLM (local/s3vl_local/endpoint/process.py): set before numpy
# is imported, so the in-process figure is measured under the same conditions.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from s3vl_local.endpoint import process
from sync.aws.retry import RetryPolicy
from sync.datapath.worker import Worker, WorkerOptions
from tests.support.endpoint import DUMMY_KEY, REGION, EndpointHandle, free_port
from tests.support.pg import make_root, session_cluster
from tests.support.syncenv import PRODUCTS_DDL, make_index, register


def start_endpoint(root: Path, embedder: str) -> EndpointHandle:
    port = free_port()
    data, log = root / f"ep-{embedder}", root / f"ep-{embedder}.log"
    pid = process.start("127.0.0.1", port, data, log, embedder=embedder, timeout=120)
    return EndpointHandle("127.0.0.1", port, data, log, pid)


def setup(db_url: str, endpoint: EndpointHandle, rows: int, model: str, dims: int) -> None:
    arn = make_index(endpoint, dims)
    register(db_url, "products", arn, dims)
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(PRODUCTS_DDL)
        conn.execute("INSERT INTO products (id, name, description, category, price) "
                     "SELECT g, 'product ' || g, 'a durable trail running shoe with grippy soles, model ' || g "
                     "|| ', for mud and rock', 'cat' || (g %% 7), g * 1.5 FROM generate_series(1, %s) g", (rows,))
        conn.execute("SELECT s3vl.create_sync('products', 'products', 'products', "
                     "$$name || '. ' || coalesce(description, '')$$, ARRAY['category', 'price', 'in_stock'], "
                     "embedding_model => %s, dimensions => %s)", (model, dims))


def drain(db_url: str, endpoint: EndpointHandle, concurrency: int = 4, batch: int = 200) -> tuple[float, int]:
    opts = WorkerOptions(batch_size=batch, lease_seconds=300, poll_seconds=0.05, concurrency=concurrency,
                         retry_after=0, region=REGION, endpoint_url=endpoint.url,
                         policy=RetryPolicy(attempts=8, max_seconds=120))
    start = time.perf_counter()
    totals = Worker(db_url, opts).run(once=True)
    return time.perf_counter() - start, totals.keys


def run_fast(cluster: object, root: Path, rows: int) -> None:
    endpoint = start_endpoint(root, "hash")
    try:
        for model, dims in (("amazon.titan-embed-text-v2:0", 256), ("cohere.embed-english-v3", 1024)):
            db_url = cluster.create_database(installed=True)  # type: ignore[attr-defined]
            setup(db_url, endpoint, rows, model, dims)
            seconds, keys = drain(db_url, endpoint)
            print(f"  backfill  {model:32s} {keys:6d} rows in {seconds:6.2f}s = {keys / seconds:8.0f} rows/s")
            with psycopg.connect(db_url, autocommit=True) as conn:
                conn.execute("UPDATE products SET price = price + 1")
            texts_before = endpoint.admin.counters()["bedrock"]["InvokeModel"]["texts"]
            seconds, keys = drain(db_url, endpoint)
            texts = endpoint.admin.counters()["bedrock"]["InvokeModel"]["texts"] - texts_before
            print(f"  metadata-only update                       {keys:6d} rows in {seconds:6.2f}s = "
                  f"{keys / seconds:8.0f} rows/s  (model texts: {texts})")
            with psycopg.connect(db_url, autocommit=True) as conn:
                conn.execute("SELECT s3vl.resync('products')")
            seconds, keys = drain(db_url, endpoint)
            print(f"  unchanged resync                           {keys:6d} rows in {seconds:6.2f}s = "
                  f"{keys / seconds:8.0f} rows/s")
            cluster.drop_database(db_url)  # type: ignore[attr-defined]
    finally:
        endpoint.stop()


def run_minilm(cluster: object, root: Path, rows: int) -> None:
    from s3vl_local.embedding import get_embedder

    emb = get_embedder("minilm")
    emb.warm()
    texts = [f"product {g}. a durable trail running shoe with grippy soles, model {g}, for mud and rock"
             for g in range(1, rows + 1)]
    start = time.perf_counter()
    for i in range(0, len(texts), 96):
        emb.embed(texts[i:i + 96], 1024)
    own = len(texts) / (time.perf_counter() - start)
    print(f"  MiniLM in-process (batches of 96)          {len(texts):6d} texts = {own:8.1f} texts/s")
    endpoint = start_endpoint(root, "minilm")
    try:
        db_url = cluster.create_database(installed=True)  # type: ignore[attr-defined]
        setup(db_url, endpoint, rows, "cohere.embed-english-v3", 1024)
        seconds, keys = drain(db_url, endpoint, concurrency=2, batch=192)
        rate = keys / seconds
        print(f"  pipeline via endpoint (Cohere batching)    {keys:6d} rows  = {rate:8.1f} rows/s")
        print(f"  ratio pipeline / embedder                                 = {rate / own:8.2f}")
        cluster.drop_database(db_url)  # type: ignore[attr-defined]
    finally:
        endpoint.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5000, help="rows for the fast-embedder runs (0 = skip)")
    parser.add_argument("--minilm-rows", type=int, default=600, help="rows for the MiniLM run (0 = skip)")
    args = parser.parse_args()
    os.environ.update({"AWS_ACCESS_KEY_ID": DUMMY_KEY, "AWS_SECRET_ACCESS_KEY": DUMMY_KEY, "AWS_REGION": REGION,
                       "S3VL_LOG_LEVEL": "warning"})
    from sync.telemetry.logs import configure_logging

    configure_logging("warning", "console")
    root = make_root("s3vl-bench-pipeline-")
    with session_cluster() as cluster:
        if args.rows:
            print(f"fast embedder (hash), {args.rows} rows:")
            run_fast(cluster, root, args.rows)
        if args.minilm_rows:
            print(f"semantic model (MiniLM), {args.minilm_rows} rows:")
            run_minilm(cluster, root, args.minilm_rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
