"""Unit tests of the query Lambda (lambda/handler.py): validation, operations, retries, errors.

No network: the boto3 clients are real clients wrapped in botocore's Stubber, which checks every
request's parameters against the service model and returns the canned answers.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import handler
import pytest
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber

import s3vl_query.aws as aws
import s3vl_query.errors as errors
import s3vl_query.operations as operations

ARN = "arn:aws:s3vectors:us-west-2:000000000000:bucket/demo-bucket/index/test-index-5d"


@dataclass
class FakeContext:
    """A Lambda-like context (Powertools' fake context is a dataclass too)."""

    aws_request_id: str = "req-1"
    function_name: str = "s3vl-query"
    function_version: str = "$LATEST"
    remaining_ms: int = 5_000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


@pytest.fixture
def s3v(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stubber]:
    client = boto3.client(
        "s3vectors", region_name="us-west-2", aws_access_key_id="x", aws_secret_access_key="x"
    )
    monkeypatch.setattr(operations, "_s3v", lambda arn: client)
    with Stubber(client) as stub:
        yield stub
        stub.assert_no_pending_responses()


@pytest.fixture
def bedrock(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stubber]:
    client = boto3.client(
        "bedrock-runtime", region_name="us-west-2", aws_access_key_id="x", aws_secret_access_key="x"
    )
    monkeypatch.setattr(operations, "_bedrock", lambda arn: client)
    with Stubber(client) as stub:
        yield stub
        stub.assert_no_pending_responses()


@pytest.fixture(autouse=True)
def _fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aws, "BASE_DELAY_S", 0.001)
    monkeypatch.setattr(aws, "MAX_DELAY_S", 0.002)


def invoke(event: Any, **ctx: Any) -> dict[str, Any]:
    answer = handler.lambda_handler(event, FakeContext(**ctx))
    json.dumps(answer)  # the answer is always JSON-serialisable
    assert answer["request_id"] == ctx.get("aws_request_id", "req-1")
    assert isinstance(answer["elapsed_ms"], int)
    return answer


def error_of(answer: dict[str, Any]) -> dict[str, Any]:
    assert answer["ok"] is False, answer
    assert set(answer["error"]) == {"code", "message", "retryable"}
    return answer["error"]


def query_event(**over: Any) -> dict[str, Any]:
    event = {"operation": "query_vectors", "index_arn": ARN, "query_vector": [0.1, 0.2, 0.3, 0.4, 0.5],
             "top_k": 3}
    event.update(over)
    return event


