"""The ``s3vl`` command: parses arguments, loads settings, calls the module that does the work.

Each subcommand is one ``_cmd_*`` function taking the parsed arguments and the settings and
returning an exit status; ``_build_parser`` wires them. No command holds logic of its own
beyond presenting results. Errors of the :class:`~sync.errors.S3vlError` family become one line
on stderr and the class's exit status; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from sync import __version__, schema, terminal
from sync.config import Settings, load_settings
from sync.errors import ConfigError, S3vlError
from sync.logs import configure_logging, safe_url

if TYPE_CHECKING:
    from sync.reconcile_report import ReconcileReport
    from sync.worker import WorkerOptions

Handler = Callable[[argparse.Namespace, Settings], int]


# --- helpers --------------------------------------------------------------------------------
def _local_stack() -> ModuleType | None:
    """The local stack's commands (the ``s3vl-local`` distribution), or None in a production install."""
    try:
        from s3vl_local import cli as local_cli
    except ImportError:
        return None
    return local_cli


def _local() -> ModuleType:
    """The local stack's commands, or a one-line error saying what to install."""
    local_cli = _local_stack()
    if local_cli is None:
        raise ConfigError(
            "the local stack is not installed: install s3vl-local (pip install -e ./local from the s3vl "
            "repository; ./run setup does it)"
        )
    return local_cli


def database_url(args: argparse.Namespace, settings: Settings) -> str:
    """``--database-url``, else S3VL_DATABASE_URL, else the local stack's database when it runs."""
    url = getattr(args, "database_url", None) or settings.database_url
    if url:
        return str(url)
    local_cli = _local_stack()
    local_url = local_cli.running_database_url(settings) if local_cli is not None else None
    if local_url:
        return str(local_url)
    raise ConfigError(
        "no database: set S3VL_DATABASE_URL (or --database-url), or start the local stack with 's3vl dev up'"
    )


def _print_json(value: object) -> None:
    print(json.dumps(value, indent=2, default=str))


# --- dev / demo / example: the local stack ---------------------------------------------------
def _cmd_dev_up(args: argparse.Namespace, settings: Settings) -> int:
    return int(_local().dev_up(args, settings))


def _cmd_dev_down(args: argparse.Namespace, settings: Settings) -> int:
    return int(_local().dev_down(args, settings))


def _cmd_dev_status(args: argparse.Namespace, settings: Settings) -> int:
    return int(_local().dev_status(args, settings))


def _cmd_dev_env(args: argparse.Namespace, settings: Settings) -> int:
    return int(_local().dev_env(args, settings))


def _cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    return int(_local().demo(args, settings))


# --- schema ---------------------------------------------------------------------------------
def _cmd_install_sql(args: argparse.Namespace, settings: Settings) -> int:
    if args.print:
        print(schema.render_install_script())
        return 0
    url = database_url(args, settings)
    report = schema.install(url)
    print(
        f"s3vl schema installed in {safe_url(url)}: {len(report.applied)} new migration(s), "
        f"{len(report.skipped)} already applied, {len(report.idempotent)} function file(s) refreshed"
    )
    for name in report.changed:
        print(f"warning: {name} changed after it was applied; add a new migration instead", file=sys.stderr)
    return 0


def _cmd_uninstall_sql(args: argparse.Namespace, settings: Settings) -> int:
    if not args.yes:
        raise ConfigError("uninstall-sql drops the s3vl schema and its data; confirm with --yes")
    url = database_url(args, settings)
    schema.uninstall(url)
    print(f"s3vl schema removed from {safe_url(url)}")
    return 0


# --- example ----------------------------------------------------------------------
def _cmd_example_walkthrough(args: argparse.Namespace, settings: Settings) -> int:
    local = _local()
    return int(local.example_walkthrough(args, settings, None if args.no_table else database_url(args, settings)))


