# ruff: noqa: E501 - the walkthrough SQL is kept verbatim
"""The published walkthrough's SQL, verbatim through psql, against the local stack; then its results.

``s3vl example walkthrough`` loads the data (test-index-5d, vec_001..vec_050, s3vl_demo_products);
the SQL runs unchanged with psql variables, exactly as a user types it (issue 5).
"""

from __future__ import annotations

import math

import pytest

from s3vl_local.examples import walkthrough
from tests.support.endpoint import LAMBDA_ARN
from tests.support.queryenv import Walk, ready_fixture, walk_fixture  # noqa: F401 - fixtures

# Issue 5's walkthrough, character for character.
WALKTHROUGH_SQL = """\
SELECT s3vl.configure(:'S3VL_LAMBDA_FUNCTION_ARN', 'us-west-2');
SELECT * FROM s3vl.validate_config();          -- a row: is_valid, lambda_arn, aws_region, error_message, response_time_ms
SELECT s3vl.register_index('test-index-5d', :'S3VL_S3_INDEX_ARN', 'Test 5-dimensional vectors for demonstration');
SELECT * FROM s3vl.query_vectors(index_name => 'test-index-5d',
    query_vector => ARRAY[0.23, -0.41, 0.88, 0.0, 0.03], top_k => 5, return_metadata => TRUE);
SELECT * FROM s3vl.get_vectors(index_name => 'test-index-5d', vector_ids => ARRAY['vec_001', 'vec_002', 'vec_048']);
SELECT vector_id, similarity_score, metadata FROM s3vl.query_vectors(
    query_vector => ARRAY[0.1, 0.2, 0.3, 0.4, 0.5], index_name => 'test-index-5d', top_k => 5,
    return_metadata => TRUE, metadata_filter => '{"category": "test"}'::jsonb);
WITH similar_products AS (
    SELECT vector_id, similarity_score FROM s3vl.query_vectors(index_name => 'test-index-5d',
        query_vector => ARRAY[-0.392024, 0.229378, 0.582031, 0.382919, -0.555263], top_k => 10))
SELECT p.product_name, sp.similarity_score FROM similar_products sp
JOIN s3vl_demo_products p ON p.vector_key = sp.vector_id
WHERE p.in_stock AND p.price < 500 ORDER BY sp.similarity_score DESC LIMIT 5;
"""

# DESIGN.md's variant (list_vectors, filter on the first query).
DESIGN_SQL = """\
SELECT * FROM s3vl.query_vectors(index_name => 'test-index-5d',
    query_vector => ARRAY[0.23, -0.41, 0.88, 0.0, 0.03], top_k => 5, return_metadata => TRUE,
    metadata_filter => '{"category": "test"}'::jsonb);      -- returns vector_id, similarity_score, distance, metadata
SELECT * FROM s3vl.get_vectors(index_name => 'test-index-5d', vector_ids => ARRAY['vec_001', 'vec_002']);
SELECT * FROM s3vl.list_vectors(index_name => 'test-index-5d', max_results => 100, next_token => NULL);
"""


def run_psql(w: Walk, script: str) -> str:
    result = w.psql(script, ("S3VL_LAMBDA_FUNCTION_ARN", LAMBDA_ARN), ("S3VL_S3_INDEX_ARN", w.index_arn))
    assert result.returncode == 0, result.stderr
    assert "ERROR" not in result.stderr, result.stderr
    return result.stdout


def test_walkthrough_runs_verbatim_through_psql(walk: Walk) -> None:
    out = run_psql(walk, WALKTHROUGH_SQL)
    # configure -> t; validate_config -> is_valid t with the ARN; register -> t
    assert " configure \n-----------\n t\n" in out
    assert f" t        | {LAMBDA_ARN} | us-west-2" in out
    assert " register_index \n----------------\n t\n" in out
    # the products join: at most 5 rows, products from the table
    assert "product_name" in out
    assert "(5 rows)" in out
    # running it again (re-configure, re-register) works: the walkthrough is re-runnable
    run_psql(walk, WALKTHROUGH_SQL)
    run_psql(walk, DESIGN_SQL)


def test_first_query_finds_vec_001(ready: Walk) -> None:
    with ready.connect() as conn:
        rows = conn.execute(
            "SELECT * FROM s3vl.query_vectors(index_name => 'test-index-5d', "
            "query_vector => ARRAY[0.23, -0.41, 0.88, 0.0, 0.03], top_k => 5, return_metadata => TRUE)"
        ).fetchall()
        cols = [c.name for c in conn.execute(
            "SELECT * FROM s3vl.query_vectors(ARRAY[0.1,0.2,0.3,0.4,0.5], 'test-index-5d', top_k => 1)"
        ).description or []]
    assert cols == ["vector_id", "similarity_score", "distance", "metadata"]
    assert len(rows) == 5
    assert rows[0][0] == "vec_001"  # [0.23, -0.41, 0.88, 0.0, 0.03] is vec_001 rounded
    assert rows[0][1] > 0.999
    scores = [r[1] for r in rows]
    assert scores == sorted(scores, reverse=True)
    for _key, score, distance, metadata in rows:
        assert score == pytest.approx(1 - distance, abs=1e-9)
        assert set(metadata) >= {"category", "id"}