# --- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "code", "needle"),
    [
        ("not an object", "invalid_request", "JSON object"),
        ({"operation": "drop_table"}, "invalid_request", "operation must be one of"),
        ({}, "invalid_request", "operation"),
        (query_event(index_arn="arn:aws:s3:::bucket"), "invalid_argument", "index_arn"),
        (query_event(query_vector=[0.1, math.nan]), "invalid_argument", "query_vector[2]"),
        (query_event(query_vector=[math.inf]), "invalid_argument", "NaN and infinity"),
        (query_event(query_vector=[1e39]), "invalid_argument", "float32"),
        (query_event(query_vector=[True, 0.2]), "invalid_argument", "must be a number"),
        (query_event(query_vector="0.1,0.2"), "invalid_argument", "array of numbers"),
        (query_event(query_vector=[]), "invalid_argument", "1 to 4096"),
        (query_event(top_k=0), "invalid_argument", "top_k must be between 1 and 10000"),
        (query_event(top_k=10_001), "invalid_argument", "top_k"),
        (query_event(top_k=2.5), "invalid_argument", "top_k must be an integer"),
        (query_event(return_metadata="yes"), "invalid_argument", "return_metadata must be a boolean"),
        (query_event(dimension=4), "dimension_mismatch", "5 dimensions but the index has 4"),
        (query_event(metadata_filter=["category"]), "invalid_filter", "non-empty JSON object"),
        (query_event(metadata_filter={}), "invalid_filter", "non-empty JSON object"),
        (query_event(metadata_filter={"category": {"$like": "t%"}}), "invalid_filter", "unknown operator"),
        (query_event(metadata_filter={"price": {"$in": []}}), "invalid_filter", "non-empty array"),
        (query_event(metadata_filter={"price": {"$gt": "cheap"}}), "invalid_filter", "take a number"),
        (query_event(metadata_filter={"$and": {"a": 1}}), "invalid_filter", "array of filters"),
        (query_event(metadata_filter={"$not": [{"a": 1}]}), "invalid_filter", "only $and and $or"),
        (query_event(metadata_filter={"a": {"$exists": "yes"}}), "invalid_filter", "true or false"),
        (query_event(metadata_filter={"a": None}), "invalid_filter", "null matches nothing"),
        (query_event(metadata_filter={"a": float("inf")}), "invalid_filter", "numbers must be finite"),
        (query_event(metadata_filter={"a": {"$in": [1, float("nan")]}}), "invalid_filter", "numbers must be finite"),
        (query_event(source_ids=[1, 2]), "invalid_argument", "source_ids[1]"),
        (query_event(source_ids=["1"], prefilter="magic"), "invalid_argument", "prefilter"),
        ({"operation": "get_vectors", "index_arn": ARN, "vector_ids": []}, "invalid_argument", "vector_ids"),
        ({"operation": "get_vectors", "index_arn": ARN, "vector_ids": ["a" * 1025]}, "invalid_argument",
         "1 to 1024"),
        ({"operation": "list_vectors", "index_arn": ARN, "max_results": 1001}, "invalid_argument",
         "max_results"),
        ({"operation": "list_vectors", "index_arn": ARN, "segment_index": 1}, "invalid_argument",
         "segment_count"),
        ({"operation": "query_text", "index_arn": ARN, "query_text": "  ", "embedding_model": "m",
          "dimension": 5}, "invalid_argument", "blank"),
        ({"operation": "query_text", "index_arn": ARN, "query_text": "x", "embedding_model": "m"},
         "invalid_argument", "dimension is required"),
        ({"operation": "similar_to", "index_arn": ARN}, "invalid_argument", "vector_id is required"),
    ],
)
def test_invalid_requests_are_answered_with_their_class(event: Any, code: str, needle: str) -> None:
    err = error_of(invoke(event))
    assert err["code"] == code
    assert needle in err["message"]
    assert err["retryable"] is False


def test_filter_nesting_depth_is_limited() -> None:
    node: dict[str, Any] = {"a": 1}
    for _ in range(10):
        node = {"$and": [node]}
    assert error_of(invoke(query_event(metadata_filter=node)))["code"] == "invalid_filter"


def test_an_unexpected_exception_is_answered_without_a_stack_trace(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: Any) -> Any:
        raise RuntimeError("secret internals at /var/task/x.py line 3")

    monkeypatch.setattr(operations, "run", boom)
    err = error_of(invoke({"operation": "ping"}, aws_request_id="req-9"))
    assert err["code"] == "internal"
    assert "req-9" in err["message"]
    assert "Traceback" not in err["message"]
    assert "secret" not in err["message"]


def test_ping_answers_without_aws() -> None:
    answer = invoke({"operation": "ping"})
    assert answer["ok"] is True
    assert answer["result"]["status"] == "available"
    assert answer["result"]["function_name"] == "s3vl-query"
    assert invoke({"operation": "availability_check"})["ok"] is True


def test_clients_are_built_once_per_service_and_region() -> None:
    assert aws.client("s3vectors", "us-west-2") is aws.client("s3vectors", "us-west-2")
    assert aws.client("s3vectors", "us-east-1") is not aws.client("s3vectors", "us-west-2")


def test_every_error_code_is_distinct() -> None:
    assert len(set(errors.ERROR_CODES)) == len(errors.ERROR_CODES)


# --- query_vectors ----------------------------------------------------------------------------


