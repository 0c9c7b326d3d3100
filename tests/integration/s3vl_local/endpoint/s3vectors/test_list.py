"""ListVectors: paging, segments, and stability under concurrent writes."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest
from botocore.exceptions import ClientError


def make_index(s3v: Any, n: int) -> tuple[str, list[str]]:
    b = f"l-{uuid.uuid4().hex[:12]}"
    s3v.create_vector_bucket(vectorBucketName=b)
    arn = s3v.create_index(
        vectorBucketName=b, indexName="idx", dataType="float32", dimension=2, distanceMetric="euclidean"
    )["indexArn"]
    keys = [f"key-{i:05d}" for i in range(n)]
    for start in range(0, n, 500):
        s3v.put_vectors(
            indexArn=arn,
            vectors=[
                {"key": k, "data": {"float32": [float(i), 1.0]}, "metadata": {"i": i}}
                for i, k in enumerate(keys[start : start + 500], start)
            ],
        )
    return arn, keys


def list_all(s3v: Any, arn: str, **kwargs: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    page = s3v.list_vectors(indexArn=arn, **kwargs)
    out += page["vectors"]
    while "nextToken" in page:
        page = s3v.list_vectors(indexArn=arn, nextToken=page["nextToken"], **kwargs)
        out += page["vectors"]
    return out


def test_paging_default_and_max_results(s3v: Any) -> None:
    arn, keys = make_index(s3v, 1203)
    first = s3v.list_vectors(indexArn=arn)
    assert len(first["vectors"]) == 500
    assert first["vectors"][0] == {"key": keys[0]}
    got = list_all(s3v, arn, maxResults=1000, returnData=True, returnMetadata=True)
    assert [v["key"] for v in got] == keys
    assert got[7] == {"key": keys[7], "data": {"float32": [7.0, 1.0]}, "metadata": {"i": 7}}
    paginated = [v["key"] for p in s3v.get_paginator("list_vectors").paginate(indexArn=arn) for v in p["vectors"]]
    assert paginated == keys
    with pytest.raises(ClientError) as exc:
        s3v.list_vectors(indexArn=arn, maxResults=1001)
    assert exc.value.response["Error"]["Message"] == (
        "1 validation error detected. Value 1001 at '/maxResults' failed to satisfy constraint: "
        "Member must be between 1 and 1000, inclusive"
    )


@pytest.mark.parametrize("count", [1, 3, 16])
def test_segments_are_disjoint_and_cover_every_key(s3v: Any, count: int) -> None:
    arn, keys = make_index(s3v, 700)
    seen: list[str] = []
    for index in range(count):
        part = [v["key"] for v in list_all(s3v, arn, segmentCount=count, segmentIndex=index, maxResults=97)]
        assert part == sorted(part)
        seen += part
    assert sorted(seen) == keys
    assert len(seen) == len(set(seen))


def test_segment_argument_errors(s3v: Any) -> None:
    arn, _ = make_index(s3v, 3)
    cases = [
        ({"segmentCount": 4}, "If you specify segmentCount, you must also specify segmentIndex"),
        ({"segmentIndex": 1}, "If you provide segmentIndex, you must also provide segmentCount"),
        ({"segmentCount": 4, "segmentIndex": 4},
         "The value of segmentIndex must be less than the value of segmentCount"),
        ({"segmentCount": 17, "segmentIndex": 0},
         "1 validation error detected. Value 17 at '/segmentCount' failed to satisfy constraint: "
         "Member must be between 1 and 16, inclusive"),
        ({"nextToken": "nonsense"}, "The provided pagination token is invalid"),
    ]  # fmt: skip
    for kwargs, message in cases:
        with pytest.raises(ClientError) as exc:
            s3v.list_vectors(indexArn=arn, **kwargs)
        assert exc.value.response["Error"]["Code"] == "ValidationException"
        assert exc.value.response["Error"]["Message"] == message
    page = s3v.list_vectors(indexArn=arn, maxResults=1, segmentCount=1, segmentIndex=0)
    with pytest.raises(ClientError) as exc:  # a token is bound to its segment parameters
        s3v.list_vectors(indexArn=arn, maxResults=1, segmentCount=2, segmentIndex=0, nextToken=page["nextToken"])
    assert exc.value.response["Error"]["Message"] == "The provided pagination token is invalid"


def test_long_keys_get_short_tokens(s3v: Any) -> None:
    b = f"l-{uuid.uuid4().hex[:12]}"
    s3v.create_vector_bucket(vectorBucketName=b)
    arn = s3v.create_index(
        vectorBucketName=b, indexName="idx", dataType="float32", dimension=1, distanceMetric="euclidean"
    )["indexArn"]
    keys = [("é" * 1020) + f"{i:04d}" for i in range(3)]
    s3v.put_vectors(indexArn=arn, vectors=[{"key": k, "data": {"float32": [1.0]}} for k in keys])
    page = s3v.list_vectors(indexArn=arn, maxResults=1)
    assert len(page["nextToken"]) <= 2048
    assert [v["key"] for v in list_all(s3v, arn, maxResults=1)] == keys


def test_listing_is_stable_under_concurrent_writes(s3v: Any, endpoint: Any) -> None:
    """Keys present for the whole listing are listed exactly once per segment set, even while
    other keys are inserted and deleted."""
    arn, stable = make_index(s3v, 1500)
    writer_client = endpoint.client()
    stop = threading.Event()
    churn: list[str] = []

    def writer() -> None:
        i = 0
        while not stop.is_set():
            batch = [f"churn-{i}-{j}" for j in range(20)] + [f"key-{i % 1500:05d}x"]
            writer_client.put_vectors(
                indexArn=arn, vectors=[{"key": k, "data": {"float32": [1.0, 2.0]}} for k in batch]
            )
            churn.extend(batch)
            if i % 2:
                writer_client.delete_vectors(indexArn=arn, keys=batch[:10])
            i += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        seen: list[str] = []
        for index in range(4):
            seen += [v["key"] for v in list_all(s3v, arn, segmentCount=4, segmentIndex=index, maxResults=50)]
    finally:
        stop.set()
        thread.join()
    assert churn  # the writer really ran during the listing
    listed_stable = [k for k in seen if k in set(stable)]
    assert sorted(listed_stable) == stable
    assert len(seen) == len(set(seen))


def test_pages_stop_near_one_megabyte(s3v: Any) -> None:
    b = f"l-{uuid.uuid4().hex[:12]}"
    s3v.create_vector_bucket(vectorBucketName=b)
    arn = s3v.create_index(
        vectorBucketName=b, indexName="idx", dataType="float32", dimension=4096, distanceMetric="cosine"
    )["indexArn"]
    keys = [f"v{i:03d}" for i in range(60)]
    s3v.put_vectors(indexArn=arn, vectors=[{"key": k, "data": {"float32": [0.5] * 4096}} for k in keys])
    page = s3v.list_vectors(indexArn=arn, maxResults=1000, returnData=True)
    assert 10 < len(page["vectors"]) < 60  # the dataset size, not maxResults, ended the page
    assert "nextToken" in page
    assert [v["key"] for v in list_all(s3v, arn, maxResults=1000, returnData=True)] == keys
    assert len(s3v.list_vectors(indexArn=arn, maxResults=1000)["vectors"]) == 60  # keys only: small
