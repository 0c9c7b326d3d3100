"""Run the endpoint application in a threaded HTTP/1.1 server, with keep-alive, until SIGTERM/SIGINT.

boto3 keeps its connections open and reuses them; werkzeug's development server closes every
connection after one response, so each call paid a TCP connect and a new server thread on both
sides (about half of the endpoint's CPU per Bedrock call, and a third of the worker's). This
server keeps connections open: one thread per connection (so a handler may call back into the
server, as the Lambda handler calls S3 Vectors), each request's body read whole by its
``Content-Length`` before the application sees it (so the next request on the connection always
starts where it should), and every response sent with its ``Content-Length``. Chunked request
bodies, which no AWS SDK sends to these services, are refused with 411.
"""

from __future__ import annotations

import io
import logging
import signal
import socket
import sys
import threading
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import unquote_to_bytes

import structlog

from s3vl_local.endpoint.app import EndpointApp, build_app
from s3vl_local.endpoint.faults import FaultConfig

log = structlog.get_logger(__name__)

#: Seconds an idle keep-alive connection stays open (boto3 reopens one transparently).
IDLE_SECONDS = 60.0


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the app's counters and structlog events say what matters

    def _serve(self) -> None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self._send(411, [("Content-Type", "text/plain")], b"chunked request bodies are not supported")
            self.close_connection = True
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            self._send(400, [("Content-Type", "text/plain")], b"invalid Content-Length")
            self.close_connection = True
            return
        body = self.rfile.read(length) if length else b""
        status, headers, chunks = self.server.call(self._environ(body))
        self._send(int(status.split(" ", 1)[0]), headers, b"".join(chunks), reason=status.split(" ", 1)[-1])

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve  # noqa: N815 - http.server's names

    def _environ(self, body: bytes) -> dict[str, Any]:
        path, _, query = self.path.partition("?")
        environ: dict[str, Any] = {
            "REQUEST_METHOD": self.command,
            "SCRIPT_NAME": "",
            "PATH_INFO": unquote_to_bytes(path).decode("latin-1"),
            "QUERY_STRING": query,
            "REQUEST_URI": self.path,
            "RAW_URI": self.path,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "SERVER_NAME": self.server.server_address[0],
            "SERVER_PORT": str(self.server.server_address[1]),
            "SERVER_PROTOCOL": self.request_version,
            "REMOTE_ADDR": self.client_address[0],
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        for name, value in self.headers.items():
            key = "HTTP_" + name.upper().replace("-", "_")
            if key not in ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"):
                environ[key] = f"{environ[key]},{value}" if key in environ else value
        return environ

    def _send(self, code: int, headers: Iterable[tuple[str, str]], body: bytes, reason: str | None = None) -> None:
        self.send_response(code, reason)
        for name, value in headers:
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], app: Any) -> None:
        super().__init__(address, _Handler)
        self.app = app

    def call(self, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], list[bytes]]:
        """Run the WSGI application; (status line, headers, body chunks)."""
        started: dict[str, Any] = {}

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            started["status"], started["headers"] = status, headers
            return lambda data: None  # the legacy write() callable: unused by werkzeug responses

        result = self.app(environ, start_response)
        try:
            chunks = [bytes(c) for c in result]
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        return started["status"], started["headers"], chunks

    def finish_request(self, request: Any, client_address: Any) -> None:
        if isinstance(request, socket.socket):
            request.settimeout(IDLE_SECONDS)
            request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().finish_request(request, client_address)


def create_server(host: str, port: int, data_dir: Path,
                  faults: FaultConfig | None = None) -> tuple[ThreadingHTTPServer, EndpointApp]:
    """Bind ``host:port`` (0 = a free port) and build the app; call ``serve_forever`` to run."""
    holder: dict[str, EndpointApp] = {}

    def wsgi(environ: dict[str, Any], start_response: Any) -> Any:
        return holder["app"](environ, start_response)

    server = _Server((host, port), wsgi)
    base_url = f"http://{host}:{server.server_address[1]}"
    holder["app"] = build_app(data_dir, base_url, faults)
    return server, holder["app"]


def serve(host: str, port: int, data_dir: Path, faults: FaultConfig | None = None) -> None:
    """Serve until SIGTERM or SIGINT, then close every service (stores flushed)."""
    server, app = create_server(host, port, data_dir, faults)
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