def test_query_vectors_returns_similarity_and_follows_next_token(s3v: Stubber) -> None:
    expected = {"indexArn": ARN, "topK": 3, "queryVector": {"float32": [0.1, 0.2, 0.3, 0.4, 0.5]},
                "returnDistance": True, "returnMetadata": True, "filter": {"category": "test"}}
    s3v.add_response("query_vectors", {"vectors": [{"key": "a", "distance": 0.0, "metadata": {"c": 1}},
                                                   {"key": "b", "distance": 0.25}],
                                       "distanceMetric": "cosine", "nextToken": "t1"}, expected)
    s3v.add_response("query_vectors", {"vectors": [{"key": "c", "distance": 0.5}, {"key": "d", "distance": 0.6}],
                                       "distanceMetric": "cosine"}, {**expected, "nextToken": "t1"})
    answer = invoke(query_event(metadata_filter={"category": "test"}))
    assert answer["ok"] is True, answer
    rows = answer["result"]["vectors"]
    assert [r["key"] for r in rows] == ["a", "b", "c"]
    assert rows[0]["similarity_score"] == 1.0
    assert rows[1]["similarity_score"] == 0.75
    assert rows[0]["metadata"] == {"c": 1}
    assert answer["result"]["distance_metric"] == "cosine"


def test_euclidean_similarity_is_one_over_one_plus_distance() -> None:
    assert operations.similarity(0.0, "euclidean") == 1.0
    assert operations.similarity(1.0, "euclidean") == 0.5
    assert operations.similarity(0.2, "cosine") == pytest.approx(0.8)
    assert operations.similarity(None, "cosine") is None


def test_throttling_is_retried_within_the_budget(s3v: Stubber) -> None:
    for _ in range(2):
        s3v.add_client_error("query_vectors", "ThrottlingException", "slow down", 429)
    s3v.add_response("query_vectors", {"vectors": [{"key": "a", "distance": 0.1}], "distanceMetric": "cosine"})
    answer = invoke(query_event())
    assert answer["ok"] is True
    assert [r["key"] for r in answer["result"]["vectors"]] == ["a"]


