"""``s3vl install-sql`` and ``s3vl uninstall-sql``: the s3vl SQL schema in a database."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from sync.cli.common import add_database_url, database_url
from sync.config import Settings
from sync.db import schema
from sync.errors import ConfigError
from sync.telemetry.logs import safe_url

if TYPE_CHECKING:
    from sync.cli.common import Subparsers


def _install_sql(args: argparse.Namespace, settings: Settings) -> int:
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


def _uninstall_sql(args: argparse.Namespace, settings: Settings) -> int:
    if not args.yes:
        raise ConfigError("uninstall-sql drops the s3vl schema and its data; confirm with --yes")
    url = database_url(args, settings)
    schema.uninstall(url)
    print(f"s3vl schema removed from {safe_url(url)}")
    return 0


def add_parsers(sub: Subparsers) -> None:
    install = sub.add_parser("install-sql", help="install or upgrade the s3vl schema (idempotent)")
    add_database_url(install)
    install.add_argument("--print", action="store_true", help="print the install script instead of running it")
    install.set_defaults(handler=_install_sql)
    uninstall = sub.add_parser("uninstall-sql", help="remove the s3vl schema, its triggers and roles")
    add_database_url(uninstall)
    uninstall.add_argument("--yes", action="store_true", help="confirm")
    uninstall.set_defaults(handler=_uninstall_sql)
