"""The query Lambda's handler in-process against the real local endpoint (unmodified boto3)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import handler
import pytest

import s3vl_query.aws as aws
from s3vl_local.examples import walkthrough
from tests.support.endpoint import EndpointHandle


@dataclass
class Ctx:
    aws_request_id: str = "it-1"
    function_name: str = "s3vl-query"

    def get_remaining_time_in_millis(self) -> int:
        return 10_000


@pytest.fixture
def index_arn(aws_env: EndpointHandle) -> Iterator[str]:
    aws.client.cache_clear()  # clients built by other tests may point elsewhere
    bucket = "lam-" + uuid.uuid4().hex[:10]
    arn = walkthrough.run(None, "us-west-2", bucket=bucket, client=aws_env.client("s3vectors")).index_arn
    yield arn
    aws.client.cache_clear()


def call(event: dict[str, Any]) -> dict[str, Any]:
    answer = handler.lambda_handler(event, Ctx())
    assert answer["ok"] is True, answer
    result: dict[str, Any] = answer["result"]
    return result


def test_get_index(index_arn: str) -> None:
    info = call({"operation": "get_index", "index_arn": index_arn})
    assert (info["dimension"], info["distance_metric"], info["index_name"]) == (5, "cosine", "test-index-5d")


def test_query_get_and_list(index_arn: str) -> None:
    values = list(walkthrough.VECTORS[2][1])
    found = call({"operation": "query_vectors", "index_arn": index_arn, "query_vector": values, "top_k": 2})
    assert found["vectors"][0]["key"] == "vec_003"
    assert found["vectors"][0]["similarity_score"] == pytest.approx(1.0, abs=1e-6)
    got = call({"operation": "get_vectors", "index_arn": index_arn, "vector_ids": ["vec_003", "zzz"]})
    assert [v["found"] for v in got["vectors"]] == [True, False]
    keys: list[str] = []
    token = None
    while True:
        page = call({"operation": "list_vectors", "index_arn": index_arn, "max_results": 15, "next_token": token})
        keys += [v["key"] for v in page["vectors"]]
        token = page["next_token"]
        if not token:
            break
    assert sorted(keys) == [f"vec_{i:03d}" for i in range(1, 51)]


def test_an_unknown_index_is_index_not_found(index_arn: str) -> None:
    missing = index_arn.replace("test-index-5d", "nope-x")
    answer = handler.lambda_handler({"operation": "get_index", "index_arn": missing}, Ctx())
    assert answer["ok"] is False
    assert answer["error"]["code"] == "index_not_found"