def _add_example_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    example = sub.add_parser("example", help="load example data")
    example_sub = example.add_subparsers(dest="example_command", required=True, metavar="EXAMPLE")
    walk = example_sub.add_parser(
        "walkthrough",
        help="the Aurora + S3 Vectors walkthrough's index, 50 vectors and s3vl_demo_products (re-runnable); "
        'prints export lines: eval "$(s3vl example walkthrough)"',
    )
    _add_database_url(walk)
    walk.add_argument("--bucket", default="s3vl-walkthrough", help="vector bucket (default s3vl-walkthrough)")
    walk.add_argument("--no-table", action="store_true", help="only the vectors, not s3vl_demo_products")
    walk.set_defaults(handler=_cmd_example_walkthrough)


# --- reconcile / reindex -------------------------------------------------------
def _cmd_reconcile(args: argparse.Namespace, settings: Settings) -> int:
    from sync import reconcile_report
    from sync.reconcile import ReconcileOptions, reconcile, write_metrics

    if args.max_reembed is not None and args.max_reembed < 0:
        raise ConfigError("--max-reembed must be 0 or more")
    if args.max_delete_share is not None and not 0.0 <= args.max_delete_share <= 1.0:
        raise ConfigError("--max-delete-share must be between 0 and 1 (0.10 = 10%)")
    options = ReconcileOptions(
        apply=args.apply, force=args.force, max_reembed=args.max_reembed,
        max_delete_share=args.max_delete_share if args.max_delete_share is not None
        else settings.reconcile_max_delete_share,
        segments=args.segments or settings.reconcile_segments, sample_size=settings.reconcile_sample_size,
    )
    url = database_url(args, settings)
    stderr = terminal.console(stderr=True)
    if stderr.is_terminal and not args.no_progress:
        with reconcile_report.TerminalProgress(stderr) as bar:
            reports = reconcile(url, options, args.sync or None, progress=bar)
    else:
        reports = reconcile(url, options, args.sync or None)
    if args.metrics_file:
        write_metrics(args.metrics_file)
    if args.json:
        print(reconcile_report.to_json(reports))
    else:
        reconcile_report.render(reports, terminal.console(), settings.reconcile_sample_size)
    _emit_reconcile_emf(reports, settings, to_stderr=args.json)
    return int(reconcile_report.overall_exit_code(reports))


def _emf_on(settings: Settings) -> bool:
    import os

    from sync import emf

    return emf.enabled(settings.emf, settings.emf_interval_seconds, os.environ)


def _emit_reconcile_emf(reports: list[ReconcileReport], settings: Settings, *, to_stderr: bool) -> None:
    """ReconcileDrift per sync as EMF lines (stderr when --json owns stdout); see sync.emf."""
    import time

    from sync import emf

    if _emf_on(settings):
        emf.write(sys.stderr if to_stderr else sys.stdout, emf.reconcile_documents(reports, int(time.time() * 1000)))


def _add_reconcile_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    rec = sub.add_parser(
        "reconcile", help="find (and with --apply repair) orphaned, missing and stale vectors",
        description="Compare each sync's index with its source and state table. Dry run by default. "
        "Exit status: 0 clean or repaired, 1 error, 3 drift found and not repaired, 4 refused by the "
        "safety limit.",
    )
    _add_database_url(rec)
    rec.add_argument("--apply", action="store_true", help="repair: delete orphans, enqueue missing/stale, fix state")
    rec.add_argument("--json", action="store_true", help="machine-readable report on stdout")
    rec.add_argument("--force", action="store_true", help="allow deleting more than the safety limit")
    rec.add_argument("--max-reembed", type=int, metavar="N", help="enqueue at most N stale keys per sync this run")
    rec.add_argument("--max-delete-share", type=float, metavar="F",
                     help="safety limit as a share of the index (default S3VL_RECONCILE_MAX_DELETE_SHARE=0.10)")
    rec.add_argument("--sync", action="append", metavar="NAME", help="only this sync (repeatable; default all)")
    rec.add_argument("--segments", type=int, choices=range(1, 17), metavar="1-16", help="parallel ListVectors segments")
    rec.add_argument("--metrics-file", type=Path, help="write Prometheus metrics here (textfile collector)")
    rec.add_argument("--no-progress", action="store_true", help="no progress bar even on a terminal")
    rec.set_defaults(handler=_cmd_reconcile)


