"""The local stack's commands: ``s3vl dev up|down|status|env``, ``s3vl demo``, ``s3vl example walkthrough``.

The ``s3vl`` parser (:mod:`sync.cli`) declares these commands so that ``s3vl --help`` lists them in
every install; it hands them to the functions here only when this package (``s3vl-local``) is
installed, and otherwise says what to install.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from s3vl_local.stack import Stack, format_env
from sync.config import Settings
from sync.telemetry.logs import configure_logging, safe_url


def stack(settings: Settings) -> Stack:
    return Stack(settings.data_dir, settings.dev_pg_port, settings.dev_endpoint_port)


def running_database_url(settings: Settings) -> str | None:
    """The local stack's database URL when its cluster runs, else None.

    The local database goes with the local AWS endpoint: its ``AWS_*`` variables are set (where
    unset) so that a command run in a shell that did not ``eval "$(s3vl dev env)"`` does not look
    for AWS credentials instead.
    """
    local = stack(settings)
    if local.cluster.running_pid() is None:
        return None
    for key, value in local.env().items():
        if key.startswith("AWS_"):
            os.environ.setdefault(key, value)
    return local.state.database_url


def dev_up(args: argparse.Namespace, settings: Settings) -> int:
    state = stack(settings).up(embedder=args.embedder)
    print(f"PostgreSQL  {state.database_url}")
    print(f"AWS endpoint {state.endpoint_url}  (S3 Vectors, Bedrock Runtime, Lambda; embedder={state.embedder})")
    print('Use it from a shell with: eval "$(.venv/bin/s3vl dev env)"')
    return 0


def dev_down(args: argparse.Namespace, settings: Settings) -> int:
    stack(settings).down(purge=args.purge)
    print("local stack stopped" + (" and its data deleted" if args.purge else " (data kept)"))
    return 0


def dev_status(args: argparse.Namespace, settings: Settings) -> int:
    status = stack(settings).status()
    if args.json:
        print(json.dumps(status, indent=2, default=str))
    else:
        pg, ep = status["postgres"], status["endpoint"]
        print(f"data folder   {status['data_dir']}")
        print(
            f"postgres      {'running' if pg['running'] else 'stopped'}  port {pg['port']}  "
            f"pid {pg['pid'] or '-'}  {pg['url']}"
        )
        print(
            f"aws endpoint  {'running' if ep['running'] else 'stopped'}  {ep['url']}  "
            f"pid {ep['pid'] or '-'}  embedder {ep['embedder']}"
        )
    running = status["postgres"]["running"] and status["endpoint"]["running"]
    return 0 if running else 3


def dev_env(args: argparse.Namespace, settings: Settings) -> int:
    print(format_env(stack(settings).env()))
    return 0


def example_walkthrough(args: argparse.Namespace, settings: Settings, database_url: str | None) -> int:
    from s3vl_local.examples import walkthrough

    result = walkthrough.run(database_url, settings.aws_region, bucket=args.bucket)
    print(f"loaded {result.vectors} vectors into {result.index_arn}"
          + (f" and {result.products} rows into s3vl_demo_products ({safe_url(database_url)})"
             if database_url else ""),
          file=sys.stderr)
    print(result.export_lines())
    return 0


def demo(args: argparse.Namespace, settings: Settings) -> int:
    from s3vl_local.demo import run

    if args.log_level is None:
        # The demo narrates its own steps; per-batch log lines would bury them. Warnings and
        # errors still show; --log-level info brings the batch lines back.
        configure_logging("warning", settings.log_format)
    run.run(settings, count=args.products, embedder=args.embedder)
    return 0
