"""``python -m s3vl_local.endpoint --host 127.0.0.1 --port P --data-dir D [--faults JSON] [--embedder hash|minilm]``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from s3vl_local.endpoint.faults import FaultConfig
from s3vl_local.endpoint.server import serve
from sync.telemetry.logs import configure_logging


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m s3vl_local.endpoint", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True, help="port to listen on (0 = a free port)")
    parser.add_argument("--data-dir", type=Path, required=True, help="folder for persistent data")
    parser.add_argument("--faults", default=None, help="fault configuration JSON (see faults.py)")
    parser.add_argument("--log-level", default="info")
    parser.add_argument(
        "--embedder",
        choices=("hash", "minilm"),
        default=None,
        help="local embedder behind Bedrock (default: $S3VL_LOCAL_EMBEDDER or hash; the demo uses minilm)",
    )
    args = parser.parse_args(argv)
    if args.embedder:
        os.environ["S3VL_LOCAL_EMBEDDER"] = args.embedder  # read by s3vl_local.endpoint.bedrock
    configure_logging(args.log_level, "json")
    try:
        faults = FaultConfig.from_json(json.loads(args.faults)) if args.faults else None
    except ValueError as exc:
        print(f"--faults: {exc}", file=sys.stderr)
        return 2
    serve(args.host, args.port, args.data_dir, faults)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
