"""Benchmark the SQL -> Lambda -> S3 Vectors round trip on the local stack.

Starts a private PostgreSQL 15 cluster (with the local aws_lambda shim and sql/ installed) and a
local AWS endpoint, loads N vectors (default 100,000 x 1,024, cosine) with PutVectors, configures
s3vl and registers the index, then times, each over --queries random query vectors:

* ``s3vl.query_vectors(..., top_k => 10)`` from psycopg: the whole path a user sees
  (PL/pgSQL -> aws_lambda.invoke shim -> HTTP Invoke -> query Lambda -> boto3 QueryVectors);
* the same with a metadata filter;
* ``SELECT s3vl._invoke('ping')``: the SQL -> Lambda path alone (no S3 Vectors);
* boto3 QueryVectors directly: the S3 Vectors part alone.

Prints median and p99 of each. The published walkthrough quotes 100-500 ms on AWS.

    .venv/bin/python tests/bench/bench_query_sql.py [--vectors 100000] [--dim 1024] [--queries 200]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import numpy as np
import psycopg
from botocore.config import Config

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from s3vl_local.cluster import Cluster
from s3vl_local.endpoint import process
from s3vl_local.processes import free_port
from s3vl_local.stack import install_local_shims
from sync.db import schema

LAMBDA_ARN = "arn:aws:lambda:us-west-2:000000000000:function:s3vl-query"
CATEGORIES = [f"cat-{i}" for i in range(20)]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def timed(name: str, n: int, fn: Callable[[int], object]) -> float:
    for i in range(min(5, n)):  # warm-up: first calls build clients, plans, connections
        fn(i)
    samples = []
    for i in range(n):
        t0 = time.perf_counter()
        fn(i)
        samples.append((time.perf_counter() - t0) * 1000)
    median = statistics.median(samples)
    print(f"{name:<48} n={n:<4} median {median:7.1f} ms   p99 {pct(samples, 0.99):7.1f} ms")
    return median


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vectors", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--load-threads", type=int, default=2)
    args = parser.parse_args()
    print("command:", " ".join([".venv/bin/python", *sys.argv]))

    tmp = Path(tempfile.mkdtemp(prefix="s3vl-bench-query-"))
    tmp.chmod(0o755)
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    pid = process.start("127.0.0.1", port, tmp / "endpoint", tmp / "endpoint.log")
    cluster = Cluster(tmp / "pg", free_port(), durable=False)
    try:
        cluster.up()
        url = cluster.url()
        install_local_shims(url)
        schema.install(url)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"ALTER DATABASE {url.rsplit('/', 1)[1]} SET aws_lambda.endpoint_url = '{endpoint}'")

        s3v = boto3.client("s3vectors", endpoint_url=endpoint, region_name="us-west-2",
                           aws_access_key_id="s3vl-local", aws_secret_access_key="s3vl-local",
                           config=Config(parameter_validation=False))
        s3v.create_vector_bucket(vectorBucketName="bench")
        s3v.create_index(vectorBucketName="bench", indexName="bench", dataType="float32", dimension=args.dim,
                         distanceMetric="cosine")
        index_arn = s3v.get_index(vectorBucketName="bench", indexName="bench")["index"]["indexArn"]
        rng = np.random.default_rng(11)

        def put(start: int) -> None:
            n = min(args.batch, args.vectors - start)
            data = np.random.default_rng(start).standard_normal((n, args.dim), dtype=np.float32)
            s3v.put_vectors(indexArn=index_arn, vectors=[
                {"key": f"doc-{start + i}", "data": {"float32": data[i].tolist()},
                 "metadata": {"category": CATEGORIES[(start + i) % len(CATEGORIES)], "s3vl_id": str(start + i)}}
                for i in range(n)])

        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=args.load_threads) as pool:
            list(pool.map(put, range(0, args.vectors, args.batch)))
        load_s = time.perf_counter() - started
        print(f"loaded {args.vectors} x {args.dim} in {load_s:.1f} s ({args.vectors / load_s:.0f} vectors/s)")

        queries = [rng.standard_normal(args.dim, dtype=np.float32).tolist() for _ in range(args.queries + 5)]
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("SELECT s3vl.configure(%s, 'us-west-2')", (LAMBDA_ARN,))
            conn.execute("SELECT s3vl.register_index('bench', %s)", (index_arn,))

            def sql_query(i: int) -> object:
                rows = conn.execute("SELECT * FROM s3vl.query_vectors(%s::float8[], 'bench', top_k => 10)",
                                    (queries[i],)).fetchall()
                assert len(rows) == 10, rows
                return rows

            def sql_filtered(i: int) -> object:
                return conn.execute(
                    "SELECT * FROM s3vl.query_vectors(%s::float8[], 'bench', top_k => 10, "
                    "metadata_filter => '{\"category\": \"cat-3\"}')", (queries[i],)).fetchall()

            def sql_ping(i: int) -> object:
                return conn.execute("SELECT s3vl._invoke('ping')").fetchone()

            def direct(i: int) -> object:
                return s3v.query_vectors(indexArn=index_arn, topK=10, queryVector={"float32": queries[i]},
                                         returnDistance=True, returnMetadata=True)

            e2e = timed("s3vl.query_vectors top_k=10 (SQL->Lambda->S3V)", args.queries, sql_query)
            timed("s3vl.query_vectors top_k=10 + filter", args.queries, sql_filtered)
            ping = timed("s3vl._invoke('ping') (SQL->Lambda only)", args.queries, sql_ping)
            s3 = timed("boto3 QueryVectors top_k=10 (S3V only)", args.queries, direct)
        print(f"=> of the {e2e:.1f} ms median round trip, ~{ping:.1f} ms is SQL->Lambda overhead and "
              f"~{s3:.1f} ms the S3 Vectors query; the walkthrough quotes 100-500 ms on AWS.")
        print(f"cpu: {os.cpu_count()} cores (shared with whatever else runs)")
    finally:
        cluster.destroy()
        process.stop(pid)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
