"""Benchmark: reconcile N vectors (dimension 4) in the local S3 Vectors endpoint against N rows.

    .venv/bin/python tests/bench/bench_reconcile.py --rows 1000000
    .venv/bin/python tests/bench/bench_reconcile.py --rows 100000 --segments 16
    .venv/bin/python tests/bench/bench_reconcile.py --rows 1000000 --segments-per-run 2

Sets up a private PostgreSQL cluster and a private local endpoint, loads N source rows, N
vectors (with the metadata the worker writes) and N state rows, injects a little drift of each
kind (0.01% of N per category), then runs ``s3vl reconcile --json`` (a dry run) in a child
process and reports its wall time, phase times and peak RSS (ru_maxrss of that process only:
the reconcile never holds the listing or the source in memory, so its peak should not grow
with N). The exact counts found are checked against the injected drift.

With ``--segments-per-run K`` it then runs rolling reconciles (``s3vl reconcile
--segments-per-run K``): a first cycle (it builds the snapshot; its last run judges every key) and
a second, steady-state cycle, each run in its own child process, and reports per-run cost (wall
time, ListVectors pages, vectors judged) against the full run, the snapshot's size in PostgreSQL
and the second cycle's counts, checked against the injected drift as well.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import boto3  # noqa: E402
import psycopg  # noqa: E402

from sync.datapath.contract import metadata_hash  # noqa: E402
from tests.support.endpoint import DUMMY_KEY, REGION, running_endpoint  # noqa: E402
from tests.support.pg import session_cluster  # noqa: E402

HASH_SQL = "left(encode(sha256(convert_to(title || '. ' || coalesce(body, ''), 'UTF8')), 'hex'), 32)"


def load(url: str, endpoint_url: str, rows: int, drift: int) -> dict[str, Any]:
    s3v = boto3.client("s3vectors", endpoint_url=endpoint_url, region_name=REGION,
                       aws_access_key_id=DUMMY_KEY, aws_secret_access_key=DUMMY_KEY)
    s3v.create_vector_bucket(vectorBucketName="bench-rc")
    arn = s3v.create_index(vectorBucketName="bench-rc", indexName="docs", dataType="float32", dimension=4,
                           distanceMetric="cosine",
                           metadataConfiguration={"nonFilterableMetadataKeys": ["s3vl_hash"]})["indexArn"]
    t0 = time.monotonic()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE public.docs (id int PRIMARY KEY, title text NOT NULL, body text)")
        conn.execute("INSERT INTO public.docs SELECT g, 'title ' || g, 'body of document ' || g "
                     "FROM generate_series(1, %s) g", (rows,))
        conn.execute("INSERT INTO s3vl.indexes (name, index_arn, region, account_id, bucket_name, index_name) "
                     "VALUES ('docs', %s, 'us-west-2', '000000000000', 'bench-rc', 'docs')", (arn,))
        (ev,) = conn.execute(
            "SELECT embedding_version FROM s3vl.create_sync(name => 'docs', source => 'public.docs', "
            "index_name => 'docs', text_expression => $$title || '. ' || coalesce(body, '')$$, "
            "embedding_model => 'amazon.titan-embed-text-v2:0', dimensions => 256, backfill => false)"
        ).fetchone() or ("",)
        conn.execute(f"INSERT INTO s3vl.sync_state (sync_name, key, content_hash, metadata_hash, embedding_version, "
                     f"chunk_count, synced_at) SELECT 'docs', id::text, {HASH_SQL}, %s, %s, 1, "
                     f"now() - interval '1 hour' FROM public.docs", (metadata_hash({}, False), ev))
        print(f"  source + state: {rows} rows in {time.monotonic() - t0:.1f} s", flush=True)

        t1 = time.monotonic()

        def put(batch: list[tuple[str, str]]) -> None:
            s3v.put_vectors(indexArn=arn, vectors=[
                {"key": k, "data": {"float32": [0.1, 0.2, 0.3, 0.4]},
                 "metadata": {"s3vl_id": k, "s3vl_ev": ev, "s3vl_hash": h, "s3vl_chunk": 0}} for k, h in batch])

        with conn.transaction(), conn.cursor(name="load") as cur, ThreadPoolExecutor(4) as pool:
            cur.itersize = 5000
            cur.execute(f"SELECT id::text, {HASH_SQL} FROM public.docs ORDER BY id")
            pending = []
            while batch := cur.fetchmany(500):
                pending.append(pool.submit(put, [(str(k), str(h)) for k, h in batch]))
                if len(pending) >= 16:
                    pending.pop(0).result()
            for f in pending:
                f.result()
        print(f"  vectors: {rows} in {time.monotonic() - t1:.1f} s", flush=True)

        # drift: `drift` keys per category
        for start in range(0, drift, 500):  # the API takes at most 500 keys / vectors a call
            end = min(start + 500, drift)
            s3v.delete_vectors(indexArn=arn, keys=[str(i) for i in range(start + 1, end + 1)])  # missing (+drift)
            s3v.put_vectors(indexArn=arn, vectors=[{"key": f"ghost-{i}", "data": {"float32": [1, 0, 0, 0]},
                                                    "metadata": {"s3vl_id": f"ghost-{i}"}} for i in range(start, end)])
        conn.execute("SET session_replication_role = replica")
        conn.execute("UPDATE public.docs SET body = 'changed' WHERE id > %s AND id <= %s", (drift, 2 * drift))
        conn.execute("SET session_replication_role = origin")
        conn.execute("VACUUM ANALYZE public.docs")
        conn.execute("VACUUM ANALYZE s3vl.sync_state")
    return {"orphaned": drift, "missing": drift, "stale": drift, "metadata_drift": 0, "state_drift": drift}


def child(url: str, endpoint_url: str, segments: int, apply: bool, per_run: int = 0) -> None:
    """Run in a fresh process so ru_maxrss is the reconcile's own peak."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("S3VL_", "AWS_"))}
    env.update(S3VL_DATABASE_URL=url, AWS_ENDPOINT_URL=endpoint_url, AWS_REGION=REGION,
               AWS_ACCESS_KEY_ID=DUMMY_KEY, AWS_SECRET_ACCESS_KEY=DUMMY_KEY, S3VL_LOG_LEVEL="warning")
    extra = (", '--apply'" if apply else "") + (f", '--segments-per-run', '{per_run}'" if per_run else "")
    code = (
        "import json, resource, sys, time\n"
        "from sync.cli import main\n"
        "t = time.monotonic()\n"
        f"rc = main(['reconcile', '--json', '--no-progress', '--segments', '{segments}'{extra}])\n"
        "print(json.dumps({'wall': time.monotonic() - t, 'maxrss_kb': "
        "resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, 'rc': rc}), file=sys.stderr)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True,
                          check=False)
    report = json.loads(proc.stdout)
    stats = json.loads(proc.stderr.strip().splitlines()[-1])
    print(json.dumps({"report": report, "stats": stats}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--segments", type=int, default=16)
    parser.add_argument("--drift", type=int, default=None, help="keys per drift category (default rows/10000)")
    parser.add_argument("--apply", action="store_true", help="reconcile --apply (repairs timed too)")
    parser.add_argument("--segments-per-run", type=int, default=0, metavar="K",
                        help="then two rolling cycles of 16/K runs each (dry runs)")
    args = parser.parse_args()
    drift = args.drift if args.drift is not None else max(args.rows // 10_000, 1)

    with session_cluster() as cluster, tempfile.TemporaryDirectory(prefix="s3vl-bench-rc-") as tmp, \
            running_endpoint(Path(tmp)) as ep:
        url = cluster.create_database(installed=True)
        print(f"reconcile benchmark: {args.rows} rows / vectors (dimension 4), {args.segments} segments, "
              f"{drift} keys of drift per category, {os.cpu_count()} CPUs", flush=True)
        expected = load(url, ep.url, args.rows, drift)
        t0 = time.monotonic()
        out = subprocess.run([sys.executable, __file__, "--child", url, ep.url, str(args.segments),
                              "apply" if args.apply else "dry"],
                             capture_output=True, text=True, check=True).stdout
        elapsed = time.monotonic() - t0
        result = json.loads(out.strip().splitlines()[-1])
        (sync,) = result["report"]["syncs"]
        found = {name: c["count"] for name, c in sync["categories"].items()}
        stats = result["stats"]
        mode = "--apply" if args.apply else "dry run"
        print(f"  reconcile ({mode}, child process): wall {stats['wall']:.1f} s "
              f"(scan {sync['scan_seconds']:.1f} s, classify {sync['classify_seconds']:.1f} s, "
              f"repair {sync['repair_seconds']:.1f} s), "
              f"peak RSS {stats['maxrss_kb'] / 1024:.0f} MiB, exit {stats['rc']} (incl. start-up: {elapsed:.1f} s)")
        print(f"  listed {sync['index_vectors']} vectors in {sync['pages']} pages "
              f"({sync['index_vectors'] / max(sync['scan_seconds'], 1e-9):,.0f} vectors/s)")
        print(f"  found {found}; expected {expected}: {'OK' if found == expected else 'MISMATCH'}")
        if args.apply:
            print(f"  repaired {({n: c['repaired'] for n, c in sync['categories'].items()})}")
        if found != expected:
            raise SystemExit(1)
        if args.segments_per_run:
            rolling(url, ep.url, args.segments, args.segments_per_run, sync, stats, expected)


def run_child(url: str, endpoint_url: str, segments: int, per_run: int) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, "--child", url, endpoint_url, str(segments), "dry",
                          str(per_run)], capture_output=True, text=True, check=True).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def rolling(url: str, endpoint_url: str, segments: int, per_run: int, full: dict[str, Any],
            full_stats: dict[str, Any], expected: dict[str, int]) -> None:
    runs = 16 // per_run + (16 % per_run > 0)
    for cycle in (1, 2):
        results = [run_child(url, endpoint_url, segments, per_run) for _ in range(runs)]
        syncs = [r["report"]["syncs"][0] for r in results]
        walls = [r["stats"]["wall"] for r in results]
        found = {c: sum(s["categories"][c]["count"] for s in syncs) for c in expected}
        judged = [s["judged_vectors"] for s in syncs]
        pages = [s["pages"] for s in syncs]
        print(f"  rolling cycle {cycle}, {runs} runs of {per_run} segments: wall per run "
              f"{min(walls):.1f}-{max(walls):.1f} s (mean {sum(walls) / runs:.1f} s = "
              f"{sum(walls) / runs / full_stats['wall']:.2f} x the full run's {full_stats['wall']:.1f} s); "
              f"pages per run {sum(pages) / runs:.0f} ({sum(pages) / runs / full['pages']:.3f} x full); "
              f"vectors judged per run {min(judged)}-{max(judged)}; peak RSS "
              f"{max(r['stats']['maxrss_kb'] for r in results) / 1024:.0f} MiB; cycle total {sum(walls):.1f} s")
        if cycle == 2:
            print(f"  cycle 2 found {found}; expected {expected}: {'OK' if found == expected else 'MISMATCH'}")
            if found != expected:
                raise SystemExit(1)
    with psycopg.connect(url) as conn:
        (size,) = conn.execute("SELECT pg_total_relation_size('s3vl.reconcile_snapshot')").fetchone() or (0,)
    print(f"  snapshot in PostgreSQL: {size / 2**20:.0f} MiB ({size / max(full['index_vectors'], 1):.0f} bytes "
          f"per vector, table and indexes)")


if __name__ == "__main__":
    if len(sys.argv) in (6, 7) and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5] == "apply",
              int(sys.argv[6]) if len(sys.argv) == 7 else 0)
    else:
        main()