def _cmd_reindex(args: argparse.Namespace, settings: Settings) -> int:
    from sync import reindex

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
        _print_json({k: v for k, v in vars(result).items() if k != "verify"})
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


def _add_reindex_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    rx = sub.add_parser(
        "reindex", help="move a sync to a new index (new model/dimensions); switch when complete",
        description="Create a new index, backfill it through a shadow sync, verify it with reconcile, then "
        "switch the registered index name in one transaction. Re-run to resume. Exit status: 0 switched "
        "(or aborted), 3 still backfilling.",
    )
    rx.add_argument("name", help="the sync")
    rx.add_argument("--model", help="the new Bedrock embedding model")
    rx.add_argument("--dimensions", type=int, help="the new dimension")
    rx.add_argument("--wait-seconds", type=float, default=3600.0, help="how long to wait for the backfill (0: no wait)")
    rx.add_argument("--drop-old", action="store_true", help="delete the old index after the switch")
    rx.add_argument("--abort", action="store_true", help="abandon a reindex in progress")
    rx.add_argument("--json", action="store_true", help="machine-readable result")
    _add_database_url(rx)
    rx.set_defaults(handler=_cmd_reindex)


# --- sync worker -------------------------------------------------------------------
def _worker_options(args: argparse.Namespace, settings: Settings) -> WorkerOptions:
    from sync.worker import WorkerOptions

    return WorkerOptions(
        batch_size=getattr(args, "batch_size", None) or settings.worker_batch_size,
        lease_seconds=settings.worker_lease_seconds, poll_seconds=settings.worker_poll_seconds,
        concurrency=settings.worker_concurrency, retry_after=settings.worker_retry_seconds,
        only_sync=getattr(args, "sync", None), region=settings.aws_region, endpoint_url=settings.aws_endpoint_url,
        emf_interval=settings.emf_interval_seconds if args.command == "worker" and _emf_on(settings) else 0.0,
    )


def _cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from sync import metrics
    from sync.worker import Worker

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


def _cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    from sync import status

    result = status.collect(database_url(args, settings))
    if args.json:
        print(status.to_json(result))
    else:
        status.render(result, terminal.console())
    return status.exit_code(result)


def _cmd_retry_failed(args: argparse.Namespace, settings: Settings) -> int:
    from sync.outbox import Outbox

    outbox = Outbox(database_url(args, settings))
    try:
        n = outbox.retry_failed(args.sync)
    finally:
        outbox.close()
    print(f"{n} failed key(s) back in the queue" + (f" of sync {args.sync}" if args.sync else ""))
    return 0


