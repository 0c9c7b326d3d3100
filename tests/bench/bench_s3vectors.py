"""Benchmark the local S3 Vectors endpoint through the unmodified boto3 client.

Loads N vectors (default 100,000 x 1,024, cosine, 3 filterable metadata keys) with PutVectors
batches of 500, then runs filtered topK=10 QueryVectors. Prints median and p99 for both, as
seen by the client (boto3 serialisation + HTTP + server) and by the server alone
(``x-s3vl-server-ms`` header). boto3 itself spends most of a 500 x 1,024 PutVectors building
the JSON body (it walks every float): that cost is the same against AWS.

    .venv/bin/python tests/bench/bench_s3vectors.py [--vectors 100000] [--dim 1024] [--queries 100]
        [--data-dir DIR]   # keep the loaded store in DIR and reuse it on the next run
"""

from __future__ import annotations

import argparse
import shutil
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import boto3
import numpy as np
from botocore.awsrequest import AWSResponse
from botocore.config import Config

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from s3vl_local.endpoint import process

CATEGORIES = [f"cat-{i}" for i in range(20)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(name: str, client_ms: list[float], server_ms: list[float]) -> None:
    print(
        f"{name:<34} n={len(client_ms):<4} client median {statistics.median(client_ms):7.1f} ms  "
        f"p99 {pct(client_ms, 0.99):7.1f} ms | server median {statistics.median(server_ms):7.1f} ms  "
        f"p99 {pct(server_ms, 0.99):7.1f} ms"
    )


def boto3_only_ms(client: Any, args: argparse.Namespace, runs: int = 5) -> float:
    """What boto3 itself spends on one PutVectors (validate, serialise, sign): the request is
    answered in-process by a ``before-send`` hook, so no server time is included."""
    data = np.random.default_rng(1).standard_normal((args.batch, args.dim), dtype=np.float32)
    vectors = [{"key": f"x{i}", "data": {"float32": data[i].tolist()}} for i in range(args.batch)]

    def short_circuit(**_: Any) -> AWSResponse:
        return AWSResponse("http://local", 200, {}, _Raw(b"{}"))

    client.meta.events.register("before-send.s3vectors.PutVectors", short_circuit)
    try:
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            client.put_vectors(vectorBucketName="bench", indexName="bench", vectors=vectors)
            times.append((time.perf_counter() - t0) * 1000)
    finally:
        client.meta.events.unregister("before-send.s3vectors.PutVectors", short_circuit)
    return statistics.median(times)


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Any:
        yield self.body


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vectors", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument(
        "--no-param-validation",
        action="store_true",
        help="botocore Config(parameter_validation=False): skip the client-side walk over every float",
    )
    parser.add_argument("--data-dir", type=Path, help="reuse (or create) a loaded store here; kept afterwards")
    args = parser.parse_args()

    print("command:", " ".join([".venv/bin/python", *sys.argv]))
    tmp = args.data_dir or Path(tempfile.mkdtemp(prefix="s3vl-bench-"))
    port = free_port()
    t0 = time.perf_counter()
    pid = process.start("127.0.0.1", port, tmp / "data", tmp / "endpoint.log", timeout=300)
    print(f"endpoint healthy after {time.perf_counter() - t0:.1f} s")
    try:
        client = boto3.client(
            "s3vectors",
            endpoint_url=f"http://127.0.0.1:{port}",
            region_name="us-west-2",
            aws_access_key_id="s3vl-local",
            aws_secret_access_key="s3vl-local",
            config=Config(parameter_validation=not args.no_param_validation),
        )
        loaded = 0
        if client.list_vector_buckets(prefix="bench")["vectorBuckets"]:
            loaded = sum(
                len(p["vectors"])
                for p in client.get_paginator("list_vectors").paginate(vectorBucketName="bench", indexName="bench")
            )
            print(f"reusing {loaded} vectors in {tmp}")
        else:
            client.create_vector_bucket(vectorBucketName="bench")
            client.create_index(
                vectorBucketName="bench",
                indexName="bench",
                dataType="float32",
                dimension=args.dim,
                distanceMetric="cosine",
            )
        rng = np.random.default_rng(7 + loaded)
        put_client: list[float] = []
        put_server: list[float] = []
        started = time.perf_counter()
        # A reused store gets 20 batches of fresh keys, so PutVectors is still measured.
        first = loaded if loaded < args.vectors else args.vectors + loaded
        last = args.vectors if loaded < args.vectors else first + 20 * args.batch
        for start in range(first, last, args.batch):
            n = min(args.batch, last - start)
            data = rng.standard_normal((n, args.dim), dtype=np.float32)
            vectors = [
                {
                    "key": f"doc-{start + i}",
                    "data": {"float32": data[i].tolist()},
                    "metadata": {
                        "category": CATEGORIES[(start + i) % len(CATEGORIES)],
                        "price": float((start + i) % 1000),
                        "in_stock": (start + i) % 3 != 0,
                    },
                }
                for i in range(n)
            ]
            t0 = time.perf_counter()
            resp = client.put_vectors(vectorBucketName="bench", indexName="bench", vectors=vectors)
            put_client.append((time.perf_counter() - t0) * 1000)
            put_server.append(float(resp["ResponseMetadata"]["HTTPHeaders"]["x-s3vl-server-ms"]))
        load_s = time.perf_counter() - started
        print(f"put {last - first} x {args.dim} in {load_s:.1f} s ({(last - first) / load_s:.0f} vectors/s)")
        summary(f"PutVectors ({args.batch} x {args.dim})", put_client, put_server)
        print(f"{'  boto3 alone (no request sent)':<34} median {boto3_only_ms(client, args):7.1f} ms")

        for label, flt in [
            ("QueryVectors topK=10 unfiltered", None),
            ("QueryVectors topK=10 filtered", {"category": "cat-3", "price": {"$lt": 500}, "in_stock": True}),
        ]:
            q_client: list[float] = []
            q_server: list[float] = []
            for _ in range(args.queries):
                q = rng.standard_normal(args.dim, dtype=np.float32).tolist()
                kwargs = {"filter": flt} if flt else {}
                t0 = time.perf_counter()
                resp = client.query_vectors(
                    vectorBucketName="bench", indexName="bench", topK=10, queryVector={"float32": q},
                    returnDistance=True, returnMetadata=True, **kwargs,
                )  # fmt: skip
                q_client.append((time.perf_counter() - t0) * 1000)
                q_server.append(float(resp["ResponseMetadata"]["HTTPHeaders"]["x-s3vl-server-ms"]))
            summary(label, q_client, q_server)
    finally:
        process.stop(pid)
        if args.data_dir is None:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
