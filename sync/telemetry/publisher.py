"""The worker's CloudWatch EMF lines, published on a schedule by a thread of its own (:mod:`.emf` builds them)."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import structlog

from sync.db.connection import Database
from sync.telemetry import emf

log = structlog.get_logger(__name__)


class EmfPublisher:
    """Writes the worker's EMF lines (one per sync) at start, every ``interval`` seconds, and at stop.

    A daemon thread with its own database connection; the schedule is fixed-rate (start +
    k * interval), so the lines keep their offset within the minute. A database error skips that
    round (logged, the worker carries on); the lag alarm then sees missing data, which it treats
    as breaching.
    """

    def __init__(self, conninfo: str, interval: float, only_sync: str | None = None,
                 stream: Callable[[], Any] | None = None) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive")
        self.interval = interval
        self.only_sync = only_sync
        self._db = Database(conninfo, application_name="s3vl worker emf")
        self._stream = stream or (lambda: sys.stdout)  # resolved per write (redirected streams)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.lines = 0

    def publish(self) -> int:
        """Write one line per sync now; the number of lines (0 when the database is unreachable)."""
        with self._lock:
            try:
                rows = self._db.all("sync_status")
                docs = emf.worker_documents(rows, int(time.time() * 1000), self.only_sync)
                n = emf.write(self._stream(), docs)
            except Exception as exc:  # metrics never stop the worker (database down, closed stdout, ...)
                log.warning("emf.skipped", error=str(exc), error_type=type(exc).__name__)
                return 0
            self.lines += n
            return n

    def _run(self, first_at: float) -> None:
        next_at = first_at
        while not self._stop.wait(max(next_at - time.monotonic(), 0.0)):
            self.publish()
            next_at += self.interval
            if next_at <= time.monotonic():  # fell behind (a slow query): skip the missed rounds
                next_at = time.monotonic() + self.interval

    def start(self) -> None:
        """Publish now (in the caller), then every interval from a daemon thread."""
        started = time.monotonic()
        self.publish()
        self._thread = threading.Thread(target=self._run, args=(started + self.interval,), name="s3vl-emf",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread, write the final lines, close the connection.

        A round stuck in the database (the thread still alive after 10 s) is left to die with the
        process: shutting down never waits on metrics.
        """
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            if self._thread.is_alive():
                log.warning("emf.stop_abandoned")
                return
        try:
            self.publish()
        finally:
            self._db.close()
