"""sync/emf.py: documents follow the CloudWatch embedded metric format specification.

``assert_valid_emf`` is an independent reading of the specification (root node, metadata object,
MetricDirective, DimensionSet, MetricDefinition, target members), used here and by the
integration test on the lines the real commands print.
"""

from __future__ import annotations

import io
import json
import math
from datetime import UTC, datetime
from typing import Any

import pytest

from sync.ops.reconcile.report import CategoryResult, ReconcileReport
from sync.telemetry import emf

TS = 1_795_000_000_000


def assert_valid_emf(doc: dict[str, Any]) -> None:
    """Fail unless ``doc`` is an EMF document CloudWatch extracts metrics from."""
    meta = doc["_aws"]
    assert set(meta) == {"Timestamp", "CloudWatchMetrics"}
    assert isinstance(meta["Timestamp"], int)
    assert not isinstance(meta["Timestamp"], bool)
    assert 1_500_000_000_000 < meta["Timestamp"] < 4_000_000_000_000, "milliseconds since the epoch"
    assert isinstance(meta["CloudWatchMetrics"], list)
    assert meta["CloudWatchMetrics"]
    for directive in meta["CloudWatchMetrics"]:
        assert set(directive) == {"Namespace", "Dimensions", "Metrics"}
        assert emf.NAMESPACE_PATTERN.match(directive["Namespace"])
        assert isinstance(directive["Dimensions"], list)
        for dimension_set in directive["Dimensions"]:
            assert isinstance(dimension_set, list)
            assert 1 <= len(dimension_set) <= 30
            for key in dimension_set:
                value = doc[key]  # a dimension is a string target member
                assert isinstance(value, str)
                assert value.strip()
                assert value.isascii()
                assert len(value) <= 1024
        assert 1 <= len(directive["Metrics"]) <= 100
        for metric in directive["Metrics"]:
            assert set(metric) <= {"Name", "Unit", "StorageResolution"}
            assert metric["Unit"] in emf.UNITS
            value = doc[metric["Name"]]  # a metric is a numeric target member
            assert isinstance(value, int | float)
            assert not isinstance(value, bool)
            assert math.isfinite(value)


def test_document_structure_and_values() -> None:
    doc = emf.document("products", {"OutboxLagSeconds": 12.5, "FailedRows": 3}, TS, {"Pending": 40})
    assert doc == {
        "_aws": {
            "Timestamp": TS,
            "CloudWatchMetrics": [{
                "Namespace": "s3vl",
                "Dimensions": [["Sync"]],
                "Metrics": [{"Name": "OutboxLagSeconds", "Unit": "Seconds"}, {"Name": "FailedRows", "Unit": "Count"}],
            }],
        },
        "Sync": "products", "OutboxLagSeconds": 12.5, "FailedRows": 3, "Pending": 40,
    }
    assert_valid_emf(doc)


def test_line_is_one_compact_json_line() -> None:
    doc = emf.document("products", {"ReconcileDrift": 2}, TS)
    line = emf.to_line(doc)
    assert "\n" not in line
    assert " " not in line
    assert json.loads(line) == doc
    out = io.StringIO()
    assert emf.write(out, [doc, doc]) == 2
    assert out.getvalue() == line + "\n" + line + "\n"


def test_every_metric_has_a_cloudwatch_unit() -> None:
    assert set(emf.METRICS) == {"OutboxLagSeconds", "FailedRows", "ReconcileDrift", "ReconcileFailed"}
    assert set(emf.WORKER_METRICS) | set(emf.RECONCILE_METRICS) == set(emf.METRICS)
    assert emf.METRICS["OutboxLagSeconds"] == "Seconds"
    assert emf.METRICS["FailedRows"] == emf.METRICS["ReconcileDrift"] == "Count"
    assert all(unit in emf.UNITS for unit in emf.METRICS.values())
    assert emf.NAMESPACE_PATTERN.match(emf.NAMESPACE)


