"""Benchmark: what trigger capture costs the writers (their own statements, in their own transactions).

    .venv/bin/python tests/bench/bench_capture.py
    .venv/bin/python tests/bench/bench_capture.py --rows 100000 --singles 2000 --repeat 3

Starts a private PostgreSQL cluster, installs ``sql/``, and runs each scenario on two identical
tables: ``plain`` (no sync) and ``synced`` (a ``capture => 'trigger'`` sync reading id, name,
description, category and price, not ``views``). Each timed statement starts from a freshly
loaded, vacuumed table and an empty outbox, so both sides do the same work apart from the
capture. Prints the median wall time of each side, the ratio and the extra time per row.

Scenarios: a bulk INSERT of N rows; a bulk UPDATE of a read column; a bulk UPDATE of a column the
sync does not read (must enqueue nothing); a bulk DELETE; single-row INSERTs, each in its own
transaction (autocommit), alternating between the sides every 50 statements, where the figure
that matters is the extra time per statement; and 4 concurrent writers updating their own rows
one statement at a time (wall time of all four). The machine's other load makes single runs noisy:
compare figures from the same run, and repeat.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402

from sync.db import schema  # noqa: E402
from tests.support.pg import session_cluster  # noqa: E402

ARN = "arn:aws:s3vectors:us-west-2:000000000000:bucket/bench/index/capture"
DDL = """
CREATE TABLE public.{t} (
    id bigint PRIMARY KEY, name text NOT NULL, description text, category text, price numeric,
    views int NOT NULL DEFAULT 0)