def test_throttling_past_the_budget_is_a_retryable_throttled_error(
    s3v: Stubber, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(aws, "BASE_DELAY_S", 0.2)
    monkeypatch.setattr(aws, "MAX_DELAY_S", 0.2)
    monkeypatch.setattr(aws.random, "uniform", lambda a, b: b)
    for _ in range(3):
        s3v.add_client_error("query_vectors", "ThrottlingException", "Rate exceeded", 429)
    err = error_of(invoke(query_event(), remaining_ms=800))  # 0.55 s after the margin: 3 tries
    assert err["code"] == "throttled"
    assert err["retryable"] is True
    assert "Rate exceeded" in err["message"]
    assert "3 attempts" in err["message"]


def test_an_exhausted_budget_is_a_timeout(s3v: Stubber) -> None:
    err = error_of(invoke(query_event(), remaining_ms=100))
    assert err["code"] == "timeout"
    assert err["retryable"] is True


@pytest.mark.parametrize(
    ("aws_code", "status", "message", "code"),
    [
        ("NotFoundException", 404, "The specified index could not be found", "index_not_found"),
        ("ValidationException", 400, "Invalid filter: unknown key", "invalid_filter"),
        ("ValidationException", 400, "Query vector dimension 4 does not match index dimension 5",
         "dimension_mismatch"),
        ("ValidationException", 400, "topK too large", "invalid_argument"),
        ("AccessDeniedException", 403, "not authorized", "access_denied"),
        ("ServiceUnavailableException", 503, "try later", "service_unavailable"),
    ],
)
def test_aws_errors_become_their_class(s3v: Stubber, aws_code: str, status: int, message: str, code: str) -> None:
    s3v.add_client_error("query_vectors", aws_code, message, status)
    if code == "service_unavailable":
        s3v.add_response("query_vectors", {"vectors": [], "distanceMetric": "cosine"})
        assert invoke(query_event())["ok"] is True  # transient: retried, then fine
        return
    err = error_of(invoke(query_event()))
    assert err["code"] == code
    assert message in err["message"]
    assert aws_code in err["message"]


def test_prefilter_in_mode_adds_s3vl_id_in_to_the_filter(s3v: Stubber) -> None:
    s3v.add_response(
        "query_vectors",
        {"vectors": [{"key": "7", "distance": 0.1}], "distanceMetric": "cosine"},
        {"indexArn": ARN, "topK": 3, "queryVector": ANY, "returnDistance": True, "returnMetadata": True,
         "filter": {"$and": [{"category": "test"}, {"s3vl_id": {"$in": ["7", "9"]}}]}},
    )
    answer = invoke(query_event(metadata_filter={"category": "test"}, source_ids=["7", "9", "7"]))
    assert answer["result"]["prefilter"] == {"mode": "filter", "candidates": 2, "fetched": 1}


def test_prefilter_overfetch_keeps_candidates_and_reranks(s3v: Stubber) -> None:
    s3v.add_response(
        "query_vectors",
        {"vectors": [{"key": "1", "distance": 0.1, "metadata": {"s3vl_id": "1"}},
                     {"key": "2", "distance": 0.2, "metadata": {"s3vl_id": "2"}},
                     {"key": "3#0", "distance": 0.3, "metadata": {"s3vl_id": "3"}},
                     {"key": "4", "distance": 0.4, "metadata": {"s3vl_id": "4"}}],
         "distanceMetric": "cosine"},
        {"indexArn": ARN, "topK": 6, "queryVector": ANY, "returnDistance": True, "returnMetadata": True},
    )
    answer = invoke(query_event(top_k=2, return_metadata=False, source_ids=["4", "3"], prefilter="overfetch",
                                overfetch_factor=3))
    rows = answer["result"]["vectors"]
    assert [r["key"] for r in rows] == ["3#0", "4"]
    assert rows[0]["metadata"] is None  # the caller did not ask for metadata
    assert answer["result"]["prefilter"]["mode"] == "overfetch"


def test_prefilter_auto_switches_to_overfetch_for_many_ids(s3v: Stubber) -> None:
    s3v.add_response("query_vectors", {"vectors": [], "distanceMetric": "cosine"},
                     {"indexArn": ARN, "topK": 30, "queryVector": ANY, "returnDistance": True,
                      "returnMetadata": True})
    answer = invoke(query_event(source_ids=[str(i) for i in range(501)]))
    assert answer["result"]["prefilter"]["mode"] == "overfetch"


# --- get / list / similar ------------------------------------------------------------------------


def test_get_vectors_keeps_input_order_marks_missing_and_batches(s3v: Stubber) -> None:
    keys = [f"k{i:03d}" for i in range(150)] + ["k000"]
    first = [{"key": k, "data": {"float32": [1.0]}, "metadata": {"n": k}} for k in keys[:100]]
    s3v.add_response("get_vectors", {"vectors": first[::-1]},
                     {"indexArn": ARN, "keys": keys[:100], "returnData": True, "returnMetadata": True})
    s3v.add_response("get_vectors", {"vectors": [{"key": "k120", "data": {"float32": [2.0]}}]},
                     {"indexArn": ARN, "keys": keys[100:150], "returnData": True, "returnMetadata": True})
    answer = invoke({"operation": "get_vectors", "index_arn": ARN, "vector_ids": keys})
    rows = answer["result"]["vectors"]
    assert [r["key"] for r in rows] == keys
    assert rows[0] == {"key": "k000", "found": True, "data": [1.0], "metadata": {"n": "k000"}}
    assert rows[120]["found"] is True
    assert rows[120]["data"] == [2.0]
    assert rows[121] == {"key": "k121", "found": False, "data": None, "metadata": None}
    assert rows[-1]["found"] is True


def test_list_vectors_passes_the_token_both_ways(s3v: Stubber) -> None:
    s3v.add_response("list_vectors", {"vectors": [{"key": "a", "metadata": {"x": 1}}], "nextToken": "n2"},
                     {"indexArn": ARN, "maxResults": 1, "returnData": False, "returnMetadata": True,
                      "nextToken": "n1"})
    answer = invoke({"operation": "list_vectors", "index_arn": ARN, "max_results": 1, "next_token": "n1"})
    assert answer["result"] == {"vectors": [{"key": "a", "data": None, "metadata": {"x": 1}}], "next_token": "n2"}


def test_similar_to_queries_with_the_stored_vector_and_drops_itself(s3v: Stubber) -> None:
    s3v.add_response("get_vectors", {"vectors": [{"key": "v1", "data": {"float32": [0.5, 0.5]}}]},
                     {"indexArn": ARN, "keys": ["v1"], "returnData": True, "returnMetadata": False})
    s3v.add_response("query_vectors",
                     {"vectors": [{"key": "v1", "distance": 0.0}, {"key": "v2", "distance": 0.1},
                                  {"key": "v3", "distance": 0.2}], "distanceMetric": "cosine"},
                     {"indexArn": ARN, "topK": 3, "queryVector": {"float32": [0.5, 0.5]},
                      "returnDistance": True, "returnMetadata": True})
    answer = invoke({"operation": "similar_to", "index_arn": ARN, "vector_id": "v1", "top_k": 2})
    assert [r["key"] for r in answer["result"]["vectors"]] == ["v2", "v3"]


def test_similar_to_an_unknown_vector_is_vector_not_found(s3v: Stubber) -> None:
    s3v.add_response("get_vectors", {"vectors": []})
    err = error_of(invoke({"operation": "similar_to", "index_arn": ARN, "vector_id": "nope"}))
    assert err["code"] == "vector_not_found"


def test_get_index_reports_dimension_metric_and_searchable_keys(s3v: Stubber) -> None:
    s3v.add_response("get_index", {"index": {
        "vectorBucketName": "demo-bucket", "indexName": "test-index-5d", "indexArn": ARN,
        "creationTime": "2026-01-01T00:00:00Z", "dataType": "float32", "dimension": 5,
        "distanceMetric": "cosine", "indexMode": "ENHANCED",
        "metadataConfiguration": {"nonFilterableMetadataKeys": ["s3vl_hash"],
                                  "textSearchConfigurations": [
                                      {"metadataKey": "title", "language": "en", "status": "ACTIVE"},
                                      {"metadataKey": "body", "language": "en", "status": "BUILDING"}]}}})
    result = invoke({"operation": "get_index", "index_arn": ARN})["result"]
    assert result["dimension"] == 5
    assert result["distance_metric"] == "cosine"
    assert result["searchable_keys"] == ["title"]
    assert result["non_filterable_keys"] == ["s3vl_hash"]


# --- query_text ----------------------------------------------------------------------------------


def _bedrock_body(doc: dict[str, Any]) -> StreamingBody:
    raw = json.dumps(doc).encode()
    return StreamingBody(io.BytesIO(raw), len(raw))


def test_query_text_embeds_with_the_registered_model_and_runs_hybrid(s3v: Stubber, bedrock: Stubber) -> None:
    bedrock.add_response(
        "invoke_model",
        {"body": _bedrock_body({"embedding": [0.1, 0.2, 0.3], "inputTextTokenCount": 4}),
         "contentType": "application/json"},
        {"modelId": "amazon.titan-embed-text-v2:0", "contentType": "application/json",
         "accept": "application/json",
         "body": json.dumps({"inputText": "red shoes", "dimensions": 3, "normalize": True}).encode()},
    )
    s3v.add_response(
        "query_vectors",
        {"vectors": [{"key": "p1", "scores": {"fused": 0.03, "vectorDistance": 0.2}}], "distanceMetric": "cosine"},
        {"indexArn": ARN, "topK": 5, "queryVector": {"float32": [0.1, 0.2, 0.3]}, "returnDistance": True,
         "returnMetadata": True, "returnScores": True,
         "queryTexts": [{"text": "red shoes", "metadataKey": "title"}]},
    )
    answer = invoke({"operation": "query_text", "index_arn": ARN, "query_text": "red shoes",
                     "embedding_model": "amazon.titan-embed-text-v2:0", "dimension": 3, "top_k": 5,
                     "text_keys": ["title"]})
    result = answer["result"]
    assert result["hybrid"] is True
    assert result["text_keys"] == ["title"]
    assert result["input_tokens"] == 4
    row = result["vectors"][0]
    assert row["key"] == "p1"
    assert row["score"] == 0.03
    assert row["similarity_score"] == pytest.approx(0.8)


def test_query_text_without_searchable_keys_is_vector_only(s3v: Stubber, bedrock: Stubber) -> None:
    bedrock.add_response("invoke_model", {"body": _bedrock_body({"embeddings": [[1.0, 0.0]]}),
                                          "contentType": "application/json"})
    s3v.add_response("query_vectors", {"vectors": [], "distanceMetric": "cosine"},
                     {"indexArn": ARN, "topK": 10, "queryVector": {"float32": [1.0, 0.0]},
                      "returnDistance": True, "returnMetadata": True})
    answer = invoke({"operation": "query_text", "index_arn": ARN, "query_text": "hello",
                     "embedding_model": "cohere.embed-english-v3", "dimension": 2, "text_keys": []})
    assert answer["result"]["hybrid"] is False


@pytest.mark.parametrize(("model", "request_body", "answer"), [
    ("cohere.embed-v4:0",
     {"texts": ["hello"], "input_type": "search_query", "output_dimension": 2, "truncate": "RIGHT"},
     {"embeddings": {"float": [[1.0, 0.0]]}, "response_type": "embeddings_by_type"}),
    ("amazon.nova-2-multimodal-embeddings-v1:0",
     {"taskType": "SINGLE_EMBEDDING", "singleEmbeddingParams": {
         "embeddingPurpose": "GENERIC_RETRIEVAL", "embeddingDimension": 2,
         "text": {"truncationMode": "END", "value": "hello"}}},
     {"embeddings": [{"embeddingType": "TEXT", "embedding": [1.0, 0.0]}]}),
    ("global.cohere.embed-v4:0",  # an inference profile: invoked as it is, with its model's shapes
     {"texts": ["hello"], "input_type": "search_query", "output_dimension": 2, "truncate": "RIGHT"},
     {"embeddings": [[1.0, 0.0]], "response_type": "embeddings_floats"}),
])
def test_query_text_with_cohere_v4_and_nova(s3v: Stubber, bedrock: Stubber, model: str,
                                            request_body: dict[str, Any], answer: dict[str, Any]) -> None:
    bedrock.add_response("invoke_model", {"body": _bedrock_body(answer), "contentType": "application/json"},
                         {"modelId": model, "contentType": "application/json", "accept": "application/json",
                          "body": json.dumps(request_body).encode()})
    s3v.add_response("query_vectors", {"vectors": [], "distanceMetric": "cosine"},
                     {"indexArn": ARN, "topK": 10, "queryVector": {"float32": [1.0, 0.0]},
                      "returnDistance": True, "returnMetadata": True})
    result = invoke({"operation": "query_text", "index_arn": ARN, "query_text": "hello",
                     "embedding_model": model, "dimension": 2, "text_keys": []})
    assert result["result"]["hybrid"] is False


def test_query_text_forcing_hybrid_without_keys_is_invalid(s3v: Stubber) -> None:
    err = error_of(invoke({"operation": "query_text", "index_arn": ARN, "query_text": "x", "hybrid": True,
                           "embedding_model": "amazon.titan-embed-text-v2:0", "dimension": 3,
                           "text_keys": []}))
    assert err["code"] == "invalid_argument"
    assert "searchable" in err["message"]


def test_query_text_model_dimension_mismatch(bedrock: Stubber) -> None:
    bedrock.add_response("invoke_model", {"body": _bedrock_body({"embedding": [0.1] * 1536}),
                                          "contentType": "application/json"})
    err = error_of(invoke({"operation": "query_text", "index_arn": ARN, "query_text": "x", "hybrid": False,
                           "embedding_model": "amazon.titan-embed-text-v1", "dimension": 5}))
    assert err["code"] == "dimension_mismatch"
    assert "1536" in err["message"]


def test_query_text_unknown_model_is_an_embedding_error(bedrock: Stubber) -> None:
    bedrock.add_client_error("invoke_model", "ResourceNotFoundException", "Could not resolve the model", 404)
    err = error_of(invoke({"operation": "query_text", "index_arn": ARN, "query_text": "x", "hybrid": False,
                           "embedding_model": "amazon.titan-embed-text-v9", "dimension": 5}))
    assert err["code"] == "embedding_failed"
    err = error_of(invoke({"operation": "query_text", "index_arn": ARN, "query_text": "x", "hybrid": False,
                           "embedding_model": "meta.llama3", "dimension": 5}))
    assert err["code"] == "embedding_failed"
    assert "not supported" in err["message"]


def test_an_answer_too_big_for_lambda_is_refused_with_advice(s3v: Stubber, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(handler, "MAX_ANSWER_BYTES", 2_000)
    s3v.add_response("query_vectors", {"vectors": [{"key": f"k{i}", "distance": 0.1, "metadata": {"t": "x" * 100}}
                                                   for i in range(30)], "distanceMetric": "cosine"})
    err = error_of(invoke(query_event(top_k=30)))
    assert err["code"] == "invalid_argument"
    assert "lower top_k" in err["message"]
