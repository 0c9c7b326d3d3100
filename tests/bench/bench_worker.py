"""The sync worker as it runs in production: ``s3vl worker --once`` processes against the local stack.

Run: ``.venv/bin/python tests/bench/bench_worker.py [--rows 20000] [--only backfill,updates,latency,minilm]``

It starts a private PostgreSQL cluster and a private local endpoint (nothing shared), loads a
products table, declares a sync and times worker subprocesses until the queue is empty. CPU is
each process's own (user + system): the workers' from ``wait4``, the endpoint's from
``/proc/<pid>/stat``. "net" subtracts what a worker spends starting and stopping with nothing to
do (measured once per run), so it is the cost per vector of the work itself.

* **backfill**: Cohere v3 (96 texts a call) at 1,024 dims, Titan v2 (one text a call) at 1,024
  and 256 dims, hash embedder in the endpoint. Goals: worker CPU <= 0.3 ms per vector batched,
  <= 1.0 ms with Titan; >= 2,500 vectors/s for one worker with Cohere.
* **updates**: a metadata-only change of every row (vectors reused, no model call; goal >= 2,500
  rows/s) and an unchanged resync (no AWS call; goal >= 20,000 rows/s).
* **latency**: 50 ms per Bedrock call and 100 ms per PutVectors injected, Titan 256 (one call per
  text): one worker at a fixed concurrency of 8 (goal >= 0.9 x 8 / 50 ms = 144 rows/s), adaptive
  concurrency (goal >= 200 rows/s), adaptive with 20% of Bedrock calls throttled (no row may fail),
  and four workers at a fixed 8 (goal >= 3.5 x one).
* **minilm**: the semantic model's own rate in-process against the pipeline through the endpoint
  (goal: ratio >= 0.9).

Figures are noisy on a shared 2-core machine: compare CPU per vector and ratios, and rerun.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# One BLAS thread, as the endpoint runs MiniLM (local/s3vl_local/endpoint/process.py): set before numpy
# is imported, so the in-process figure is measured under the same conditions.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from s3vl_local.endpoint import process
from tests.support.endpoint import DUMMY_KEY, REGION, EndpointHandle, free_port
from tests.support.pg import TestCluster, make_root, session_cluster
from tests.support.syncenv import PRODUCTS_DDL, make_index, register

COHERE, TITAN = "cohere.embed-english-v3", "amazon.titan-embed-text-v2:0"
TICK = os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a running process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


@dataclass
class Run:
    rows: int
    seconds: float
    worker_cpu: float
    endpoint_cpu: float
    failed: int

    def rate(self, startup_wall: float) -> float:
        """Rows per second once started: the wall time less a worker's start and exit."""
        return self.rows / max(self.seconds - startup_wall, 1e-3)

    def line(self, label: str, startup_cpu: float, startup_wall: float, workers: int = 1) -> str:
        n = max(self.rows, 1)
        net = max(self.worker_cpu - workers * startup_cpu, 0.0)
        return (f"  {label:44s} {self.rows:6d} rows {self.seconds:6.2f}s {self.rate(startup_wall):7.0f} rows/s net | "
                f"worker CPU {1000 * net / n:5.3f} ms/vector net ({1000 * self.worker_cpu / n:5.3f} all) | "
                f"endpoint CPU {1000 * self.endpoint_cpu / n:5.3f} ms/vector"
                + (f" | FAILED {self.failed}" if self.failed else ""))


