"""Start and stop the endpoint as a detached background process (for ``s3vl dev up/down``).

``pid = start("127.0.0.1", 45660, data_dir, log_file)`` launches
``python -m s3vl_local.endpoint`` in its own session (it outlives the caller), waits until
``GET /_s3vl/health`` answers, and returns the pid. ``stop(pid)`` sends SIGTERM (the server
closes its stores), then SIGKILL after ``timeout``. ``is_healthy(url)`` is a quick probe.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from s3vl_local.endpoint.admin import AdminClient
from s3vl_local.errors import LocalStackError
from s3vl_local.processes import pid_alive


def url_for(host: str, port: int) -> str:
    return f"http://{host}:{port}"


def is_healthy(url: str, timeout: float = 1.0) -> bool:
    """True when the endpoint at ``url`` answers its health route."""
    return AdminClient(url, timeout=timeout).is_healthy()


def start(
    host: str,
    port: int,
    data_dir: Path,
    log_file: Path,
    faults: dict[str, Any] | None = None,
    timeout: float = 60.0,
    embedder: str | None = None,
) -> int:
    """Launch the endpoint detached, wait for health, return its pid.

    Raises :class:`~sync.errors.LocalStackError` (with the log's tail) if it exits or does not
    become healthy within ``timeout`` seconds. The endpoint loads every index into memory
    before it answers health (about 3 s per 100,000 vectors of 1,024 dimensions).
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable, "-m", "s3vl_local.endpoint",
        "--host", host, "--port", str(port), "--data-dir", str(data_dir),
    ]  # fmt: skip
    if faults:
        cmd += ["--faults", json.dumps(faults)]
    env = dict(os.environ)
    if embedder:
        cmd += ["--embedder", embedder]  # hash | minilm: what computes Bedrock's vectors
    if embedder == "minilm":
        # MiniLM's small matrix products: one BLAS thread per process measured 2x less CPU per
        # text on 2 shared cores (tests/bench/bench_local_embedder.py); the worker and PostgreSQL
        # need the other core. An explicit OPENBLAS_NUM_THREADS still wins.
        env.setdefault("OPENBLAS_NUM_THREADS", "1")
    with open(log_file, "ab") as log:
        proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True, env=env
        )
    url = url_for(host, port)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise LocalStackError(f"local endpoint exited with status {proc.returncode}: {_tail(log_file)}")
        if is_healthy(url, timeout=0.5):
            return proc.pid
        time.sleep(0.05)
    stop(proc.pid)
    raise LocalStackError(f"local endpoint did not become healthy at {url} in {timeout:.0f}s: {_tail(log_file)}")


def stop(pid: int, timeout: float = 10.0) -> bool:
    """SIGTERM ``pid``, wait, SIGKILL if needed. False if it was not running."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return True
    while pid_alive(pid):
        time.sleep(0.05)
    return True


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
