"""Run the endpoint application in a threaded werkzeug server until SIGTERM/SIGINT."""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from types import FrameType

import structlog
from werkzeug.serving import BaseWSGIServer, make_server

from s3vl_local.endpoint.app import EndpointApp, build_app
from s3vl_local.endpoint.faults import FaultConfig

log = structlog.get_logger(__name__)


def create_server(
    host: str, port: int, data_dir: Path, faults: FaultConfig | None = None
) -> tuple[BaseWSGIServer, EndpointApp]:
    """Bind ``host:port`` (0 = a free port) and build the app; call ``serve_forever`` to run.

    Threaded: each request has its own thread, so a handler may call back into this server
    (the Lambda handler calls S3 Vectors). HTTP/1.1 keep-alive, as boto3 expects.
    """
    holder: dict[str, EndpointApp] = {}

    def wsgi(environ: dict[str, object], start_response: object) -> object:
        return holder["app"](environ, start_response)

    server = make_server(host, port, wsgi, threaded=True)  # type: ignore[arg-type]
    server.daemon_threads = True  # type: ignore[attr-defined]  # ThreadedWSGIServer
    base_url = f"http://{host}:{server.server_port}"
    holder["app"] = build_app(data_dir, base_url, faults)
    return server, holder["app"]


def serve(host: str, port: int, data_dir: Path, faults: FaultConfig | None = None) -> None:
    """Serve until SIGTERM or SIGINT, then close every service (stores flushed)."""
    server, app = create_server(host, port, data_dir, faults)
    # werkzeug logs every request line; our counters and structlog events say what matters.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)

    def stop(signum: int, frame: FrameType | None) -> None:
        log.info("endpoint.stopping", signal=signum)
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info(
        "endpoint.started",
        url=app.ctx.base_url,
        data_dir=str(data_dir),
        services=[s.name for s in app.services],
    )
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        app.close()
        log.info("endpoint.stopped")
