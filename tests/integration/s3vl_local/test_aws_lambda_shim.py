"""The local aws_lambda / aws_commons stand-ins (local/s3vl_local/sql/): Aurora's signatures, behaviour and
error texts, over the local endpoint's Lambda Invoke API."""

from __future__ import annotations

import base64
import json
import socket
import time
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from s3vl_local.processes import free_port
from tests.support.endpoint import EndpointHandle
from tests.support.pg import TestCluster
from tests.support.queryenv import ENDPOINT_GUC, register_function

ARN_FMT = "arn:aws:lambda:us-west-2:000000000000:function:{}"


@pytest.fixture(scope="module")
def fns(endpoint: EndpointHandle) -> dict[str, str]:
    suffix = uuid.uuid4().hex[:6]
    names = {f: f"shim-{f.replace('_', '-')}-{suffix}" for f in ("echo", "crash", "sleep")}
    for function, name in names.items():
        register_function(endpoint, name, function)
    return names


@pytest.fixture(scope="module")
def shim_url(pg_cluster: TestCluster, endpoint: EndpointHandle) -> Iterator[str]:
    url = pg_cluster.create_database(installed=True, settings={ENDPOINT_GUC: endpoint.url})
    yield url
    pg_cluster.drop_database(url)


@pytest.fixture
def conn(shim_url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(shim_url, autocommit=True) as c:
        yield c


def failure(conn: psycopg.Connection[Any], sql: str, params: Any = None) -> psycopg.Error:
    with pytest.raises(psycopg.Error) as info:
        conn.execute(sql, params)
    return info.value


def test_create_lambda_function_arn(conn: psycopg.Connection[Any]) -> None:
    row = conn.execute("SELECT (a).function_name, (a).region, pg_typeof(a)::text FROM "
                       "(SELECT aws_commons.create_lambda_function_arn('my-function', 'us-west-2') AS a) s").fetchone()
    assert row == ("my-function", "us-west-2", "aws_commons._lambda_function_arn_1")
    assert conn.execute("SELECT (aws_commons.create_lambda_function_arn('f')).region").fetchone() == (None,)


def test_the_signatures_are_auroras(conn: psycopg.Connection[Any]) -> None:
    rows = conn.execute(
        "SELECT pg_get_function_arguments(p.oid) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
        "WHERE n.nspname = 'aws_lambda' AND p.proname = 'invoke' ORDER BY 1").fetchall()
    assert sorted(r[0] for r in rows) == sorted([
        "function_name text, payload json, region text DEFAULT NULL::text, invocation_type text DEFAULT "
        "'RequestResponse'::text, log_type text DEFAULT 'None'::text, context json DEFAULT NULL::json, qualifier "
        "character varying DEFAULT NULL::character varying, OUT status_code integer, OUT payload json, OUT "
        "executed_version text, OUT log_result text",
        "function_name aws_commons._lambda_function_arn_1, payload json, invocation_type text DEFAULT "
        "'RequestResponse'::text, log_type text DEFAULT 'None'::text, context json DEFAULT NULL::json, qualifier "
        "character varying DEFAULT NULL::character varying, OUT status_code integer, OUT payload json, OUT "
        "executed_version text, OUT log_result text",
        "function_name text, payload jsonb, region text DEFAULT NULL::text, invocation_type text DEFAULT "
        "'RequestResponse'::text, log_type text DEFAULT 'None'::text, context jsonb DEFAULT NULL::jsonb, qualifier "
        "character varying DEFAULT NULL::character varying, OUT status_code integer, OUT payload jsonb, OUT "
        "executed_version text, OUT log_result text",
        "function_name aws_commons._lambda_function_arn_1, payload jsonb, invocation_type text DEFAULT "
        "'RequestResponse'::text, log_type text DEFAULT 'None'::text, context jsonb DEFAULT NULL::jsonb, qualifier "
        "character varying DEFAULT NULL::character varying, OUT status_code integer, OUT payload jsonb, OUT "
        "executed_version text, OUT log_result text",
    ])


@pytest.mark.parametrize(
    ("call", "payload_type"),
    [
        ("aws_lambda.invoke(%(name)s, '{\"body\": \"Hello from Postgres!\"}'::json)", "json"),
        ("aws_lambda.invoke(%(arn)s, '{\"body\": \"Hello from Postgres!\"}'::jsonb, 'us-west-2')", "jsonb"),
        ("aws_lambda.invoke(aws_commons.create_lambda_function_arn(%(name)s, 'us-west-2'), "
         "'{\"body\": \"Hello from Postgres!\"}'::json)", "json"),
        ("aws_lambda.invoke(aws_commons.create_lambda_function_arn(%(arn)s), "
         "'{\"body\": \"Hello from Postgres!\"}'::jsonb, 'RequestResponse')", "jsonb"),
    ],
)
def test_the_four_overloads(conn: psycopg.Connection[Any], fns: dict[str, str], call: str, payload_type: str) -> None:
    name = fns["echo"]
    row = conn.execute(f"SELECT status_code, payload, pg_typeof(payload)::text, executed_version, log_result "
                       f"FROM {call}", {"name": name, "arn": ARN_FMT.format(name)}).fetchone()
    assert row is not None
    status, payload, typ, version, log = row
    assert status == 200
    assert payload["event"] == {"body": "Hello from Postgres!"}
    assert typ == payload_type
    assert version == "$LATEST"
    assert log is None


def test_event_and_dry_run(conn: psycopg.Connection[Any], fns: dict[str, str]) -> None:
    name = fns["echo"]
    assert conn.execute("SELECT status_code, payload FROM aws_lambda.invoke(%s, '{}'::json, NULL, 'Event')",
                        (name,)).fetchone() == (202, None)
    assert conn.execute("SELECT status_code, payload FROM aws_lambda.invoke(%s, '{}'::json, NULL, 'DryRun')",
                        (name,)).fetchone() == (204, None)


def test_tail_log_and_client_context(conn: psycopg.Connection[Any], fns: dict[str, str]) -> None:
    row = conn.execute(
        "SELECT payload, convert_from(decode(log_result, 'base64'), 'utf-8') FROM aws_lambda.invoke("
        "%s, '{\"a\": 1}'::jsonb, NULL, 'RequestResponse', 'Tail', '{\"custom\": {\"tenant\": \"t1\"}}'::jsonb)",
        (fns["echo"],)).fetchone()
    assert row is not None
    assert "echo called" in row[1]
    assert "t1" in (row[0]["client_context"] or "")


def test_qualifier(conn: psycopg.Connection[Any], fns: dict[str, str]) -> None:
    row = conn.execute("SELECT status_code FROM aws_lambda.invoke(%s, '{}'::json, NULL, 'RequestResponse', 'None', "
                       "NULL, '$LATEST')", (fns["echo"],)).fetchone()
    assert row == (200,)


def test_a_function_error_is_lambda_invocation_failed(conn: psycopg.Connection[Any], fns: dict[str, str]) -> None:
    err = failure(conn, "SELECT * FROM aws_lambda.invoke(%s, '{}'::json)", (fns["crash"],))
    assert err.diag.message_primary == "lambda invocation failed"
    assert err.diag.message_detail is not None
    assert err.diag.message_detail.startswith(f'"{fns["crash"]}" returned error "Unhandled", details: "')
    assert "fake crash" in err.diag.message_detail


def test_an_unknown_function_is_invoke_api_failed(conn: psycopg.Connection[Any]) -> None:
    err = failure(conn, "SELECT * FROM aws_lambda.invoke('no-such-function', '{}'::json)")
    assert err.diag.message_primary == "invoke API failed"
    assert err.diag.message_detail is not None
    assert err.diag.message_detail.startswith("AWS Lambda client returned 'ResourceNotFoundException")


def test_unreachable_endpoint(conn: psycopg.Connection[Any], fns: dict[str, str]) -> None:
    conn.execute("SELECT set_config('aws_lambda.endpoint_override', %s, false)", (f"127.0.0.1:{free_port()}",))
    err = failure(conn, "SELECT * FROM aws_lambda.invoke(%s, '{}'::json)", (fns["echo"],))
    assert err.diag.message_primary == "invoke API failed"
    assert err.diag.message_detail == "AWS Lambda client returned 'Unable to connect to endpoint'."


def test_no_endpoint_configured(pg_cluster: TestCluster) -> None:
    url = pg_cluster.create_database(installed=True)
    try:
        with psycopg.connect(url, autocommit=True) as c:
            err = failure(c, "SELECT * FROM aws_lambda.invoke('s3vl-query', '{}'::json)")
        assert err.diag.message_primary == "invoke API failed"
        assert "endpoint_override" in (err.diag.message_hint or "")
    finally:
        pg_cluster.drop_database(url)


def test_request_timeout_ms_is_honoured(conn: psycopg.Connection[Any], fns: dict[str, str]) -> None:
    conn.execute("SET aws_lambda.request_timeout_ms = 300")
    started = time.monotonic()
    err = failure(conn, "SELECT * FROM aws_lambda.invoke(%s, '{\"seconds\": 3}'::json)", (fns["sleep"],))
    elapsed = time.monotonic() - started
    assert err.diag.message_primary == "invoke API failed"
    assert err.diag.message_detail == "AWS Lambda client returned 'Request timed out after 300 ms'."
    assert elapsed < 2.0
    conn.execute("SET aws_lambda.request_timeout_ms = 5000")
    assert conn.execute("SELECT status_code FROM aws_lambda.invoke(%s, '{\"seconds\": 0.2}'::json)",
                        (fns["sleep"],)).fetchone() == (200,)


def test_connect_timeout_ms_is_honoured(conn: psycopg.Connection[Any], fns: dict[str, str]) -> None:
    # A listener whose accept queue is full: the kernel drops further SYNs, so connect() hangs.
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    fillers = []
    for _ in range(3):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        fillers.append(s)
    time.sleep(0.1)
    try:
        conn.execute("SELECT set_config('aws_lambda.endpoint_override', %s, false)", (f"http://127.0.0.1:{port}",))
        conn.execute("SET aws_lambda.connect_timeout_ms = 250")
        started = time.monotonic()
        err = failure(conn, "SELECT * FROM aws_lambda.invoke(%s, '{}'::json)", (fns["echo"],))
        elapsed = time.monotonic() - started
    finally:
        for s in fillers:
            s.close()
        server.close()
    assert err.diag.message_primary == "invoke API failed"
    assert err.diag.message_detail in {"AWS Lambda client returned 'Connection timed out after 250 ms'.",
                                       "AWS Lambda client returned 'Request timed out after 3000 ms'."}
    assert elapsed < 3.5


@pytest.mark.parametrize(
    ("sql", "needle"),
    [
        ("SELECT * FROM aws_lambda.invoke('f', '{}'::json, NULL, 'requestresponse')", "invalid invocation type"),
        ("SELECT * FROM aws_lambda.invoke('f', '{}'::json, NULL, 'RequestResponse', 'tail')", "invalid log type"),
        ("SELECT * FROM aws_lambda.invoke('arn:aws:lambda:us-west-2:000000000000:function:f', '{}'::json, "
         "'eu-west-1')", "does not match the region"),
    ],
)
def test_invalid_parameters(conn: psycopg.Connection[Any], sql: str, needle: str) -> None:
    err = failure(conn, sql)
    assert err.diag.message_primary == "invoke API failed"
    assert needle in (err.diag.message_detail or "")


def test_timeout_settings_are_range_checked(conn: psycopg.Connection[Any], fns: dict[str, str]) -> None:
    conn.execute("SET aws_lambda.request_timeout_ms = 0")
    err = failure(conn, "SELECT * FROM aws_lambda.invoke(%s, '{}'::json)", (fns["echo"],))
    assert "outside the valid range" in err.diag.message_primary


def test_payload_is_sent_as_json(conn: psycopg.Connection[Any], fns: dict[str, str]) -> None:
    doc = {"text": "naïve ✓ 'quoted' \"double\"", "n": [1, 2.5, None], "nested": {"deep": True}}
    row = conn.execute("SELECT payload FROM aws_lambda.invoke(%s, %s::jsonb)",
                       (fns["echo"], json.dumps(doc))).fetchone()
    assert row is not None
    assert row[0]["event"] == doc


def test_log_result_is_base64(conn: psycopg.Connection[Any], fns: dict[str, str]) -> None:
    row = conn.execute("SELECT log_result FROM aws_lambda.invoke(%s, '{}'::json, NULL, 'RequestResponse', 'Tail')",
                       (fns["echo"],)).fetchone()
    assert row is not None
    assert "echo called" in base64.b64decode(row[0]).decode()