@pytest.mark.parametrize(
    ("sync", "values", "ts", "props", "message"),
    [
        ("products", {}, TS, None, "at least one metric"),
        ("products", {"Lag": 1.0}, TS, None, "unknown metric 'Lag'"),
        ("products", {"FailedRows": math.nan}, TS, None, "finite number"),
        ("products", {"FailedRows": math.inf}, TS, None, "finite number"),
        ("products", {"FailedRows": True}, TS, None, "finite number"),
        ("products", {"FailedRows": "3"}, TS, None, "finite number"),
        ("", {"FailedRows": 1}, TS, None, "not a valid CloudWatch dimension"),
        ("prodüct", {"FailedRows": 1}, TS, None, "not a valid CloudWatch dimension"),
        ("x" * 1025, {"FailedRows": 1}, TS, None, "not a valid CloudWatch dimension"),
        ("products", {"FailedRows": 1}, 0, None, "timestamp_ms"),
        ("products", {"FailedRows": 1}, 1.5e12, None, "timestamp_ms"),
        ("products", {"FailedRows": 1}, TS, {"Sync": "other"}, "may not use the names Sync"),
        ("products", {"FailedRows": 1}, TS, {"FailedRows": 9}, "may not use the names FailedRows"),
        ("products", {"FailedRows": 1}, TS, {"_aws": {}}, "may not use the names _aws"),
    ],
)
def test_document_refuses_what_cloudwatch_would_reject(
    sync: str, values: dict[str, Any], ts: Any, props: dict[str, Any] | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        emf.document(sync, values, ts, props)


def test_worker_documents_from_status_rows() -> None:
    rows = [
        {"sync_name": "articles", "pending": 0, "leased": 0, "retrying": 0, "failed": 0, "lag_seconds": None},
        {"sync_name": "products", "pending": 40, "leased": 10, "retrying": 2, "failed": 3, "lag_seconds": 61.25},
        {"sync_name": "skewed", "pending": 1, "leased": 0, "retrying": 0, "failed": 0, "lag_seconds": -0.002},
    ]
    docs = emf.worker_documents(rows, TS)
    for doc in docs:
        assert_valid_emf(doc)
        assert [m["Name"] for m in doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]] == list(emf.WORKER_METRICS)
    by_sync = {d["Sync"]: d for d in docs}
    assert by_sync["articles"]["OutboxLagSeconds"] == 0.0  # nothing pending: no lag (not missing data)
    assert by_sync["products"]["OutboxLagSeconds"] == 61.25
    assert by_sync["products"]["FailedRows"] == 3
    products = by_sync["products"]
    assert (products["Pending"], products["Leased"], products["Retrying"]) == (40, 10, 2)
    assert by_sync["skewed"]["OutboxLagSeconds"] == 0.0  # clock skew never reports a negative age
    only = emf.worker_documents(rows, TS, only_sync="products")
    assert [d["Sync"] for d in only] == ["products"]


def _report(applied: bool = True, error: str | None = None, refused: str | None = None,
            **counts: tuple[int, int, int]) -> ReconcileReport:
    """counts: category -> (count, repaired, queued)."""
    report = ReconcileReport(sync="products", index="products", index_arn="arn", embedding_version="v1",
                             applied=applied, started_at=datetime(2026, 11, 22, 3, 0, tzinfo=UTC),
                             finished_at=datetime(2026, 11, 22, 3, 5, tzinfo=UTC), error=error, refused=refused)
    for name, (count, repaired, queued) in counts.items():
        report.categories[name] = CategoryResult(count=count, repaired=repaired, queued=queued)
    return report


def test_reconcile_drift_counts_found_orphans_missing_stale_less_queued() -> None:
    report = _report(orphaned=(4, 4, 0), missing=(5, 5, 2), stale=(3, 1, 1), state_drift=(7, 7, 0))
    # orphans 4 + missing (5 - 2 queued) + stale (3 - 1 queued); state_drift is bookkeeping, not drift
    assert emf.reconcile_drift(report) == 4 + 3 + 2
    doc = emf.reconcile_document(report, TS)
    assert doc is not None
    assert_valid_emf(doc)
    assert doc["ReconcileDrift"] == 9
    assert doc["_aws"]["CloudWatchMetrics"][0]["Metrics"] == [{"Name": "ReconcileDrift", "Unit": "Count"},
                                                              {"Name": "ReconcileFailed", "Unit": "Count"}]
    assert doc["ReconcileFailed"] == 0
    assert (doc["Orphaned"], doc["Missing"], doc["Stale"], doc["StateDrift"], doc["Queued"]) == (4, 5, 3, 7, 3)
    assert doc["Applied"] is True
    assert doc["Remaining"] == 2
    # repaired or not, found drift is reported: a dry run of the same state gives the same value
    dry = _report(applied=False, orphaned=(4, 0, 0), missing=(5, 0, 2), stale=(3, 0, 1))
    assert emf.reconcile_drift(dry) == 9


