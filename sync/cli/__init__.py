"""The ``s3vl`` command: parses arguments, loads settings, calls the module that does the work.

One module per command group (:mod:`.local`, :mod:`.schema`, :mod:`.worker`, :mod:`.ops`), each
with ``add_parsers(sub)`` and one small handler per command taking the parsed arguments and the
settings and returning an exit status. No handler holds logic of its own beyond presenting
results. Flags whose ``dest`` is a setting's name are settings given on the command line: they
go through the settings' own validation. Errors of the :class:`~sync.errors.S3vlError` family
become one line on stderr and the class's exit status; anything else is a bug, and still one line
(the traceback goes to the log at debug level).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import structlog

from sync import __version__
from sync.cli import local, ops, schema, worker
from sync.cli.common import Handler
from sync.config import Settings, load_settings
from sync.errors import S3vlError
from sync.telemetry.logs import configure_logging


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="s3vl", description="Keep Amazon S3 Vectors in step with PostgreSQL, and query the vectors from SQL."
    )
    parser.add_argument("--version", action="version", version=f"s3vl {__version__}")
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"], help="override S3VL_LOG_LEVEL")
    parser.add_argument("--data-dir", type=Path, help="local stack data folder (S3VL_DATA_DIR, default .s3vl)")
    # not required here: main() reports an unknown option before a missing command
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for group in (local, schema, ops, worker):
        group.add_parsers(sub)
    return parser


def _parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                yield from _parsers(child)


def _flags(parser: argparse.ArgumentParser) -> dict[str, str]:
    """The flag of every option that sets a setting (its dest is the setting's name), for messages."""
    return {a.dest: max(a.option_strings, key=len) for p in _parsers(parser) for a in p._actions
            if a.option_strings and a.dest in Settings.model_fields}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``s3vl`` console script."""
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if args.command is None:
        parser.error("the following arguments are required: COMMAND")
    try:
        overrides = {name: value for name in Settings.model_fields if (value := getattr(args, name, None)) is not None}
        settings = load_settings(_flags(parser), **overrides)
        configure_logging(settings.log_level, settings.log_format)
        handler: Handler = args.handler
        return handler(args, settings)
    except S3vlError as exc:
        print(f"s3vl: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader went away (`s3vl install-sql --print | head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit's flush does not fail too
        return 141  # 128 + SIGPIPE, as a shell reports a command ended by a closed pipe
    except Exception as exc:  # a bug: one line for the user, the traceback for the log
        structlog.get_logger(__name__).debug("cli.crashed", exc_info=True)
        print(f"s3vl: internal error: {type(exc).__name__}: {exc} (run with --log-level debug for the traceback)",
              file=sys.stderr)
        return 1