def _cmd_backfill(args: argparse.Namespace, settings: Settings) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from sync.worker import backfill

    options = _worker_options(args, settings)
    with Progress(TextColumn(f"backfill {args.name}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  disable=args.no_progress) as bar:
        task = bar.add_task("backfill", total=None)
        totals = backfill(database_url(args, settings), args.name, options,
                          progress=lambda done, total: bar.update(task, completed=done, total=total))
    print(f"backfill {args.name}: {totals.keys} key(s): {totals.embedded} embedded, {totals.metadata_only} "
          f"metadata-only, {totals.unchanged} unchanged, {totals.deleted} deleted, {totals.failed} failed")
    return 3 if totals.failed else 0


def _add_sync_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    worker = sub.add_parser("worker", help="run the sync worker: outbox -> Bedrock -> S3 Vectors",
                            description="Lease changed keys, embed what changed, write S3 Vectors, record state. "
                            "SIGTERM finishes the current batch and exits.")
    _add_database_url(worker)
    worker.add_argument("--once", action="store_true", help="drain what is queued now, then exit")
    worker.add_argument("--metrics-port", type=int, metavar="PORT", help="serve Prometheus /metrics on this port")
    worker.add_argument("--metrics-addr", default="127.0.0.1", help="address for --metrics-port (default 127.0.0.1)")
    worker.add_argument("--batch-size", type=int, metavar="N", help="keys per batch (S3VL_WORKER_BATCH_SIZE)")
    worker.add_argument("--sync", metavar="NAME", help="only this sync")
    worker.set_defaults(handler=_cmd_worker)
    status = sub.add_parser("status", help="each sync's queue, lag, failures and last reconcile",
                            description="Exit status 3 when some key is in the failed state.")
    _add_database_url(status)
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(handler=_cmd_status)
    retry = sub.add_parser("retry-failed", help="put failed keys back in the queue")
    _add_database_url(retry)
    retry.add_argument("--sync", metavar="NAME", help="only this sync (default: all)")
    retry.set_defaults(handler=_cmd_retry_failed)
    backfill = sub.add_parser("backfill", help="queue every row of a sync and process it here, with progress")
    _add_database_url(backfill)
    backfill.add_argument("name", help="the sync")
    backfill.add_argument("--batch-size", type=int, metavar="N", help="keys per batch")
    backfill.add_argument("--no-progress", action="store_true", help="no progress bar")
    backfill.set_defaults(handler=_cmd_backfill, sync=None)
    demo = sub.add_parser("demo", help="the whole thing locally: stack, 1,200 products, sync, SQL questions")
    demo.add_argument("--products", type=int, default=1200, help="catalogue size (default 1200)")
    demo.add_argument("--embedder", choices=["minilm", "hash"], default="minilm",
                      help="local model behind Bedrock (default minilm: semantic)")
    demo.set_defaults(handler=_cmd_demo)


# --- parser ---------------------------------------------------------------------------------
def _add_database_url(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--database-url", help="PostgreSQL URL (default: S3VL_DATABASE_URL or the local stack)")


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="s3vl", description="Keep Amazon S3 Vectors in step with PostgreSQL, and query the vectors from SQL."
    )
    parser.add_argument("--version", action="version", version=f"s3vl {__version__}")
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"], help="override S3VL_LOG_LEVEL")
    parser.add_argument("--data-dir", type=Path, help="local stack data folder (S3VL_DATA_DIR, default .s3vl)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    dev = sub.add_parser("dev", help="the local stack: PostgreSQL 15 + the local AWS endpoint")
    dev_sub = dev.add_subparsers(dest="dev_command", required=True, metavar="ACTION")
    up = dev_sub.add_parser("up", help="start the local stack (idempotent)")
    up.add_argument(
        "--embedder",
        choices=["hash", "minilm"],
        help="what computes local Bedrock embeddings (default: keep the current one, else hash)",
    )
    up.set_defaults(handler=_cmd_dev_up)
    down = dev_sub.add_parser("down", help="stop the local stack (data kept)")
    down.add_argument("--purge", action="store_true", help="also delete the stack's data")
    down.set_defaults(handler=_cmd_dev_down)
    status = dev_sub.add_parser("status", help="what runs where")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(handler=_cmd_dev_status)
    dev_sub.add_parser("env", help='export lines for a shell: eval "$(s3vl dev env)"').set_defaults(
        handler=_cmd_dev_env
    )

    install = sub.add_parser("install-sql", help="install or upgrade the s3vl schema (idempotent)")
    _add_database_url(install)
    install.add_argument("--print", action="store_true", help="print the install script instead of running it")
    install.set_defaults(handler=_cmd_install_sql)
    uninstall = sub.add_parser("uninstall-sql", help="remove the s3vl schema, its triggers and roles")
    _add_database_url(uninstall)
    uninstall.add_argument("--yes", action="store_true", help="confirm")
    uninstall.set_defaults(handler=_cmd_uninstall_sql)
    _add_reconcile_parser(sub)
    _add_reindex_parser(sub)
    _add_example_parser(sub)
    _add_sync_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``s3vl`` console script."""
    args = _build_parser().parse_args(argv)
    try:
        settings = load_settings(log_level=args.log_level, data_dir=args.data_dir)
        configure_logging(settings.log_level, settings.log_format)
        handler: Handler = args.handler
        return handler(args, settings)
    except S3vlError as exc:
        print(f"s3vl: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