"""
FILL = ("INSERT INTO public.{t} (id, name, description, category, price) "
        "SELECT g, 'product ' || g, 'a description of product ' || g, 'cat' || (g %% 17), g %% 1000 "
        "FROM generate_series(1, %(n)s) g")

Conn = psycopg.Connection[tuple[Any, ...]]


def setup(conn: Conn) -> None:
    conn.execute("INSERT INTO s3vl.indexes (name, index_arn, region, account_id, bucket_name, index_name, dimension) "
                 "VALUES ('capture', %s, 'us-west-2', '000000000000', 'bench', 'capture', 256)", (ARN,))
    for t in ("plain", "synced"):
        conn.execute(DDL.format(t=t).encode())
    conn.execute("SELECT s3vl.create_sync(name => 'synced', source => 'public.synced', index_name => 'capture', "
                 "text_expression => $$name || '. ' || coalesce(description, '')$$, "
                 "metadata_columns => ARRAY['category', 'price'], dimensions => 256, backfill => false)")


def reset(conn: Conn, table: str, rows: int) -> None:
    """An empty (or N-row) table, vacuumed, and an empty outbox: the same start for both sides."""
    conn.execute(f"TRUNCATE public.{table}".encode())
    if rows:
        conn.execute(FILL.format(t=table).encode(), {"n": rows})
    conn.execute("TRUNCATE s3vl.outbox")
    conn.execute(f"VACUUM ANALYZE public.{table}".encode())
    conn.execute("VACUUM ANALYZE s3vl.outbox")


def timed(conn: Conn, statement: str, params: dict[str, Any] | None = None) -> float:
    t0 = time.perf_counter()
    conn.execute(statement.encode(), params or None)
    return time.perf_counter() - t0


def singles(conn: Conn, count: int, start: int, chunk: int = 50) -> tuple[float, float]:
    """Single-row INSERTs, one transaction each, alternating sides every ``chunk`` statements so
    that the load of a shared machine falls on both alike; the median chunk of each side, scaled."""
    per: dict[str, list[float]] = {"plain": [], "synced": []}
    for first in range(start, start + count, chunk):
        for table in ("plain", "synced"):
            stmt = f"INSERT INTO public.{table} (id, name, category, price) VALUES (%s, 'single', 'c', 1)".encode()
            t0 = time.perf_counter()
            for i in range(first, min(first + chunk, start + count)):
                conn.execute(stmt, (i,))  # autocommit: one transaction each
            per[table].append(time.perf_counter() - t0)
    n = len(per["plain"])
    return statistics.median(per["plain"]) * n, statistics.median(per["synced"]) * n


def concurrent(url: str, table: str, writers: int, each: int) -> float:
    """``writers`` sessions at once, each updating its own rows one statement (transaction) at a
    time: the capture must not make them wait on each other (no shared lock per statement)."""
    barrier = threading.Barrier(writers + 1)
    errors: list[BaseException] = []

    def write(w: int) -> None:
        try:
            with psycopg.connect(url, autocommit=True) as conn:
                stmt = f"UPDATE public.{table} SET name = name || '+' WHERE id = %s".encode()
                barrier.wait()
                for i in range(each):
                    conn.execute(stmt, (1 + w + writers * i,))
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return time.perf_counter() - t0


def run(url: str, rows: int, count: int, repeat: int) -> list[tuple[str, float, float, int, int]]:
    bulk: list[tuple[str, int, int, Callable[[Conn, str], float]]] = [
        (f"bulk INSERT {rows:,}", 0, rows,
         lambda c, t: timed(c, FILL.format(t=t), {"n": rows})),
        (f"bulk UPDATE read column {rows:,}", rows, rows,
         lambda c, t: timed(c, f"UPDATE public.{t} SET name = name || '!'")),
        (f"bulk UPDATE unread column {rows:,}", rows, 0,
         lambda c, t: timed(c, f"UPDATE public.{t} SET views = views + 1")),
        (f"bulk DELETE {rows:,}", rows, rows,
         lambda c, t: timed(c, f"DELETE FROM public.{t}")),
    ]
    results = []
    with psycopg.connect(url, autocommit=True) as conn:
        setup(conn)
        for label, preload, expect, fn in bulk:
            times: dict[str, list[float]] = {"plain": [], "synced": []}
            for _ in range(repeat):
                for table in ("plain", "synced"):
                    reset(conn, table, preload)
                    times[table].append(fn(conn, table))
            results.append((label, statistics.median(times["plain"]), statistics.median(times["synced"]), rows,
                            queued(conn, label, expect)))
            print(f"  {label}: plain {times['plain']}, synced {times['synced']}", file=sys.stderr, flush=True)
        label = f"{count:,} single-row INSERTs (autocommit)"
        for table in ("plain", "synced"):
            reset(conn, table, rows)
        plain, synced = singles(conn, count, rows + 1)
        results.append((label, plain, synced, count, queued(conn, label, count)))
        writers, each = 4, max(count // 4, 1)
        label = f"{writers} writers x {each:,} single-row UPDATEs"
        times = {"plain": [], "synced": []}
        for _ in range(repeat):
            for table in ("plain", "synced"):
                reset(conn, table, rows)
                times[table].append(concurrent(url, table, writers, each))
        results.append((label, statistics.median(times["plain"]), statistics.median(times["synced"]),
                        writers * each, queued(conn, label, writers * each)))
    return results


def queued(conn: Conn, label: str, expect: int) -> int:
    """The keys the last synced statement queued: exactly the rows whose read columns changed."""
    row = conn.execute("SELECT count(*) FROM s3vl.outbox").fetchone()
    n = int(row[0]) if row else -1
    if n != expect:
        raise SystemExit(f"{label}: {n} keys queued, expected {expect}")
    return n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000, help="rows per bulk statement")
    parser.add_argument("--singles", type=int, default=2_000, help="single-row INSERTs (one transaction each)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per scenario and side (median reported)")
    args = parser.parse_args()
    with session_cluster() as cluster:
        schema.install(cluster.url)
        results = run(cluster.url, args.rows, args.singles, args.repeat)
    print(f"\ntrigger capture, writer-side cost (median of {args.repeat}; PostgreSQL 15, private cluster)")
    print(f"{'scenario':<42} {'no sync':>9} {'sync':>9} {'ratio':>6} {'extra/row':>11} {'queued':>8}")
    for label, plain, synced, n, queued in results:
        extra_us = (synced - plain) / n * 1e6
        print(f"{label:<42} {plain:>8.3f}s {synced:>8.3f}s {synced / plain:>5.2f}x {extra_us:>8.1f} µs {queued:>8}")


if __name__ == "__main__":
    main()
