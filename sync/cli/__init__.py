"""The ``s3vl`` command: parses arguments, loads settings, calls the module that does the work.

One module per command group (:mod:`.local`, :mod:`.schema`, :mod:`.worker`, :mod:`.ops`), each
with ``add_parsers(sub)`` and one small handler per command taking the parsed arguments and the
settings and returning an exit status. No handler holds logic of its own beyond presenting
results. Errors of the :class:`~sync.errors.S3vlError` family become one line on stderr and the
class's exit status.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from sync import __version__
from sync.cli import local, ops, schema, worker
from sync.cli.common import Handler
from sync.config import load_settings
from sync.errors import S3vlError
from sync.telemetry.logs import configure_logging


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="s3vl", description="Keep Amazon S3 Vectors in step with PostgreSQL, and query the vectors from SQL."
    )
    parser.add_argument("--version", action="version", version=f"s3vl {__version__}")
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"], help="override S3VL_LOG_LEVEL")
    parser.add_argument("--data-dir", type=Path, help="local stack data folder (S3VL_DATA_DIR, default .s3vl)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in (local, schema, ops, worker):
        group.add_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``s3vl`` console script."""
    args = build_parser().parse_args(argv)
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
