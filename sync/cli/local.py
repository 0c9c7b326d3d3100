"""``s3vl dev up|down|status|env``, ``s3vl demo``, ``s3vl example walkthrough``: the local stack.

The commands are declared here so that ``s3vl --help`` lists them in every install; they run in
the ``s3vl-local`` distribution (:mod:`s3vl_local.cli`) and, where it is not installed, exit with
one line saying what to install.
"""

from __future__ import annotations

import argparse
from types import ModuleType
from typing import TYPE_CHECKING

from sync.cli.common import add_database_url, bounded, database_url, local_stack
from sync.config import Settings
from sync.errors import ConfigError

if TYPE_CHECKING:
    from sync.cli.common import Subparsers


def _local() -> ModuleType:
    local_cli = local_stack()
    if local_cli is None:
        raise ConfigError(
            "the local stack is not installed: install s3vl-local (pip install -e ./local from the s3vl "
            "repository; ./run setup does it)"
        )
    return local_cli


def _dev_up(args: argparse.Namespace, settings: Settings) -> int:
    return int(_local().dev_up(args, settings))


def _dev_down(args: argparse.Namespace, settings: Settings) -> int:
    return int(_local().dev_down(args, settings))


def _dev_status(args: argparse.Namespace, settings: Settings) -> int:
    return int(_local().dev_status(args, settings))


def _dev_env(args: argparse.Namespace, settings: Settings) -> int:
    return int(_local().dev_env(args, settings))


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    return int(_local().demo(args, settings))


def _example_walkthrough(args: argparse.Namespace, settings: Settings) -> int:
    local = _local()
    return int(local.example_walkthrough(args, settings, None if args.no_table else database_url(args, settings)))


def add_parsers(sub: Subparsers) -> None:
    dev = sub.add_parser("dev", help="the local stack: PostgreSQL 15 + the local AWS endpoint")
    dev_sub = dev.add_subparsers(dest="dev_command", required=True, metavar="ACTION")
    up = dev_sub.add_parser("up", help="start the local stack (idempotent)")
    up.add_argument(
        "--embedder",
        choices=["hash", "minilm"],
        help="what computes local Bedrock embeddings (default: keep the current one, else hash)",
    )
    up.set_defaults(handler=_dev_up)
    down = dev_sub.add_parser("down", help="stop the local stack (data kept)")
    down.add_argument("--purge", action="store_true", help="also delete the stack's data")
    down.set_defaults(handler=_dev_down)
    status = dev_sub.add_parser("status", help="what runs where")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(handler=_dev_status)
    dev_sub.add_parser("env", help='export lines for a shell: eval "$(s3vl dev env)"').set_defaults(handler=_dev_env)

    demo = sub.add_parser("demo", help="the whole thing locally: stack, 1,200 products, sync, SQL questions")
    demo.add_argument("--products", type=bounded(int, 10, 100_000), default=1200,
                      help="catalogue size, 10-100000 (default 1200)")
    demo.add_argument("--embedder", choices=["minilm", "hash"], default="minilm",
                      help="local model behind Bedrock (default minilm: semantic)")
    demo.set_defaults(handler=_demo)

    example = sub.add_parser("example", help="load example data")
    example_sub = example.add_subparsers(dest="example_command", required=True, metavar="EXAMPLE")
    walk = example_sub.add_parser(
        "walkthrough",
        help="the Aurora + S3 Vectors walkthrough's index, 50 vectors and s3vl_demo_products (re-runnable); "
        'prints export lines: eval "$(s3vl example walkthrough)"',
    )
    add_database_url(walk)
    walk.add_argument("--bucket", default="s3vl-walkthrough", help="vector bucket (default s3vl-walkthrough)")
    walk.add_argument("--no-table", action="store_true", help="only the vectors, not s3vl_demo_products")
    walk.set_defaults(handler=_example_walkthrough)
