"""``s3vl worker``, ``backfill``, ``status`` and ``retry-failed``: running and watching the sync worker."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from sync.cli import terminal
from sync.cli.common import add_database_url, database_url, emf_on
from sync.config import Settings
from sync.errors import ConfigError

if TYPE_CHECKING:
    from sync.cli.common import Subparsers
    from sync.datapath.worker import Totals, Worker, WorkerOptions


def _worker_options(args: argparse.Namespace, settings: Settings) -> WorkerOptions:
    from sync.aws.retry import RetryPolicy
    from sync.datapath.worker import WorkerOptions

    return WorkerOptions(
        batch_size=settings.worker_batch_size,
        lease_seconds=settings.worker_lease_seconds, poll_seconds=settings.worker_poll_seconds,
        concurrency=settings.worker_concurrency, max_concurrency=settings.worker_max_concurrency,
        batches_in_flight=settings.worker_batches_in_flight, max_writes=settings.worker_max_writes,
        retry_after=settings.worker_retry_seconds,
        only_sync=getattr(args, "sync", None), region=settings.aws_region, endpoint_url=settings.aws_endpoint_url,
        policy=RetryPolicy(max_seconds=settings.aws_retry_seconds),
        emf_interval=settings.emf_interval_seconds if args.command == "worker" and emf_on(settings) else 0.0,
        give_up_seconds=settings.worker_give_up_seconds, pause_seconds=settings.worker_pause_seconds,
    )


def _summary(totals: Totals) -> str:
    return (f"{totals.keys} key(s): {totals.embedded} embedded, {totals.metadata_only} metadata-only, "
            f"{totals.unchanged} unchanged, {totals.deleted} deleted, {totals.failed} failed")


def _report_paused(worker: Worker) -> int:
    """Name each sync this run paused, with why; 3 when there was one (as ``s3vl status``)."""
    for sync, error in sorted(worker.paused.items()):
        print(f"s3vl: sync {sync} is paused: {error}", file=sys.stderr)
    return 3 if worker.paused else 0


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    from sync.datapath.worker import Worker
    from sync.telemetry import metrics

    if settings.worker_metrics_port is not None:
        try:
            metrics.serve(settings.worker_metrics_port, settings.worker_metrics_addr)
        except OSError as exc:
            raise ConfigError(f"cannot serve metrics on {settings.worker_metrics_addr}:"
                                   f"{settings.worker_metrics_port}: {exc.strerror}") from None
    worker = Worker(database_url(args, settings), _worker_options(args, settings))
    worker.install_signal_handlers()
    totals = worker.run(once=args.once)
    if not args.once:
        return 0
    print(f"worker: {totals.batches} batch(es), {_summary(totals)}", file=sys.stderr)
    return _report_paused(worker)


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
    from sync.db.connection import Database

    with Database(database_url(args, settings), application_name="s3vl retry-failed") as db:
        outbox = Outbox(db)
        if args.sync:
            outbox.require_syncs([args.sync])
        n = outbox.retry_failed(args.sync)
    print(f"{n} failed key(s) back in the queue" + (f" of sync {args.sync}" if args.sync else ""))
    return 0


def _backfill(args: argparse.Namespace, settings: Settings) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from sync.datapath.worker import backfill

    options = _worker_options(args, settings)
    with Progress(TextColumn(f"backfill {args.name}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  disable=args.no_progress) as bar:
        task = bar.add_task("backfill", total=None)
        worker = backfill(database_url(args, settings), args.name, options,
                          progress=lambda done, total: bar.update(task, completed=done, total=total))
    print(f"backfill {args.name}: {_summary(worker.totals)}")
    return max(3 if worker.totals.failed else 0, _report_paused(worker))


def add_parsers(sub: Subparsers) -> None:
    worker = sub.add_parser("worker", help="run the sync worker: outbox -> Bedrock -> S3 Vectors",
                            description="Lease changed keys, embed what changed, write S3 Vectors, record state. "
                            "SIGTERM finishes the current batch and exits. With --once: exit status 1 when AWS "
                            "or the database kept failing for S3VL_WORKER_GIVE_UP_SECONDS (60), 3 when a "
                            "sync was paused (it failed as a whole; s3vl status says why).")
    add_database_url(worker)
    worker.add_argument("--once", action="store_true", help="drain what is queued now, then exit")
    worker.add_argument("--metrics-port", dest="worker_metrics_port", type=int, metavar="PORT",
                        help="serve Prometheus /metrics on this port (S3VL_WORKER_METRICS_PORT)")
    worker.add_argument("--metrics-addr", dest="worker_metrics_addr", metavar="ADDR",
                        help="address for --metrics-port (default 127.0.0.1)")
    worker.add_argument("--batch-size", dest="worker_batch_size", type=int, metavar="N",
                        help="keys per batch, 1-1000 (S3VL_WORKER_BATCH_SIZE)")
    worker.add_argument("--sync", metavar="NAME", help="only this sync")
    worker.set_defaults(handler=_worker)
    status = sub.add_parser("status", help="each sync's queue, lag, failures and last reconcile",
                            description="Exit status 3 when some key is in the failed state or a sync is paused.")
    add_database_url(status)
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(handler=_status)
    retry = sub.add_parser("retry-failed", help="put failed keys back in the queue and resume paused syncs")
    add_database_url(retry)
    retry.add_argument("--sync", metavar="NAME", help="only this sync (default: all)")
    retry.set_defaults(handler=_retry_failed)
    backfill = sub.add_parser("backfill", help="queue every row of a sync and process it here, with progress")
    add_database_url(backfill)
    backfill.add_argument("name", help="the sync")
    backfill.add_argument("--batch-size", dest="worker_batch_size", type=int, metavar="N",
                          help="keys per batch, 1-1000")
    backfill.add_argument("--no-progress", action="store_true", help="no progress bar")
    backfill.set_defaults(handler=_backfill, sync=None)
