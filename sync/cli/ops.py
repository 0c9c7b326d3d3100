"""``s3vl reconcile`` and ``s3vl reindex``: proving an index equals its source, and moving a sync to a new index."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from sync.cli import terminal
from sync.cli.common import add_database_url, bounded, database_url, emf_on, print_json
from sync.config import Settings
from sync.errors import ConfigError, S3vlError

if TYPE_CHECKING:
    from sync.cli.common import Subparsers
    from sync.ops.reconcile.report import ReconcileReport


def _reconcile(args: argparse.Namespace, settings: Settings) -> int:
    from sync.aws.retry import RetryPolicy
    from sync.ops.reconcile import report as reconcile_report
    from sync.ops.reconcile.run import ReconcileOptions, reconcile, write_metrics

    options = ReconcileOptions(
        apply=args.apply, force=args.force, max_reembed=settings.reconcile_max_reembed,
        policy=RetryPolicy(max_seconds=settings.aws_retry_seconds),
        max_delete_share=settings.reconcile_max_delete_share, segments=settings.reconcile_segments,
        segments_per_run=settings.reconcile_segments_per_run, sample_size=settings.reconcile_sample_size,
    )
    url = database_url(args, settings)
    stderr = terminal.console(stderr=True)
    try:
        if stderr.is_terminal and not args.no_progress:
            with reconcile_report.TerminalProgress(stderr) as bar:
                reports = reconcile(url, options, args.sync or None, progress=bar)
        else:
            reports = reconcile(url, options, args.sync or None)
    except S3vlError as exc:  # before any sync's report (the database unreachable, an unknown sync)
        _emit_reconcile_failure(args.sync or None, f"{type(exc).__name__}: {exc}", settings, to_stderr=args.json)
        raise
    if settings.reconcile_metrics_file:
        write_metrics(settings.reconcile_metrics_file)
    if args.json:
        print(reconcile_report.to_json(reports))
    else:
        reconcile_report.render(reports, terminal.console(), settings.reconcile_sample_size)
    _emit_reconcile_emf(reports, settings, to_stderr=args.json)
    return int(reconcile_report.overall_exit_code(reports))


def _emit_reconcile_emf(reports: list[ReconcileReport], settings: Settings, *, to_stderr: bool) -> None:
    """ReconcileDrift per sync as EMF lines (stderr when --json owns stdout); see sync.telemetry.emf."""
    import time

    from sync.telemetry import emf

    if emf_on(settings):
        emf.write(sys.stderr if to_stderr else sys.stdout, emf.reconcile_documents(reports, int(time.time() * 1000)))


def _emit_reconcile_failure(syncs: list[str] | None, error: str, settings: Settings, *, to_stderr: bool) -> None:
    """ReconcileFailed = 1 for the named syncs (Sync="*" for all), so the alarm covers a run that never started."""
    import time

    from sync.telemetry import emf

    if emf_on(settings):
        now = int(time.time() * 1000)
        emf.write(sys.stderr if to_stderr else sys.stdout,
                  [emf.failed_document(name, error, now) for name in (syncs or [emf.ALL_SYNCS])])


def _add_reconcile_parser(sub: Subparsers) -> None:
    rec = sub.add_parser(
        "reconcile", help="find (and with --apply repair) orphaned, missing and stale vectors",
        description="Compare each sync's index with its source and state table. Dry run by default. "
        "Exit status: 0 clean or repaired, 1 error, 3 drift found and not repaired, 4 refused by the "
        "safety limit.",
    )
    add_database_url(rec)
    rec.add_argument("--apply", action="store_true", help="repair: delete orphans, enqueue missing/stale, fix state")
    rec.add_argument("--json", action="store_true", help="machine-readable report on stdout")
    rec.add_argument("--force", action="store_true", help="allow deleting more than the safety limit")
    rec.add_argument("--max-reembed", dest="reconcile_max_reembed", type=int, metavar="N",
                     help="enqueue at most N stale keys per sync this run (S3VL_RECONCILE_MAX_REEMBED)")
    rec.add_argument("--max-delete-share", dest="reconcile_max_delete_share", type=float, metavar="F",
                     help="safety limit as a share of the index (default S3VL_RECONCILE_MAX_DELETE_SHARE=0.10)")
    rec.add_argument("--sync", action="append", metavar="NAME", help="only this sync (repeatable; default all)")
    rec.add_argument("--segments", dest="reconcile_segments", type=int, metavar="1-16",
                     help="parallel ListVectors segments (S3VL_RECONCILE_SEGMENTS, default 16)")
    rec.add_argument("--segments-per-run", dest="reconcile_segments_per_run", type=int,
                     metavar="K", help="rolling: list K of the 16 segments this run, continuing the cycle; "
                     "16/K runs cover the index (S3VL_RECONCILE_SEGMENTS_PER_RUN; default: a full run)")
    rec.add_argument("--metrics-file", dest="reconcile_metrics_file", type=Path, metavar="FILE",
                     help="write Prometheus metrics here (textfile collector; S3VL_RECONCILE_METRICS_FILE)")
    rec.add_argument("--no-progress", action="store_true", help="no progress bar even on a terminal")
    rec.set_defaults(handler=_reconcile)


def _reindex(args: argparse.Namespace, settings: Settings) -> int:
    from sync.ops import reindex

    if (args.model is None) != (args.dimensions is None):
        raise ConfigError("give --model and --dimensions together")
    url = database_url(args, settings)
    last: list[int] = []

    def on_wait(pending: int) -> None:
        if pending and (not last or last[-1] != pending):
            print(f"backfilling {args.name}_rx: {pending} keys pending (the worker must be running)",
                  file=sys.stderr)
        last.append(pending)

    result = reindex.run(url, args.name, args.model, args.dimensions, wait_seconds=args.wait_seconds,
                         drop_old=args.drop_old, abort=args.abort, on_wait=on_wait)
    if args.json:
        print_json({k: v for k, v in vars(result).items() if k != "verify"})
    elif result.state == "switched":
        print(f"{result.registered_name} now points at {result.new_index_arn}")
        print(f"old index {result.old_index_arn} " + ("deleted" if result.dropped_old else
              "kept (delete it with --drop-old next time, or aws s3vectors delete-index)"))
    elif result.state == "aborted":
        print(f"reindex of {args.name} abandoned; new index {result.new_index_arn} "
              + ("deleted" if args.drop_old else "kept"))
    else:
        print(f"reindex of {args.name} in progress: {result.pending} keys pending; "
              f"re-run s3vl reindex {args.name} to resume")
    return 0 if result.state in ("switched", "aborted") else 3


def _add_reindex_parser(sub: Subparsers) -> None:
    rx = sub.add_parser(
        "reindex", help="move a sync to a new index (new model/dimensions); switch when complete",
        description="Create a new index, backfill it through a shadow sync, verify it with reconcile, then "
        "switch the registered index name in one transaction. Re-run to resume. Exit status: 0 switched "
        "(or aborted), 3 still backfilling.",
    )
    rx.add_argument("name", help="the sync")
    rx.add_argument("--model", help="the new Bedrock embedding model")
    rx.add_argument("--dimensions", type=bounded(int, 1, 4096), help="the new dimension (1-4096)")
    rx.add_argument("--wait-seconds", type=bounded(float, 0, 7 * 86400), default=3600.0,
                    help="how long to wait for the backfill (0: no wait; at most a week)")
    rx.add_argument("--drop-old", action="store_true", help="delete the old index after the switch")
    rx.add_argument("--abort", action="store_true", help="abandon a reindex in progress")
    rx.add_argument("--json", action="store_true", help="machine-readable result")
    add_database_url(rx)
    rx.set_defaults(handler=_reindex)


def add_parsers(sub: Subparsers) -> None:
    _add_reconcile_parser(sub)
    _add_reindex_parser(sub)
