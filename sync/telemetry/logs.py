"""Structured logging: JSON lines for machines, readable console output on a terminal.

Log calls name an event and pass context as keys (``log.info("batch.written", sync=name,
keys=n)``), never f-strings, so every line can be filtered by field. Secrets never reach a log:
settings are logged through :func:`safe_url`, which drops passwords from connection URLs.
"""

from __future__ import annotations

import logging
import sys
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

import structlog

LogFormat = Literal["auto", "json", "console"]


def configure_logging(level: str = "info", fmt: LogFormat = "auto") -> None:
    """Set up structlog once per process; ``auto`` picks console output on a TTY."""
    use_console = fmt == "console" or (fmt == "auto" and sys.stderr.isatty())
    renderer: structlog.types.Processor = (
        structlog.dev.ConsoleRenderer() if use_console else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        # Resolve sys.stderr at each call, not once: a redirected stream (pytest's capture, a
        # daemon's log file) must not leave loggers writing to a closed file.
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=False,
    )


def _stderr_logger(*_args: object) -> structlog.PrintLogger:
    return structlog.PrintLogger(sys.stderr)


def safe_url(url: str | None) -> str | None:
    """The URL without its password, fit for a log line or a status table."""
    if not url:
        return url
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))
