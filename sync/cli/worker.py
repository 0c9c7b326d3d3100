"""``s3vl worker``, ``backfill``, ``status`` and ``retry-failed``: running and watching the sync worker."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from sync.cli import terminal
from sync.cli.common import add_database_url, database_url, emf_on
from sync.config import Settings

if TYPE_CHECKING:
    from sync.cli.common import Subparsers
    from sync.datapath.worker import WorkerOptions


def _worker_options(args: argparse.Namespace, settings: Settings) -> WorkerOptions:
    from sync.datapath.worker import WorkerOptions

    return WorkerOptions(
        batch_size=getattr(args, "batch_size", None) or settings.worker_batch_size,
        lease_seconds=settings.worker_lease_seconds, poll_seconds=settings.worker_poll_seconds,
        concurrency=settings.worker_concurrency, retry_after=settings.worker_retry_seconds,
        only_sync=getattr(args, "sync", None), region=settings.aws_region, endpoint_url=settings.aws_endpoint_url,
        emf_interval=settings.emf_interval_seconds if args.command == "worker" and emf_on(settings) else 0.0,
    )


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    from sync.datapath.worker import Worker
    from sync.telemetry import metrics

    if args.metrics_port is not None:
        metrics.serve(args.metrics_port, args.metrics_addr)
    worker = Worker(database_url(args, settings), _worker_options(args, settings))
    worker.install_signal_handlers()
    totals = worker.run(once=args.once)
    if args.once:
        print(f"worker: {totals.batches} batch(es), {totals.keys} key(s): {totals.embedded} embedded, "
              f"{totals.metadata_only} metadata-only, {totals.unchanged} unchanged, {totals.deleted} deleted, "
              f"{totals.failed} failed", file=sys.stderr)
    return 0


def _status(args: argparse.Namespace, settings: Settings) -> int:
    from sync.ops import status

    result = status.collect(database_url(args, settings))
    if args.json:
        print(status.to_json(result))
    else:
        status.render(result, terminal.console())
    return status.exit_code(result)


def _retry_failed(args: argparse.Namespace, settings: Settings) -> int:
    from sync.datapath.outbox import Outbox

    outbox = Outbox(database_url(args, settings))
    try:
        n = outbox.retry_failed(args.sync)
    finally:
        outbox.close()
    print(f"{n} failed key(s) back in the queue" + (f" of sync {args.sync}" if args.sync else ""))
    return 0


def _backfill(args: argparse.Namespace, settings: Settings) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from sync.datapath.worker import backfill

    options = _worker_options(args, settings)
    with Progress(TextColumn(f"backfill {args.name}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  disable=args.no_progress) as bar:
        task = bar.add_task("backfill", total=None)
        totals = backfill(database_url(args, settings), args.name, options,
                          progress=lambda done, total: bar.update(task, completed=done, total=total))
    print(f"backfill {args.name}: {totals.keys} key(s): {totals.embedded} embedded, {totals.metadata_only} "
          f"metadata-only, {totals.unchanged} unchanged, {totals.deleted} deleted, {totals.failed} failed")
    return 3 if totals.failed else 0


def add_parsers(sub: Subparsers) -> None:
    worker = sub.add_parser("worker", help="run the sync worker: outbox -> Bedrock -> S3 Vectors",
                            description="Lease changed keys, embed what changed, write S3 Vectors, record state. "
                            "SIGTERM finishes the current batch and exits.")
    add_database_url(worker)
    worker.add_argument("--once", action="store_true", help="drain what is queued now, then exit")
    worker.add_argument("--metrics-port", type=int, metavar="PORT", help="serve Prometheus /metrics on this port")
    worker.add_argument("--metrics-addr", default="127.0.0.1", help="address for --metrics-port (default 127.0.0.1)")
    worker.add_argument("--batch-size", type=int, metavar="N", help="keys per batch (S3VL_WORKER_BATCH_SIZE)")
    worker.add_argument("--sync", metavar="NAME", help="only this sync")
    worker.set_defaults(handler=_worker)
    status = sub.add_parser("status", help="each sync's queue, lag, failures and last reconcile",
                            description="Exit status 3 when some key is in the failed state.")
    add_database_url(status)
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(handler=_status)
    retry = sub.add_parser("retry-failed", help="put failed keys back in the queue")
    add_database_url(retry)
    retry.add_argument("--sync", metavar="NAME", help="only this sync (default: all)")
    retry.set_defaults(handler=_retry_failed)
    backfill = sub.add_parser("backfill", help="queue every row of a sync and process it here, with progress")
    add_database_url(backfill)
    backfill.add_argument("name", help="the sync")
    backfill.add_argument("--batch-size", type=int, metavar="N", help="keys per batch")
    backfill.add_argument("--no-progress", action="store_true", help="no progress bar")
    backfill.set_defaults(handler=_backfill, sync=None)
