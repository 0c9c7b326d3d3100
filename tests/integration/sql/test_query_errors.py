"""Every error class of the SQL query interface: its SQLSTATE, message and hint, from the layer
where it really happens (SQL checks, the query Lambda, S3 Vectors, the Lambda API, the network)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

import s3vl_query.errors as lambda_errors
from s3vl_local.processes import free_port
from tests.support.endpoint import LAMBDA_ARN
from tests.support.pg import TestCluster
from tests.support.queryenv import (
    Walk,
    query_handler_file,
    ready_fixture,  # noqa: F401 - fixture
    register_function,
    walk_fixture,  # noqa: F401 - fixture
)

VEC = "ARRAY[0.1, 0.2, 0.3, 0.4, 0.5]"


def classes(conn: psycopg.Connection[Any]) -> dict[str, tuple[str, bool, str]]:
    return {r[0]: (r[1], r[2], r[3]) for r in conn.execute("SELECT * FROM s3vl.error_classes()").fetchall()}


def expect(conn: psycopg.Connection[Any], sql: str, code: str, params: Any = None) -> psycopg.Error:
    """Run ``sql``; it must fail with error class ``code``: its SQLSTATE, hint and class detail."""
    sqlstate, _retryable, hint = classes(conn)[code]
    with pytest.raises(psycopg.Error) as info:
        conn.execute(sql, params)
    err = info.value
    assert err.sqlstate == sqlstate, (code, err.sqlstate, str(err))
    assert err.diag.message_hint == hint
    assert err.diag.message_detail is not None
    assert f"class {code}" in err.diag.message_detail
    return err


@pytest.fixture
def conn(ready: Walk) -> Iterator[psycopg.Connection[Any]]:
    with ready.connect() as c:
        yield c
        c.execute("SELECT s3vl.configure(%s, 'us-west-2', 30)", (LAMBDA_ARN,))  # back to the real Lambda


def test_error_classes_are_distinct_and_cover_every_lambda_code(ready: Walk) -> None:
    with ready.connect() as c:
        table = classes(c)
    states = [s for s, _, _ in table.values()]
    assert len(set(states)) == len(states)
    assert all(s.startswith("S3V") and len(s) == 5 for s in states)
    assert set(lambda_errors.ERROR_CODES) <= set(table)
    assert all(hint for _, _, hint in table.values())


@pytest.mark.parametrize("code", lambda_errors.ERROR_CODES)
def test_each_lambda_error_code_becomes_its_sqlstate(ready: Walk, conn: psycopg.Connection[Any], code: str) -> None:
    arn = register_function(ready.endpoint, f"fake-{code.replace('_', '-')}", "answer_error",
                            environment={"S3VL_FAKE_CODE": code})
    conn.execute("SELECT s3vl.configure(%s, 'us-west-2')", (arn,))
    err = expect(conn, f"SELECT * FROM s3vl.query_vectors({VEC}, %s)", code, (ready.index_arn,))
    assert err.diag.message_primary == f"fake {code}"
    assert "request id" in (err.diag.message_detail or "")


# --- from SQL and from the real query Lambda / S3 Vectors ------------------------------------------------


def test_not_configured(pg_cluster: TestCluster, endpoint: Any) -> None:
    url = pg_cluster.create_database(installed=True, settings={"aws_lambda.endpoint_url": endpoint.url})
    try:
        with psycopg.connect(url, autocommit=True) as c:
            expect(c, f"SELECT * FROM s3vl.query_vectors({VEC}, 'test-index-5d')", "not_configured")
            row = c.execute("SELECT * FROM s3vl.validate_config()").fetchone()
            assert row is not None
            assert row[0] is False
            assert "configure" in row[3]
    finally:
        pg_cluster.drop_database(url)


def test_index_not_registered(conn: psycopg.Connection[Any]) -> None:
    err = expect(conn, f"SELECT * FROM s3vl.query_vectors({VEC}, 'no-such-name')", "index_not_registered")
    assert "'no-such-name'" in err.diag.message_primary


def test_index_not_found_in_s3_vectors(ready: Walk, conn: psycopg.Connection[Any]) -> None:
    missing = ready.index_arn.replace("/index/test-index-5d", "/index/missing-index")
    expect(conn, "SELECT s3vl.register_index('missing', %s)", "index_not_found", (missing,))
    expect(conn, f"SELECT * FROM s3vl.query_vectors({VEC}, index_arn => %s)", "index_not_found", (missing,))


def test_invalid_index_arn(conn: psycopg.Connection[Any]) -> None:
    expect(conn, "SELECT s3vl.register_index('bad', 'arn:aws:s3:::my-bucket')", "invalid_index_arn")


@pytest.mark.parametrize(
    "sql",
    [
        f"SELECT * FROM s3vl.query_vectors({VEC}, 'test-index-5d', top_k => 0)",
        f"SELECT * FROM s3vl.query_vectors({VEC}, 'test-index-5d', top_k => 10001)",
        "SELECT * FROM s3vl.query_vectors(ARRAY[0.1, 'NaN', 0.3, 0.4, 0.5]::float8[], 'test-index-5d')",
        "SELECT * FROM s3vl.query_vectors(ARRAY[0.1, 'Infinity', 0.3, 0.4, 0.5]::float8[], 'test-index-5d')",
        "SELECT * FROM s3vl.query_vectors(ARRAY[0.1, NULL, 0.3, 0.4, 0.5]::float8[], 'test-index-5d')",
        "SELECT * FROM s3vl.query_vectors(ARRAY[]::float8[], 'test-index-5d')",
        f"SELECT * FROM s3vl.query_vectors({VEC})",
        f"SELECT * FROM s3vl.query_vectors({VEC}, 'test-index-5d', source_ids => ARRAY[]::text[])",
        f"SELECT * FROM s3vl.query_vectors({VEC}, 'test-index-5d', source_ids => ARRAY['1'], prefilter => 'x')",
        "SELECT * FROM s3vl.get_vectors(ARRAY[]::text[], 'test-index-5d')",
        "SELECT * FROM s3vl.list_vectors('test-index-5d', max_results => 0)",
        "SELECT s3vl.configure('not-an-arn', 'us-west-2')",
        f"SELECT s3vl.configure('{LAMBDA_ARN}', 'eu-west-1')",
        f"SELECT s3vl.configure('{LAMBDA_ARN}', 'us-west-2', 0)",
        "SELECT s3vl.register_index('1bad', 'arn:aws:s3vectors:us-west-2:000000000000:bucket/b-1/index/i-1')",
        # two-dimensional arrays (PostgreSQL's array functions would say 0A000, not what is wrong)
        "SELECT * FROM s3vl.query_vectors(ARRAY[[0.1, 0.2], [0.3, 0.4]]::float8[], 'test-index-5d')",
        "SELECT * FROM s3vl.get_vectors(ARRAY[['vec_001', 'vec_002']], 'test-index-5d')",
        f"SELECT * FROM s3vl.query_vectors({VEC}, 'test-index-5d', source_ids => ARRAY[['1', '2']])",
    ],
)
def test_invalid_arguments(conn: psycopg.Connection[Any], sql: str) -> None:
    expect(conn, sql, "invalid_argument")


@pytest.mark.parametrize(
    "flt",
    ['{"category": {"$like": "t%"}}', '{"$not": [{"category": "test"}]}', '{"price": {"$in": []}}',
     '{"$and": {"category": "test"}}', '"test"',
     # refused by SQL before any call: beyond a double, too deep, a null
     '{"price": {"$lt": 1e400}}', '{"price": {"$in": [1, -1e309]}}',
     "{\"$and\": [" * 9 + '{"a": 1}' + "]}" * 9, '{"category": null}', '{"category": {"$in": ["a", null]}}'],
)
def test_invalid_filters(conn: psycopg.Connection[Any], flt: str) -> None:
    err = expect(conn, f"SELECT * FROM s3vl.query_vectors({VEC}, 'test-index-5d', metadata_filter => %s::jsonb)",
                 "invalid_filter", (flt,))
    assert "metadata_filter" in err.diag.message_primary


@pytest.mark.parametrize(("flt", "message"), [
    ('{"price": {"$lt": 1e400}}', "a number beyond a double's range"),
    ("{\"$and\": [" * 100 + '{"a": 1}' + "]}" * 100, "nested too deep: at most 8 levels"),
    ('{"category": null}', "holds a JSON null"),
])
def test_filters_s3_vectors_would_refuse_fail_at_once_in_sql(ready: Walk, conn: psycopg.Connection[Any], flt: str,
                                                             message: str) -> None:
    """No Lambda call at all (issue 11: 26 s of retries, then service_unavailable)."""
    before = ready.endpoint.admin.counters()["lambda"]["Invoke"]["requests"]
    assert before > 0  # the set-up's calls were counted: a call now would be too
    start = time.monotonic()
    err = expect(conn, f"SELECT * FROM s3vl.query_vectors({VEC}, 'test-index-5d', metadata_filter => %s::jsonb)",
                 "invalid_filter", (flt,))
    assert message in err.diag.message_primary
    assert time.monotonic() - start < 1.0
    assert ready.endpoint.admin.counters()["lambda"]["Invoke"]["requests"] == before


def test_a_request_larger_than_lambda_takes_is_an_invalid_argument(conn: psycopg.Connection[Any]) -> None:
    """Lambda answers RequestTooLargeException (413) past 6 MB; issue 11 saw lambda_unreachable."""
    ids = [f"id-{i:07d}-" + "x" * 40 for i in range(130_000)]
    err = expect(conn, f"SELECT * FROM s3vl.query_vectors({VEC}, 'test-index-5d', source_ids => %s, "
                 "prefilter => 'overfetch')", "invalid_argument", (ids,))
    assert "larger than Lambda accepts" in err.diag.message_primary


def test_dimension_mismatch_from_sql_and_from_s3_vectors(ready: Walk, conn: psycopg.Connection[Any]) -> None:
    err = expect(conn, "SELECT * FROM s3vl.query_vectors(ARRAY[0.1, 0.2, 0.3, 0.4], 'test-index-5d')",
                 "dimension_mismatch")
    assert "4 dimensions" in err.diag.message_primary
    # By an unregistered ARN the dimension is unknown to SQL: S3 Vectors refuses, same class.
    conn.execute("SELECT s3vl.unregister_index('test-index-5d')")
    try:
        expect(conn, "SELECT * FROM s3vl.query_vectors(ARRAY[0.1, 0.2, 0.3, 0.4], index_arn => %s)",
               "dimension_mismatch", (ready.index_arn,))
    finally:
        conn.execute("SELECT s3vl.register_index('test-index-5d', %s, 'Test 5-dimensional vectors')",
                     (ready.index_arn,))


def test_vector_not_found(conn: psycopg.Connection[Any]) -> None:
    expect(conn, "SELECT * FROM s3vl.similar_to('test-index-5d', 'vec_999')", "vector_not_found")


# --- from aws_lambda / the Lambda API ---------------------------------------------------------------


def test_lambda_unreachable(conn: psycopg.Connection[Any]) -> None:
    conn.execute("SELECT set_config('aws_lambda.endpoint_override', %s, false)", (f"http://127.0.0.1:{free_port()}",))
    try:
        err = expect(conn, f"SELECT * FROM s3vl.query_vectors({VEC}, 'test-index-5d')", "lambda_unreachable")
        assert "Unable to connect to endpoint" in (err.diag.message_detail or "")
        row = conn.execute("SELECT is_valid, error_message FROM s3vl.validate_config()").fetchone()
        assert row is not None
        assert row[0] is False
        assert "S3V08" in row[1]
    finally:
        conn.execute("RESET aws_lambda.endpoint_override")


def test_lambda_not_found(conn: psycopg.Connection[Any]) -> None:
    conn.execute("SELECT s3vl.configure('arn:aws:lambda:us-west-2:000000000000:function:no-such-fn', 'us-west-2')")
    err = expect(conn, f"SELECT * FROM s3vl.query_vectors({VEC}, 'test-index-5d')", "lambda_not_found")
    assert "ResourceNotFoundException" in (err.diag.message_detail or "")


@pytest.mark.parametrize("function", ["crash", "not_s3vl"])
def test_lambda_error(ready: Walk, conn: psycopg.Connection[Any], function: str) -> None:
    arn = register_function(ready.endpoint, f"fake-{function.replace('_', '-')}", function)
    conn.execute("SELECT s3vl.configure(%s, 'us-west-2')", (arn,))
    err = expect(conn, f"SELECT * FROM s3vl.query_vectors({VEC}, 'test-index-5d')", "lambda_error")
    if function == "crash":
        assert 'returned error "Unhandled"' in (err.diag.message_detail or "")
    row = conn.execute("SELECT is_valid FROM s3vl.validate_config()").fetchone()
    assert row == (False,)


def test_throttled_by_the_lambda_api(ready: Walk, conn: psycopg.Connection[Any]) -> None:
    ready.endpoint.admin.set_faults({"rules": [{"service": "lambda", "throttle_fraction": 1.0}]})
    try:
        err = expect(conn, f"SELECT * FROM s3vl.query_vectors({VEC}, 'test-index-5d')", "throttled")
        assert "TooManyRequestsException" in (err.diag.message_detail or "")
        assert "(retryable)" in (err.diag.message_detail or "")
        assert conn.execute("SELECT is_valid FROM s3vl.validate_config()").fetchone() == (False,)
    finally:
        ready.endpoint.admin.clear_faults()


def test_throttled_by_s3_vectors_past_the_lambdas_budget(ready: Walk, conn: psycopg.Connection[Any]) -> None:
    arn = register_function(ready.endpoint, "s3vl-query-short", "lambda_handler", timeout_s=3.0,
                            handler_file=query_handler_file())
    conn.execute("SELECT s3vl.configure(%s, 'us-west-2')", (arn,))
    ready.endpoint.admin.set_faults({"rules": [{"service": "s3vectors", "operation": "QueryVectors",
                                                "throttle_fraction": 1.0}]})
    try:
        err = expect(conn, f"SELECT * FROM s3vl.query_vectors({VEC}, 'test-index-5d')", "throttled")
        assert "attempts" in err.diag.message_primary
    finally:
        ready.endpoint.admin.clear_faults()


def test_timeout_of_the_lambda_call(ready: Walk, conn: psycopg.Connection[Any]) -> None:
    arn = register_function(ready.endpoint, f"fake-sleep-{uuid.uuid4().hex[:6]}", "sleep")
    conn.execute("SELECT s3vl.configure(%s, 'us-west-2', timeout_seconds => 1)", (arn,))
    err = expect(conn, f"SELECT * FROM s3vl.query_vectors({VEC}, 'test-index-5d')", "timeout")
    assert "timed out" in (err.diag.message_detail or "")
    # the per-call timeout is restored afterwards (transaction-local, then reset)
    assert conn.execute("SELECT current_setting('aws_lambda.request_timeout_ms', true)").fetchone() in {(None,), ("",),
                                                                                                       ("3000",)}


def test_register_checks_the_embedding_model(ready: Walk, conn: psycopg.Connection[Any]) -> None:
    err = expect(conn, "SELECT s3vl.register_index('test-index-5d', %s, embedding_model => 'acme.embed-v1')",
                 "invalid_argument", (ready.index_arn,))
    assert "unknown embedding model" in err.diag.message_primary
    err = expect(conn, "SELECT s3vl.register_index('test-index-5d', %s, embedding_model => "
                 "'amazon.titan-embed-text-v2:0')", "dimension_mismatch", (ready.index_arn,))
    assert "5-dimensional" in err.diag.message_primary


def test_registered_indexes_only(ready: Walk, conn: psycopg.Connection[Any]) -> None:
    conn.execute("SELECT s3vl.configure(%s, 'us-west-2', registered_indexes_only => true)", (LAMBDA_ARN,))
    other = ready.index_arn.replace("/index/test-index-5d", "/index/unregistered-one")
    err = expect(conn, f"SELECT * FROM s3vl.query_vectors({VEC}, index_arn => %s)", "index_not_registered", (other,))
    assert "registered_indexes_only" in (err.diag.message_detail or "")
    # a registered index is still reachable by name and by its ARN
    assert conn.execute(f"SELECT count(*) FROM s3vl.query_vectors({VEC}, index_arn => %s, top_k => 2)",
                        (ready.index_arn,)).fetchone() == (2,)
    assert conn.execute("SELECT registered_indexes_only FROM s3vl.get_config()").fetchone() == (True,)


def test_service_unavailable_past_the_lambdas_budget(ready: Walk, conn: psycopg.Connection[Any]) -> None:
    arn = register_function(ready.endpoint, "s3vl-query-short", "lambda_handler", timeout_s=3.0,
                            handler_file=query_handler_file())
    conn.execute("SELECT s3vl.configure(%s, 'us-west-2')", (arn,))
    ready.endpoint.admin.set_faults({"rules": [{"service": "s3vectors", "operation": "GetVectors",
                                                "unavailable_fraction": 1.0}]})
    try:
        err = expect(conn, "SELECT * FROM s3vl.get_vectors(ARRAY['vec_001'], 'test-index-5d')", "service_unavailable")
        assert "ServiceUnavailable" in err.diag.message_primary
        assert "(retryable)" in (err.diag.message_detail or "")
    finally:
        ready.endpoint.admin.clear_faults()
