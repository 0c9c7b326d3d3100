"""Prometheus metrics of the sync worker (served by ``s3vl worker --metrics-port``).

Throughput (rows by outcome, vectors written/deleted), lag (age of the oldest pending change)
and queue depth per sync, batch duration, and AWS call latency and errors per service and
operation. Module-level singletons: one set per process, like the worker itself.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

ROWS = Counter("s3vl_sync_rows_total", "Rows processed, by outcome "
               "(embedded, metadata_only, unchanged, deleted, failed)", ["sync", "outcome"])
VECTORS = Counter("s3vl_sync_vectors_total", "Vectors written (put) or deleted", ["sync", "op"])
BATCHES = Counter("s3vl_sync_batches_total", "Batches processed, by result (ok, paused, transient, abandoned)",
                  ["sync", "result"])
BATCH_SECONDS = Histogram("s3vl_sync_batch_seconds", "Time to process one leased batch", ["sync"],
                          buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120))
QUEUE_DEPTH = Gauge("s3vl_sync_queue_depth", "Outbox rows by status (pending, failed)", ["sync", "status"])
LAG_SECONDS = Gauge("s3vl_sync_lag_seconds", "Age of the oldest pending change", ["sync"])
AWS_LATENCY = Histogram("s3vl_aws_request_seconds", "Latency of AWS calls", ["service", "operation"],
                        buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
AWS_ERRORS = Counter("s3vl_aws_errors_total", "AWS call errors (each retry counts)", ["service", "operation", "code"])
WORKER_UP = Gauge("s3vl_worker_up", "1 while the worker reaches the database and AWS, 0 while it backs off")
WORKER_ERRORS = Counter("s3vl_worker_errors_total", "Attempts the worker backed off from, by error class", ["error"])
PAUSED = Gauge("s3vl_sync_paused", "1 while a sync is paused after failing as a whole (s3vl.pause_sync)", ["sync"])


def serve(port: int, addr: str = "127.0.0.1") -> None:
    """Expose ``/metrics`` on ``addr:port`` from a daemon thread."""
    start_http_server(port, addr=addr)
