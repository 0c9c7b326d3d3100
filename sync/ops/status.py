"""``s3vl status``: each sync's queue, lag, last success and last reconcile, plus failed keys.

Reads only the ``s3vl.sync_status`` and ``s3vl.sync_failures`` views (named queries of
``sql/queries/status.sql``), so what it shows is what an operator sees from SQL: a paused sync
with its error, and failed keys with theirs where the login may read the source.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.table import Table

from sync.db.connection import Database


def collect(conninfo: str, failures: int = 20) -> dict[str, Any]:
    with Database(conninfo, application_name="s3vl status") as db:
        return {"syncs": db.all("sync_status"), "failures": db.all("sync_failures", {"limit": failures})}


def to_json(status: dict[str, Any]) -> str:
    return json.dumps(status, indent=2, default=str)


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.1f}s"
    if seconds < 7200:
        return f"{seconds / 60:.1f}m"
    return f"{seconds / 3600:.1f}h"


def _ago(ts: datetime | None) -> str:
    if ts is None:
        return "-"
    return _age((datetime.now(UTC) - ts).total_seconds()) + " ago"


def render(status: dict[str, Any], console: Console) -> None:
    syncs = status["syncs"]
    if not syncs:
        console.print("no syncs defined (SELECT s3vl.create_sync(...) defines one)")
        return
    table = Table(title="s3vl syncs")
    numeric = ("pending", "leased", "retrying", "failed", "lag", "synced")
    for col in ("sync", "index", *numeric, "last ok", "reconciled"):
        table.add_column(col, justify="right" if col in numeric else "left", no_wrap=True)
    for s in syncs:
        table.add_row(s["sync_name"], s["index_name"], str(s["pending"]), str(s["leased"]), str(s["retrying"]),
                      str(s["failed"]), _age(s["lag_seconds"]), str(s["synced_keys"]),
                      _ago(s["last_success"]), _ago(s["last_reconcile_at"]))
    console.print(table)
    for s in syncs:
        if s.get("paused_until"):
            console.print(f"[bold]{s['sync_name']}[/bold] is paused until {s['paused_until']:%Y-%m-%d %H:%M:%S %Z} "
                          f"(s3vl retry-failed --sync {s['sync_name']} resumes it now): {s['sync_error']}")
    if status["failures"]:
        failed = Table(title="failed keys (s3vl retry-failed puts them back in the queue)")
        for col in ("sync", "key", "attempts", "last error"):
            failed.add_column(col)
        for f in status["failures"]:
            failed.add_row(f["sync_name"], f["key"], str(f["attempts"]), (f["last_error"] or "")[:100])
        console.print(failed)


def exit_code(status: dict[str, Any]) -> int:
    """0 healthy, 3 when some key is in the failed state or some sync is paused."""
    return 3 if any(s["failed"] or s.get("paused_until") for s in status["syncs"]) else 0
