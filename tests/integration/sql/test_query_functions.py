"""Every s3vl query function against the local stack: registry, paging, pre-filtering,
similar_to, query_text (vector and hybrid), roles, and the ``s3vl example walkthrough`` command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from s3vl_local.examples import walkthrough
from tests.support.endpoint import LAMBDA_ARN, EndpointHandle
from tests.support.queryenv import Walk, ready_fixture, walk_fixture  # noqa: F401 - fixtures

MODEL = "amazon.titan-embed-text-v2:0"
DOCS = [
    ("d1", "Red running shoes", "lightweight red running shoes for road racing"),
    ("d2", "Blue rain jacket", "waterproof blue jacket for hiking in the rain"),
    ("d3", "Espresso machine", "compact espresso machine with milk frother for coffee at home"),
    ("d4", "Trail shoes", "grippy trail shoes for muddy mountain running"),
    ("d5", "Cast iron pan", "heavy cast iron skillet for searing steak"),
]


def values(key: str) -> list[float]:
    return list(next(v for k, v, _ in walkthrough.VECTORS if k == key))


# --- registry -----------------------------------------------------------------------------------


def test_list_indexes_shows_what_get_index_reported(ready: Walk) -> None:
    with ready.connect() as conn:
        row = conn.execute(
            "SELECT name, index_arn, region, bucket_name, index_name, dimension, distance_metric, embedding_model, "
            "description FROM s3vl.list_indexes() WHERE name = 'test-index-5d'").fetchone()
    assert row == ("test-index-5d", ready.index_arn, "us-west-2", ready.bucket, "test-index-5d", 5, "cosine", None,
                   "Test 5-dimensional vectors")


def test_unregister_and_register_again(ready: Walk) -> None:
    s3v = ready.endpoint.client("s3vectors")
    s3v.create_index(vectorBucketName=ready.bucket, indexName="tmp-idx", dataType="float32", dimension=3,
                     distanceMetric="euclidean")
    arn = s3v.get_index(vectorBucketName=ready.bucket, indexName="tmp-idx")["index"]["indexArn"]
    with ready.connect() as conn:
        conn.execute("SELECT s3vl.register_index('tmp-name', %s)", (arn,))
        assert conn.execute("SELECT dimension, distance_metric FROM s3vl.list_indexes() WHERE name = 'tmp-name'"
                            ).fetchone() == (3, "euclidean")
        # the same ARN under a second name is refused
        with pytest.raises(psycopg.Error) as err:
            conn.execute("SELECT s3vl.register_index('other-name', %s)", (arn,))
        assert err.value.sqlstate == "S3V04"
        assert conn.execute("SELECT s3vl.unregister_index('tmp-name')").fetchone() == (True,)
        with pytest.raises(psycopg.Error) as err:
            conn.execute("SELECT s3vl.unregister_index('tmp-name')")
        assert err.value.sqlstate == "S3V02"
        assert conn.execute("SELECT count(*) FROM s3vl.list_indexes() WHERE name = 'tmp-name'").fetchone() == (0,)


def test_an_index_can_be_addressed_by_arn(ready: Walk) -> None:
    with ready.connect() as conn:
        by_arn = conn.execute("SELECT vector_id FROM s3vl.query_vectors(%s::float8[], index_arn => %s, top_k => 3)",
                              (values("vec_010"), ready.index_arn)).fetchall()
        by_arn_as_name = conn.execute("SELECT vector_id FROM s3vl.query_vectors(%s::float8[], %s, top_k => 3)",
                                      (values("vec_010"), ready.index_arn)).fetchall()
        by_name = conn.execute("SELECT vector_id FROM s3vl.query_vectors(%s::float8[], 'test-index-5d', top_k => 3)",
                               (values("vec_010"),)).fetchall()
    assert by_arn == by_name == by_arn_as_name
    assert by_name[0] == ("vec_010",)


# --- paging ---------------------------------------------------------------------------------------


def test_list_vectors_next_token_pages_through_everything(ready: Walk) -> None:
    seen: list[str] = []
    token = None
    pages = 0
    with ready.connect() as conn:
        while True:
            rows = conn.execute(
                "SELECT vector_id, vector_data, metadata, response_next_token, total_count FROM s3vl.list_vectors("
                "index_name => 'test-index-5d', max_results => 20, next_token => %s, return_data => true)",
                (token,)).fetchall()
            pages += 1
            seen += [r[0] for r in rows]
            assert all(len(r[1]) == 5 and "category" in r[2] for r in rows)
            assert all(r[4] == len(rows) for r in rows)
            token = rows[-1][3] if rows else None
            if token is None:
                break
            assert pages < 10
    assert pages == 3
    assert sorted(seen) == [f"vec_{i:03d}" for i in range(1, 51)]


def test_list_vectors_segments_split_the_index(ready: Walk) -> None:
    with ready.connect() as conn:
        keys = [r[0] for seg in range(2) for r in conn.execute(
            "SELECT vector_id FROM s3vl.list_vectors('test-index-5d', max_results => 100, segment_count => 2, "
            "segment_index => %s)", (seg,)).fetchall()]
    assert sorted(keys) == [f"vec_{i:03d}" for i in range(1, 51)]


def test_top_k_beyond_one_page_is_followed(ready: Walk) -> None:
    with ready.connect() as conn:
        rows = conn.execute("SELECT vector_id, similarity_score FROM s3vl.query_vectors(%s::float8[], "
                            "'test-index-5d', top_k => 10000)", (values("vec_001"),)).fetchall()
    assert len(rows) == 50
    assert len({r[0] for r in rows}) == 50
    assert [r[1] for r in rows] == sorted((r[1] for r in rows), reverse=True)


# --- pre-filter, similar_to -------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["filter", "overfetch", "auto"])
def test_source_ids_restrict_the_query(ready: Walk, mode: str) -> None:
    with ready.connect() as conn:
        conn.execute("CREATE TEMP TABLE picked AS SELECT id::text AS id FROM s3vl_demo_products "
                     "WHERE category IN ('test', 'identical') AND in_stock")
        wanted = {r[0] for r in conn.execute("SELECT id FROM picked").fetchall()}
        rows = conn.execute(
            "SELECT vector_id, metadata FROM s3vl.query_vectors(%s::float8[], 'test-index-5d', top_k => 3, "
            "source_ids => ARRAY(SELECT id FROM picked), prefilter => %s, overfetch_factor => 20)",
            (values("vec_001"), mode)).fetchall()
        unrestricted = conn.execute("SELECT vector_id FROM s3vl.query_vectors(%s::float8[], 'test-index-5d', "
                                    "top_k => 1)", (values("vec_001"),)).fetchone()
    assert len(rows) == 3
    assert all(r[1]["s3vl_id"] in wanted for r in rows)
    assert unrestricted == ("vec_001",)  # category example: excluded above
    assert "vec_001" not in {r[0] for r in rows}


def test_similar_to_returns_neighbours_without_itself(ready: Walk) -> None:
    with ready.connect() as conn:
        rows = conn.execute("SELECT * FROM s3vl.similar_to('test-index-5d', 'vec_048', 2)").fetchall()
        with_self = conn.execute("SELECT vector_id FROM s3vl.similar_to('test-index-5d', 'vec_048', 3, "
                                 "include_self => true)").fetchall()
    assert {r[0] for r in rows} == {"vec_049", "vec_050"}
    assert all(r[1] == pytest.approx(1.0, abs=1e-6) for r in rows)
    assert {r[0] for r in with_self} == {"vec_048", "vec_049", "vec_050"}


# --- query_text ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def docs(ready: Walk) -> tuple[Walk, str, str]:
    """Two 256-dimension indexes of DOCS embedded by the local Bedrock: plain and full-text."""
    s3v = ready.endpoint.client("s3vectors")
    bedrock = ready.endpoint.client("bedrock-runtime")
    vectors = []
    for key, title, body in DOCS:
        resp = bedrock.invoke_model(modelId=MODEL, body=json.dumps({"inputText": f"{title}. {body}",
                                                                      "dimensions": 256}))
        emb = json.loads(resp["body"].read())["embedding"]
        vectors.append({"key": key, "data": {"float32": emb}, "metadata": {"title": title, "s3vl_id": key}})
    arns = []
    for name, conf in (("docs-plain", None),
                       ("docs-text", {"textSearchConfigurations": [{"metadataKey": "title", "language": "en"}]})):
        kwargs: dict[str, Any] = {"metadataConfiguration": conf} if conf else {}
        s3v.create_index(vectorBucketName=ready.bucket, indexName=name, dataType="float32", dimension=256,
                         distanceMetric="cosine", **kwargs)
        arn = s3v.get_index(vectorBucketName=ready.bucket, indexName=name)["index"]["indexArn"]
        s3v.put_vectors(indexArn=arn, vectors=vectors)
        arns.append(arn)
    with ready.connect() as conn:
        conn.execute("SELECT s3vl.register_index('docs-plain', %s, embedding_model => %s)", (arns[0], MODEL))
        conn.execute("SELECT s3vl.register_index('docs-text', %s, 'full text', %s)", (arns[1], MODEL))
    return ready, arns[0], arns[1]


def test_query_text_embeds_with_the_registered_model(docs: tuple[Walk, str, str]) -> None:
    w, _, _ = docs
    with w.connect() as conn:
        rows = conn.execute("SELECT vector_id, similarity_score, hybrid_score FROM s3vl.query_text("
                            "'docs-plain', 'red running shoes for racing', top_k => 3)").fetchall()
        model = conn.execute("SELECT embedding_model, searchable_keys FROM s3vl.list_indexes() "
                             "WHERE name = 'docs-plain'").fetchone()
    assert model == (MODEL, [])
    assert rows[0][0] == "d1"
    assert rows[0][2] is None  # vector-only: no fused score


def test_query_text_is_hybrid_where_the_index_has_searchable_keys(docs: tuple[Walk, str, str]) -> None:
    w, _, _ = docs
    with w.connect() as conn:
        keys = conn.execute("SELECT searchable_keys FROM s3vl.list_indexes() WHERE name = 'docs-text'").fetchone()
        rows = conn.execute("SELECT vector_id, hybrid_score FROM s3vl.query_text('docs-text', 'espresso', "
                            "top_k => 3)").fetchall()
        vector_only = conn.execute("SELECT vector_id, hybrid_score FROM s3vl.query_text('docs-text', 'espresso', "
                                   "top_k => 3, hybrid => false)").fetchall()
        filtered = conn.execute("SELECT vector_id FROM s3vl.query_text('docs-text', 'shoes', top_k => 5, "
                                "metadata_filter => '{\"s3vl_id\": {\"$in\": [\"d4\"]}}')").fetchall()
    assert keys == (["title"],)
    assert rows[0][0] == "d3"
    assert all(r[1] is not None for r in rows)  # RRF scores from the hybrid ranking
    assert all(r[1] is None for r in vector_only)
    assert filtered == [("d4",)]


def test_query_text_needs_a_registered_model(ready: Walk) -> None:
    with ready.connect() as conn, pytest.raises(psycopg.Error) as err:
        conn.execute("SELECT * FROM s3vl.query_text('test-index-5d', 'anything')")
    assert err.value.sqlstate == "S3V19"
    assert err.value.diag.message_hint is not None
    assert "embedding_model" in err.value.diag.message_hint


# --- roles ----------------------------------------------------------------------------------------


@pytest.fixture
def login_roles(ready: Walk) -> Iterator[tuple[str, str]]:
    suffix = uuid.uuid4().hex[:8]
    reader, admin = f"reader_{suffix}", f"admin_{suffix}"
    with ready.connect() as conn:
        conn.execute(f"CREATE ROLE {reader} LOGIN IN ROLE s3vl_reader")
        conn.execute(f"CREATE ROLE {admin} LOGIN IN ROLE s3vl_admin")
    yield reader, admin
    with ready.connect() as conn:
        for role in (reader, admin):
            conn.execute(f"DROP OWNED BY {role}")
            conn.execute(f"DROP ROLE {role}")


def as_role(w: Walk, role: str) -> psycopg.Connection[tuple[Any, ...]]:
    return psycopg.connect(w.url.replace("://postgres@", f"://{role}@"), autocommit=True)


def test_a_reader_can_query_but_not_configure(ready: Walk, login_roles: tuple[str, str]) -> None:
    reader, _ = login_roles
    with as_role(ready, reader) as conn:
        rows = conn.execute("SELECT vector_id FROM s3vl.query_vectors(%s::float8[], 'test-index-5d', top_k => 1)",
                            (values("vec_002"),)).fetchall()
        assert rows == [("vec_002",)]
        assert conn.execute("SELECT count(*) FROM s3vl.list_indexes()").fetchone()[0] >= 1
        assert conn.execute("SELECT found FROM s3vl.get_vectors(ARRAY['vec_001'], 'test-index-5d')").fetchone() == (
            True,)
        assert conn.execute("SELECT count(*) FROM s3vl.list_vectors('test-index-5d', max_results => 5)").fetchone() == (
            5,)
        assert conn.execute("SELECT count(*) FROM s3vl.similar_to('test-index-5d', 'vec_001', 2)").fetchone() == (2,)
        assert conn.execute("SELECT count(*) FROM s3vl.error_classes()").fetchone()[0] > 10
        assert conn.execute("SELECT is_valid FROM s3vl.validate_config()").fetchone() == (True,)
        for statement in (
            f"SELECT s3vl.configure('{LAMBDA_ARN}', 'us-west-2')",
            f"SELECT s3vl.register_index('x-name', '{ready.index_arn}')",
            "SELECT s3vl.unregister_index('test-index-5d')",
            "SELECT * FROM s3vl.get_config()",
            "SELECT * FROM s3vl.config",
            "SELECT s3vl._invoke('ping')",
            "SELECT * FROM aws_lambda.invoke('s3vl-query', '{\"operation\": \"ping\"}'::jsonb)",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)


def test_an_admin_can_configure_and_register(ready: Walk, login_roles: tuple[str, str]) -> None:
    _, admin = login_roles
    with as_role(ready, admin) as conn:
        assert conn.execute("SELECT s3vl.configure(%s, 'us-west-2')", (LAMBDA_ARN,)).fetchone() == (True,)
        assert conn.execute("SELECT s3vl.register_index('test-index-5d', %s)", (ready.index_arn,)).fetchone() == (True,)
        assert conn.execute("SELECT updated_by FROM s3vl.get_config()").fetchone() == (admin,)
        assert conn.execute("SELECT count(*) FROM s3vl.query_vectors(ARRAY[0.1,0.2,0.3,0.4,0.5], 'test-index-5d', "
                            "top_k => 2)").fetchone() == (2,)


def test_functions_are_security_definer_with_a_pinned_search_path(ready: Walk) -> None:
    with ready.connect() as conn:
        rows = conn.execute(
            "SELECT p.proname, p.prosecdef, p.proconfig FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE n.nspname = 's3vl' AND p.proname IN ('configure', 'validate_config', 'register_index', "
            "'unregister_index', 'list_indexes', 'query_vectors', 'query_text', 'similar_to', 'get_vectors', "
            "'list_vectors', 'get_config')").fetchall()
        public = conn.execute(
            "SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE n.nspname = 's3vl' AND has_function_privilege('public', p.oid, 'EXECUTE') "
            "AND p.proname IN ('configure', 'query_vectors', '_invoke', 'get_vectors')").fetchall()
    assert len(rows) == 11
    for name, secdef, config in rows:
        assert secdef, name
        assert "search_path=pg_catalog, pg_temp" in config, name
    assert public == []


# --- the CLI command ------------------------------------------------------------------------------


def test_example_walkthrough_command_prints_the_exports(walk: Walk, endpoint: EndpointHandle) -> None:
    env = {**os.environ, "AWS_ENDPOINT_URL": endpoint.url, "AWS_REGION": "us-west-2",
           "AWS_ACCESS_KEY_ID": "s3vl-local", "AWS_SECRET_ACCESS_KEY": "s3vl-local"}
    bucket = "cli-" + uuid.uuid4().hex[:10]
    result = subprocess.run(
        [sys.executable, "-m", "sync", "example", "walkthrough", "--database-url", walk.url, "--bucket", bucket],
        capture_output=True, text=True, env=env, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    arn = f"arn:aws:s3vectors:us-west-2:000000000000:bucket/{bucket}/index/test-index-5d"
    assert lines[0] == f"export S3VL_S3_INDEX_ARN={arn}"
    assert lines[1] == f"export S3VL_LAMBDA_FUNCTION_ARN={LAMBDA_ARN}"
    assert "loaded 50 vectors" in result.stderr


def test_top_k_over_several_query_pages(ready: Walk) -> None:
    """The endpoint pages QueryVectors by 100 (nextToken); top_k => 250 needs three pages."""
    s3v = ready.endpoint.client("s3vectors")
    s3v.create_index(vectorBucketName=ready.bucket, indexName="many", dataType="float32", dimension=3,
                     distanceMetric="cosine")
    arn = s3v.get_index(vectorBucketName=ready.bucket, indexName="many")["index"]["indexArn"]
    s3v.put_vectors(indexArn=arn, vectors=[
        {"key": f"m{i:03d}", "data": {"float32": [1.0, i / 300, (i % 7) / 7]}} for i in range(300)])
    with ready.connect() as conn:
        conn.execute("SELECT s3vl.register_index('many', %s)", (arn,))
        rows = conn.execute("SELECT vector_id, distance FROM s3vl.query_vectors(ARRAY[1.0, 0.0, 0.0], 'many', "
                            "top_k => 250, return_metadata => false)").fetchall()
    assert len(rows) == 250
    assert len({r[0] for r in rows}) == 250
    assert [r[1] for r in rows] == sorted(r[1] for r in rows)
    assert rows[0][0] == "m000"
