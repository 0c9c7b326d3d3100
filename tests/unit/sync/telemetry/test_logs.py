"""Logging helpers: secrets never reach a log line."""

from __future__ import annotations

import json

import pytest
import structlog

from sync.telemetry.logs import configure_logging, safe_url


def test_safe_url_hides_password() -> None:
    assert safe_url("postgresql://app:s3cret@db:5432/app") == "postgresql://app:***@db:5432/app"
    assert safe_url("postgresql://app@db/app") == "postgresql://app@db/app"
    assert safe_url(None) is None


def test_json_lines_when_not_a_tty(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info", "json")
    structlog.get_logger("t").info("batch.written", sync="products", keys=3)
    structlog.get_logger("t").debug("not.shown")
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["event"] == "batch.written"
    assert record["sync"] == "products"
    assert record["keys"] == 3
    assert record["level"] == "info"