def test_reconcile_clean_refused_and_failed_runs() -> None:
    clean = emf.reconcile_document(_report(), TS)
    assert clean is not None
    assert clean["ReconcileDrift"] == 0
    refused = emf.reconcile_document(_report(refused="too many", orphaned=(900, 0, 0)), TS)
    assert refused is not None
    assert refused["ReconcileDrift"] == 900
    assert refused["Refused"] is True
    failed = emf.reconcile_document(_report(error="ReconcileError: boom", orphaned=(1, 0, 0)), TS)
    assert_valid_emf(failed)
    assert failed["ReconcileFailed"] == 1
    assert "ReconcileDrift" not in failed  # unknown, not 0
    assert failed["Error"] == "ReconcileError: boom"
    only_queued = _report(missing=(6, 6, 6))  # a backlog the worker has not reached yet is lag, not drift
    assert emf.reconcile_drift(only_queued) == 0


def test_reconcile_documents_use_the_run_end_as_timestamp() -> None:
    ok = _report(orphaned=(1, 1, 0))
    failed = _report(error="x")
    unfinished = _report()
    unfinished.finished_at = None
    docs = emf.reconcile_documents([ok, failed, unfinished], now_ms=TS)
    assert [d["ReconcileFailed"] for d in docs] == [0, 1, 0]
    assert docs[0]["_aws"]["Timestamp"] == int(datetime(2026, 11, 22, 3, 5, tzinfo=UTC).timestamp() * 1000)
    assert docs[2]["_aws"]["Timestamp"] == TS


def test_a_run_that_failed_before_knowing_its_syncs_reports_all() -> None:
    doc = emf.failed_document(emf.ALL_SYNCS, "DatabaseError: could not connect", TS)
    assert_valid_emf(doc)
    assert (doc["Sync"], doc["ReconcileFailed"]) == ("*", 1)


@pytest.mark.parametrize(
    ("mode", "interval", "environ", "expected"),
    [
        ("auto", 60, {}, False),  # local runs stay quiet
        ("auto", 60, {"ECS_CONTAINER_METADATA_URI_V4": "http://169.254.170.2/v4/abc"}, True),
        ("auto", 60, {"ECS_CONTAINER_METADATA_URI_V4": ""}, False),
        ("on", 60, {}, True),
        ("off", 60, {"ECS_CONTAINER_METADATA_URI_V4": "http://169.254.170.2/v4/abc"}, False),
        ("on", 0, {}, False),
        ("auto", 0, {"ECS_CONTAINER_METADATA_URI_V4": "http://169.254.170.2/v4/abc"}, False),
    ],
)
def test_enabled(mode: str, interval: float, environ: dict[str, str], expected: bool) -> None:
    assert emf.enabled(mode, interval, environ) is expected


def test_enabled_refuses_unknown_mode() -> None:
    with pytest.raises(ValueError, match="auto, on, off"):
        emf.enabled("yes", 60, {})


def test_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from sync.config import load_settings
    from sync.errors import ConfigError

    settings = load_settings()
    assert (settings.emf, settings.emf_interval_seconds) == ("auto", 60.0)
    monkeypatch.setenv("S3VL_EMF", "OFF")
    monkeypatch.setenv("S3VL_EMF_INTERVAL_SECONDS", "0")
    settings = load_settings()
    assert (settings.emf, settings.emf_interval_seconds) == ("off", 0.0)
    monkeypatch.setenv("S3VL_EMF_INTERVAL_SECONDS", "0.5")
    with pytest.raises(ConfigError, match=r"S3VL_EMF_INTERVAL_SECONDS='0.5': must be 0 \(off\) or at least 1"):
        load_settings()
    monkeypatch.setenv("S3VL_EMF_INTERVAL_SECONDS", "30")
    monkeypatch.setenv("S3VL_EMF", "sometimes")
    with pytest.raises(ConfigError, match="S3VL_EMF='sometimes'"):
        load_settings()