@pytest.mark.parametrize("key", ["vec_003", "vec_017", "vec_041"])
def test_a_stored_vector_queried_by_its_own_values_comes_first_with_score_one(ready: Walk, key: str) -> None:
    values = next(v for k, v, _ in walkthrough.VECTORS if k == key)
    with ready.connect() as conn:
        rows = conn.execute(
            "SELECT vector_id, similarity_score FROM s3vl.query_vectors(%s::float8[], 'test-index-5d', top_k => 3)",
            (list(values),),
        ).fetchall()
    assert rows[0][0] == key
    assert rows[0][1] == pytest.approx(1.0, abs=1e-6)  # float32 precision


def test_the_identical_units_all_score_one(ready: Walk) -> None:
    values = walkthrough.VECTORS[47][1]
    with ready.connect() as conn:
        rows = conn.execute(
            "SELECT vector_id, similarity_score, metadata->>'category' FROM "
            "s3vl.query_vectors(%s::float8[], 'test-index-5d', top_k => 4)", (list(values),)
        ).fetchall()
    assert {r[0] for r in rows[:3]} == {"vec_048", "vec_049", "vec_050"}
    assert all(r[1] == pytest.approx(1.0, abs=1e-6) and r[2] == "identical" for r in rows[:3])
    assert rows[3][1] < 0.999


def test_get_vectors_returns_input_order_with_embeddings(ready: Walk) -> None:
    with ready.connect() as conn:
        rows = conn.execute(
            "SELECT * FROM s3vl.get_vectors(index_name => 'test-index-5d', "
            "vector_ids => ARRAY['vec_048', 'vec_001', 'nope', 'vec_002'])"
        ).fetchall()
    assert [r[0] for r in rows] == ["vec_048", "vec_001", "nope", "vec_002"]
    assert [r[3] for r in rows] == [True, True, False, True]
    expected = dict((k, v) for k, v, _ in walkthrough.VECTORS)
    for key, embedding, metadata, found in rows:
        if found:
            assert len(embedding) == 5
            assert all(math.isclose(a, b, rel_tol=1e-6) for a, b in zip(embedding, expected[key], strict=True))
            assert metadata["category"] in {"example", "demo", "sample", "test", "identical"}
        else:
            assert embedding is None
            assert metadata is None


def test_metadata_filter_keeps_only_that_category(ready: Walk) -> None:
    with ready.connect() as conn:
        rows = conn.execute(
            "SELECT vector_id, similarity_score, metadata FROM s3vl.query_vectors("
            "query_vector => ARRAY[0.1, 0.2, 0.3, 0.4, 0.5], index_name => 'test-index-5d', top_k => 5, "
            "return_metadata => TRUE, metadata_filter => '{\"category\": \"test\"}'::jsonb)"
        ).fetchall()
    assert len(rows) == 5
    assert all(r[2]["category"] == "test" for r in rows)


def test_join_with_products_filters_and_orders(ready: Walk) -> None:
    with ready.connect() as conn:
        rows = conn.execute(
            "WITH similar_products AS (SELECT vector_id, similarity_score FROM s3vl.query_vectors("
            "index_name => 'test-index-5d', query_vector => ARRAY[-0.392024, 0.229378, 0.582031, 0.382919, "
            "-0.555263], top_k => 10)) SELECT p.product_name, sp.similarity_score, p.price, p.in_stock, "
            "p.vector_key FROM similar_products sp JOIN s3vl_demo_products p ON p.vector_key = sp.vector_id "
            "WHERE p.in_stock AND p.price < 500 ORDER BY sp.similarity_score DESC LIMIT 5"
        ).fetchall()
    assert len(rows) == 5
    assert rows[0][4] == "vec_003"  # the query is vec_003's own vector, and vec_003 is in stock under 500
    assert all(r[3] and r[2] < 500 for r in rows)


def test_the_example_is_rerunnable(walk: Walk) -> None:
    again = walkthrough.run(walk.url, "us-west-2", bucket=walk.bucket, client=walk.endpoint.client("s3vectors"))
    assert again.index_arn == walk.index_arn
    assert again.lambda_arn == LAMBDA_ARN
    with walk.connect() as conn:
        assert conn.execute("SELECT count(*) FROM s3vl_demo_products").fetchone() == (50,)
    listed = walk.endpoint.client("s3vectors").list_vectors(indexArn=walk.index_arn, maxResults=100)
    assert len(listed["vectors"]) == 50
    assert again.export_lines() == (f"export S3VL_S3_INDEX_ARN={walk.index_arn}\n"
                                    f"export S3VL_LAMBDA_FUNCTION_ARN={LAMBDA_ARN}")
