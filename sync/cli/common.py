"""What every command group of the ``s3vl`` CLI shares: where the database is, and small output helpers."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING

from sync.config import Settings
from sync.errors import ConfigError

#: A command: the parsed arguments and the settings in, an exit status out.
Handler = Callable[[argparse.Namespace, Settings], int]
if TYPE_CHECKING:  # argparse's class is generic only to type checkers
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]


def local_stack() -> ModuleType | None:
    """The local stack's commands (the ``s3vl-local`` distribution), or None in a production install."""
    try:
        from s3vl_local import cli as local_cli
    except ImportError:
        return None
    return local_cli


def database_url(args: argparse.Namespace, settings: Settings) -> str:
    """``--database-url``, else S3VL_DATABASE_URL, else the local stack's database when it runs."""
    url = getattr(args, "database_url", None) or settings.database_url
    if url:
        return str(url)
    local_cli = local_stack()
    local_url = local_cli.running_database_url(settings) if local_cli is not None else None
    if local_url:
        return str(local_url)
    raise ConfigError(
        "no database: set S3VL_DATABASE_URL (or --database-url), or start the local stack with 's3vl dev up'"
    )


def add_database_url(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--database-url", help="PostgreSQL URL (default: S3VL_DATABASE_URL or the local stack)")


def bounded(kind: Callable[[str], float], low: float, high: float) -> Callable[[str], float]:
    """An argparse ``type`` for a flag that is not a setting: a number from ``low`` to ``high``."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text} is out of range: give {low:g} to {high:g}")
        return value

    return parse


def print_json(value: object) -> None:
    print(json.dumps(value, indent=2, default=str))


def emf_on(settings: Settings) -> bool:
    """Whether this process writes CloudWatch EMF lines (see :func:`sync.telemetry.emf.enabled`)."""
    import os

    from sync.telemetry import emf

    return emf.enabled(settings.emf, settings.emf_interval_seconds, os.environ)