class Bench:
    def __init__(self, cluster: TestCluster, root: Path, embedder: str = "hash",
                 settings: dict[str, str] | None = None) -> None:
        self.cluster = cluster
        self.settings = settings or {}
        self.root = root
        port = free_port()
        data, log = root / f"ep-{embedder}", root / f"ep-{embedder}.log"
        pid = process.start("127.0.0.1", port, data, log, embedder=embedder, timeout=180)
        self.endpoint = EndpointHandle("127.0.0.1", port, data, log, pid)
        self.startup_cpu = 0.0
        self.startup_wall = 0.0

    def close(self) -> None:
        self.endpoint.stop()

    def env(self, db_url: str, **settings: Any) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("S3VL_", "AWS_"))}
        env.update({"S3VL_DATABASE_URL": db_url, "AWS_ENDPOINT_URL": self.endpoint.url, "AWS_REGION": REGION,
                    "AWS_ACCESS_KEY_ID": DUMMY_KEY, "AWS_SECRET_ACCESS_KEY": DUMMY_KEY,
                    "S3VL_LOG_LEVEL": "warning", "S3VL_LOG_FORMAT": "json", "S3VL_WORKER_POLL_SECONDS": "0.05",
                    "S3VL_WORKER_RETRY_SECONDS": "0"})
        env.update({f"S3VL_{k.upper()}": str(v) for k, v in {**self.settings, **settings}.items()})
        return env

    def database(self, rows: int, model: str, dims: int) -> str:
        db_url = self.cluster.create_database(installed=True)
        arn = make_index(self.endpoint, dims)
        register(db_url, "products", arn, dims)
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute(PRODUCTS_DDL)
            conn.execute("INSERT INTO products (id, name, description, category, price) "
                         "SELECT g, 'product ' || g, 'a durable trail running shoe with grippy soles, model ' || g "
                         "|| ', for mud and rock', 'cat' || (g %% 7), g * 1.5 FROM generate_series(1, %s) g", (rows,))
            conn.execute("SELECT s3vl.create_sync('products', 'products', 'products', "
                         "$$name || '. ' || coalesce(description, '')$$, ARRAY['category', 'price', 'in_stock'], "
                         "embedding_model => %s, dimensions => %s)", (model, dims))
        return db_url

    def drain(self, db_url: str, workers: int = 1, **settings: Any) -> Run:
        """Run ``workers`` ``s3vl worker --once`` processes until the queue is empty."""
        with psycopg.connect(db_url) as conn:
            pending = conn.execute("SELECT count(*) FROM s3vl.outbox WHERE status = 'pending'").fetchone()
        env = self.env(db_url, **settings)
        ep0 = process_cpu(self.endpoint.pid)
        start = time.perf_counter()
        procs = [subprocess.Popen([sys.executable, "-m", "sync", "worker", "--once"], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for _ in range(workers)]
        cpu = 0.0
        for p in procs:
            _, status, usage = os.wait4(p.pid, 0)
            cpu += usage.ru_utime + usage.ru_stime
            if os.waitstatus_to_exitcode(status) not in (0, 3):
                raise SystemExit(f"worker exited {status}: {p.stderr.read().decode() if p.stderr else ''}")
        seconds = time.perf_counter() - start
        endpoint_cpu = process_cpu(self.endpoint.pid) - ep0
        with psycopg.connect(db_url) as conn:
            failed = conn.execute("SELECT count(*) FROM s3vl.outbox WHERE status = 'failed'").fetchone()
        return Run(int(pending[0]) if pending else 0, seconds, cpu, endpoint_cpu, int(failed[0]) if failed else 0)

    def measure_startup(self) -> None:
        db_url = self.cluster.create_database(installed=True)
        runs = [self.drain(db_url) for _ in range(3)]
        self.startup_cpu = min(r.worker_cpu for r in runs)
        self.startup_wall = min(r.seconds for r in runs)
        print(f"  a worker with nothing to do: {self.startup_cpu:.3f} s CPU, {self.startup_wall:.2f} s "
              "(start, one empty lease, exit): subtracted below as 'net'")
        self.cluster.drop_database(db_url)


MODELS = {"cohere-1024": (COHERE, 1024, 500), "cohere4-1024": ("cohere.embed-v4:0", 1024, 500),
          "titan-1024": (TITAN, 1024, 200), "titan-256": (TITAN, 256, 200)}


def run_backfill(bench: Bench, rows: int, updates: bool, models: list[str]) -> None:
    for model, dims, batch in (MODELS[m] for m in models):
        db_url = bench.database(rows, model, dims)
        run = bench.drain(db_url, worker_batch_size=batch)
        print(run.line(f"backfill {model} {dims}", bench.startup_cpu, bench.startup_wall))
        if updates and model == COHERE:
            with psycopg.connect(db_url, autocommit=True) as conn:
                conn.execute("UPDATE products SET price = price + 1")
            run = bench.drain(db_url, worker_batch_size=batch)
            print(run.line("metadata-only update", bench.startup_cpu, bench.startup_wall))
            with psycopg.connect(db_url, autocommit=True) as conn:
                conn.execute("SELECT s3vl.resync('products')")
            run = bench.drain(db_url, worker_batch_size=1000)
            print(run.line("unchanged resync", bench.startup_cpu, bench.startup_wall))
        bench.cluster.drop_database(db_url)


def invoke_floor(bench: Bench, calls: int = 500) -> None:
    """What one InvokeModel costs in botocore itself (one thread, nothing else): Titan's floor."""
    import json

    from sync.aws import clients

    os.environ.update({"AWS_ACCESS_KEY_ID": DUMMY_KEY, "AWS_SECRET_ACCESS_KEY": DUMMY_KEY})
    client = clients.client("bedrock-runtime", REGION, bench.endpoint.url, 4)

    def call(i: int) -> None:
        body = json.dumps({"inputText": f"product {i}. a durable trail running shoe", "dimensions": 256})
        client.invoke_model(modelId=TITAN, body=body, contentType="application/json",
                            accept="application/json")["body"].read()

    for i in range(20):
        call(i)
    start = time.process_time()
    for i in range(calls):
        call(i)
    print(f"  boto3 InvokeModel alone (Titan 256, one thread): {1000 * (time.process_time() - start) / calls:.3f} ms "
          "CPU per call: the floor under Titan's CPU per vector")


def run_latency(bench: Bench, rows: int) -> None:
    latency = [{"service": "bedrock", "operation": "InvokeModel", "latency_ms": 50},
               {"service": "s3vectors", "operation": "PutVectors", "latency_ms": 100}]
    throttled = [{**latency[0], "throttle_fraction": 0.2}, latency[1]]
    fixed = {"worker_concurrency": 8, "worker_max_concurrency": 8}
    adaptive = {"worker_concurrency": 8, "worker_max_concurrency": 64}
    cases: list[tuple[str, int, dict[str, Any], list[dict[str, Any]]]] = [
        ("fixed concurrency 8, 1 worker", 1, fixed, latency),
        ("fixed concurrency 8, 4 workers", 4, fixed, latency),
        ("adaptive concurrency 8-64, 1 worker", 1, adaptive, latency),
        ("adaptive, 20% of Bedrock calls throttled", 1, adaptive, throttled),
    ]
    results: dict[str, float] = {}
    try:
        for label, workers, settings, rules in cases:
            bench.endpoint.admin.set_faults({"rules": rules, "seed": 7})
            db_url = bench.database(rows * workers, TITAN, 256)
            run = bench.drain(db_url, workers=workers, worker_batch_size=100, **settings)
            results[label] = run.rate(bench.startup_wall)
            print(run.line(f"latency: {label}", bench.startup_cpu, bench.startup_wall, workers))
            bench.cluster.drop_database(db_url)
    finally:
        bench.endpoint.admin.clear_faults()
    one, four = results["fixed concurrency 8, 1 worker"], results["fixed concurrency 8, 4 workers"]
    adaptive = results["adaptive concurrency 8-64, 1 worker"]
    print(f"  one worker at a fixed 8 concurrent 50 ms calls: {one / 160:.2f} x the 160 rows/s they allow; "
          f"four workers: {four / one:.2f} x one; adaptive: {adaptive:.0f} rows/s")


def run_minilm(cluster: TestCluster, root: Path, rows: int) -> None:
    from s3vl_local.embedding import get_embedder

    emb = get_embedder("minilm")
    emb.warm()
    texts = [f"product {g}. a durable trail running shoe with grippy soles, model {g}, for mud and rock"
             for g in range(1, rows + 1)]
    start = time.perf_counter()
    for i in range(0, len(texts), 96):
        emb.embed(texts[i:i + 96], 1024)
    own = len(texts) / (time.perf_counter() - start)
    print(f"  MiniLM in-process (batches of 96): {own:.1f} texts/s")
    bench = Bench(cluster, root, "minilm")
    try:
        db_url = bench.database(rows, COHERE, 1024)
        bench.measure_startup()
        run = bench.drain(db_url, worker_batch_size=192, worker_concurrency=2)
        print(run.line("pipeline via the endpoint (Cohere batching)", bench.startup_cpu, bench.startup_wall))
        print(f"  ratio pipeline / model: {run.rate(bench.startup_wall) / own:.2f}")
    finally:
        bench.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20000, help="rows per backfill")
    parser.add_argument("--latency-rows", type=int, default=2000, help="rows per worker in the latency runs")
    parser.add_argument("--minilm-rows", type=int, default=1000, help="rows for the MiniLM run")
    parser.add_argument("--only", default="backfill,updates,latency,minilm", help="comma-separated scenarios")
    parser.add_argument("--models", default="cohere-1024,titan-1024,titan-256",
                        help=f"backfills to run, among {sorted(MODELS)}")
    parser.add_argument("--set", action="append", default=[], metavar="SETTING=VALUE",
                        help="a worker setting for every run, e.g. worker_max_concurrency=8")
    args = parser.parse_args()
    only = set(args.only.split(","))
    root = make_root("s3vl-bench-worker-")
    with session_cluster() as cluster:
        if only & {"backfill", "updates", "latency"}:
            bench = Bench(cluster, root, settings=dict(kv.split("=", 1) for kv in args.set))
            try:
                bench.measure_startup()
                if only & {"backfill", "updates"}:
                    print(f"fast embedder (hash), {args.rows} rows, one worker:")
                    run_backfill(bench, args.rows, "updates" in only, args.models.split(","))
                    if any(m.startswith("titan") for m in args.models.split(",")):
                        invoke_floor(bench)
                if "latency" in only:
                    print(f"latency injected (Bedrock 50 ms, PutVectors 100 ms), {args.latency_rows} rows per worker:")
                    run_latency(bench, args.latency_rows)
            finally:
                bench.close()
        if "minilm" in only:
            print(f"semantic model (MiniLM), {args.minilm_rows} rows:")
            run_minilm(cluster, root, args.minilm_rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
