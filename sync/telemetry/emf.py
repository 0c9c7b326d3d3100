"""CloudWatch embedded metric format (EMF): the worker's and reconcile's metrics as JSON log lines.

The alarms and the worker autoscaling of ``terraform/modules/s3vl`` (alarms.tf) read three metrics
in namespace ``s3vl`` with one dimension, ``Sync`` = the sync's name, statistic ``Maximum``:

==================  =======  ===========================================================  =========
metric              unit     value                                                        from
==================  =======  ===========================================================  =========
OutboxLagSeconds    Seconds  age of the oldest pending outbox row (0 when none is pending)  worker
FailedRows          Count    outbox rows that exhausted their retries (status 'failed')    worker
ReconcileDrift      Count    orphaned + missing + stale + metadata-drift keys the run       reconcile
                             found, less those already waiting in the outbox (the worker
                             has them: that is lag, not drift); repaired or not, as the
                             alarm says ("found drift ... it repaired it with --apply")
ReconcileFailed     Count    1 when the run failed for this sync (its drift is unknown),   reconcile
                             else 0; a run that failed before it knew its syncs (the
                             database unreachable) reports it for Sync="*"
==================  =======  ===========================================================  =========

One line per sync, e.g. (one line in reality)::

    {"_aws":{"Timestamp":1795000000000,"CloudWatchMetrics":[{"Namespace":"s3vl","Dimensions":[["Sync"]],
     "Metrics":[{"Name":"OutboxLagSeconds","Unit":"Seconds"},{"Name":"FailedRows","Unit":"Count"}]}]},
     "Sync":"products","OutboxLagSeconds":12.5,"FailedRows":0,"Pending":40,"Leased":10,"Retrying":0}

Members besides the metrics and the dimension (``Pending``, ``Orphaned``, ...) are plain log fields
for CloudWatch Logs Insights; they are not metrics (no cost, no alarm).

How the lines reach CloudWatch: the worker and reconcile containers log through the ``awslogs``
driver (PutLogEvents); CloudWatch Logs extracts the metrics from every event that is an EMF
document, with no agent and no ``cloudwatch:PutMetricData`` permission. Each document is written
as one ``write`` of one line so that it stays one log event.

When (settings ``S3VL_EMF`` and ``S3VL_EMF_INTERVAL_SECONDS``, see :func:`enabled`):

* ``S3VL_EMF=auto`` (default): on only inside ECS (``ECS_CONTAINER_METADATA_URI_V4`` is set by the
  ECS agent on Fargate and EC2), so local runs and tests stay quiet; ``on`` forces it anywhere,
  ``off`` disables it.
* ``S3VL_EMF_INTERVAL_SECONDS`` (default 60, 0 disables EMF altogether, else at least 1): the
  worker publishes when it starts, every interval (fixed rate, so each 60 s alarm period holds
  one datapoint), and once when it stops; reconcile publishes once per sync per run, after its
  report.
* Lines go to stdout; ``s3vl reconcile --json`` sends them to stderr instead so that stdout stays
  one JSON document (the ``awslogs`` driver ships both streams to the same log stream).

This module is pure: documents are built from values and written to a given stream.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from typing import IO, Any, Final

from sync.ops.reconcile.report import Category, ReconcileReport

NAMESPACE: Final = "s3vl"
#: The one dimension of every metric: the sync's name (s3vl.syncs.name).
DIMENSION: Final = "Sync"

OUTBOX_LAG_SECONDS: Final = "OutboxLagSeconds"
FAILED_ROWS: Final = "FailedRows"
RECONCILE_DRIFT: Final = "ReconcileDrift"
RECONCILE_FAILED: Final = "ReconcileFailed"
#: The Sync dimension of a reconcile failure that is not one sync's (no sync is named "*": see
#: s3vl.create_sync's name rule).
ALL_SYNCS: Final = "*"

#: Every metric s3vl can emit and its CloudWatch unit (tests/unit/terraform/test_terraform.py checks that the
#: alarms use exactly these names).
METRICS: Final[Mapping[str, str]] = {
    OUTBOX_LAG_SECONDS: "Seconds",
    FAILED_ROWS: "Count",
    RECONCILE_DRIFT: "Count",
    RECONCILE_FAILED: "Count",
}
WORKER_METRICS: Final = (OUTBOX_LAG_SECONDS, FAILED_ROWS)
RECONCILE_METRICS: Final = (RECONCILE_DRIFT, RECONCILE_FAILED)

#: The units CloudWatch accepts (MetricDatum.Unit / EMF MetricDefinition.Unit).
UNITS: Final = frozenset({
    "Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes", "Megabytes", "Gigabytes", "Terabytes",
    "Bits", "Kilobits", "Megabits", "Gigabits", "Terabits", "Percent", "Count", "Bytes/Second",
    "Kilobytes/Second", "Megabytes/Second", "Gigabytes/Second", "Terabytes/Second", "Bits/Second",
    "Kilobits/Second", "Megabits/Second", "Gigabits/Second", "Terabits/Second", "Count/Second", "None",
})

#: What CloudWatch accepts as a namespace (checked by the unit tests against NAMESPACE).
NAMESPACE_PATTERN: Final = re.compile(r"^[a-zA-Z0-9._#:/-]{1,255}$")
_MAX_DIMENSION_VALUE = 1024

MODES: Final = ("auto", "on", "off")
ECS_MARKER: Final = "ECS_CONTAINER_METADATA_URI_V4"


def enabled(mode: str, interval_seconds: float, environ: Mapping[str, str]) -> bool:
    """Whether to write EMF lines: ``off`` or interval 0 never, ``on`` always, ``auto`` inside ECS."""
    if mode not in MODES:
        raise ValueError(f"EMF mode must be one of {', '.join(MODES)}")
    if mode == "off" or interval_seconds <= 0:
        return False
    return mode == "on" or bool(environ.get(ECS_MARKER))


def document(sync: str, values: Mapping[str, float], timestamp_ms: int,
             properties: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """One EMF document: ``values`` (metric name -> number) for dimension Sync=``sync``.

    Raises ValueError for anything CloudWatch would reject or silently drop: an unknown metric, a
    non-finite or non-numeric value, an empty or non-ASCII sync name, a property that would
    shadow a metric or the dimension.
    """
    if not values:
        raise ValueError("an EMF document needs at least one metric")
    if not sync or not sync.isascii() or not sync.strip() or len(sync) > _MAX_DIMENSION_VALUE:
        raise ValueError(f"sync name {sync!r} is not a valid CloudWatch dimension value")
    if isinstance(timestamp_ms, bool) or not isinstance(timestamp_ms, int) or timestamp_ms <= 0:
        raise ValueError("timestamp_ms must be a positive integer (milliseconds since the epoch)")
    body: dict[str, Any] = {}
    for name, value in values.items():
        if name not in METRICS:
            raise ValueError(f"unknown metric {name!r} (known: {', '.join(METRICS)})")
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ValueError(f"metric {name} needs a finite number, not {value!r}")
        body[name] = value
    extra = dict(properties or {})
    clash = sorted(set(extra) & (set(METRICS) | {DIMENSION, "_aws"}))
    if clash:
        raise ValueError(f"properties may not use the names {', '.join(clash)}")
    directive = {
        "Namespace": NAMESPACE,
        "Dimensions": [[DIMENSION]],
        "Metrics": [{"Name": name, "Unit": METRICS[name]} for name in values],
    }
    return {"_aws": {"Timestamp": timestamp_ms, "CloudWatchMetrics": [directive]},
            DIMENSION: sync, **body, **extra}


def to_line(doc: Mapping[str, Any]) -> str:
    """The document as one compact JSON line (no newline inside, NaN refused)."""
    return json.dumps(doc, separators=(",", ":"), allow_nan=False)


def worker_documents(status_rows: Iterable[Mapping[str, Any]], timestamp_ms: int,
                     only_sync: str | None = None) -> list[dict[str, Any]]:
    """One document per sync from ``s3vl.sync_status`` rows (:meth:`sync.datapath.outbox.Outbox.status`)."""
    docs = []
    for row in status_rows:
        name = str(row["sync_name"])
        if only_sync is not None and name != only_sync:
            continue
        lag = row.get("lag_seconds")
        values = {OUTBOX_LAG_SECONDS: max(float(lag), 0.0) if lag is not None else 0.0,
                  FAILED_ROWS: int(row.get("failed") or 0)}
        props = {"Pending": int(row.get("pending") or 0), "Leased": int(row.get("leased") or 0),
                 "Retrying": int(row.get("retrying") or 0)}
        docs.append(document(name, values, timestamp_ms, props))
    return docs


def reconcile_drift(report: ReconcileReport) -> int:
    """ReconcileDrift: orphaned + missing + stale + metadata drift found, less the keys already queued.

    ``state_drift`` is not counted: it is the worker's bookkeeping disagreeing with the index, not
    the table disagreeing with the index (the alarm's meaning), and it is always fixed in place.
    """
    total = 0
    for cat in (Category.ORPHANED, Category.MISSING, Category.STALE, Category.METADATA_DRIFT):
        result = report.category(cat)
        total += max(result.count - result.queued, 0)
    return total


def reconcile_document(report: ReconcileReport, timestamp_ms: int) -> dict[str, Any]:
    """The document of one sync's run: ReconcileFailed, and ReconcileDrift unless it failed (then unknown, not 0)."""
    if report.error is not None:
        return failed_document(report.sync, report.error, timestamp_ms)
    props: dict[str, Any] = {
        "Orphaned": report.category(Category.ORPHANED).count,
        "Missing": report.category(Category.MISSING).count,
        "Stale": report.category(Category.STALE).count,
        "MetadataDrift": report.category(Category.METADATA_DRIFT).count,
        "StateDrift": report.category(Category.STATE_DRIFT).count,
        "Queued": sum(report.category(c).queued for c in (Category.MISSING, Category.STALE, Category.METADATA_DRIFT)),
        "Remaining": report.remaining,
        "Applied": report.applied,
        "Refused": report.refused is not None,
    }
    if report.rolling is not None:
        props["RollingCycle"] = report.rolling.cycle
        props["CycleDone"] = round(report.rolling.done_share, 4)
    return document(report.sync, {RECONCILE_DRIFT: reconcile_drift(report), RECONCILE_FAILED: 0}, timestamp_ms,
                    props)


def failed_document(sync: str, error: str, timestamp_ms: int) -> dict[str, Any]:
    """ReconcileFailed = 1 for ``sync`` (or :data:`ALL_SYNCS`), with the error as a log field."""
    return document(sync, {RECONCILE_FAILED: 1}, timestamp_ms, {"Error": error[:1000]})


def reconcile_documents(reports: Iterable[ReconcileReport], now_ms: int) -> list[dict[str, Any]]:
    """One document per sync's run, stamped with the run's end (``now_ms`` if unknown)."""
    return [reconcile_document(report, int(report.finished_at.timestamp() * 1000)
                               if report.finished_at is not None else now_ms) for report in reports]


def write(stream: IO[str], docs: Iterable[Mapping[str, Any]]) -> int:
    """Write each document as one line (one ``write`` call each, then flush); returns the count."""
    n = 0
    for doc in docs:
        stream.write(to_line(doc) + "\n")
        n += 1
    stream.flush()
    return n
