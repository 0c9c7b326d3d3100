"""Every S3 Vectors operation, limit and error code through the unmodified boto3 client."""

from __future__ import annotations

import json
import uuid
from typing import Any

import numpy as np
import pytest
from botocore.exceptions import ClientError

from tests.support.endpoint import EndpointHandle


def name(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def err(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, str, int]:
    e = exc.value.response
    return e["Error"]["Code"], e["Error"]["Message"], e["ResponseMetadata"]["HTTPStatusCode"]


@pytest.fixture
def bucket(s3v: Any) -> str:
    b = name("b")
    s3v.create_vector_bucket(vectorBucketName=b)
    return b


@pytest.fixture
def index(s3v: Any, bucket: str) -> tuple[str, str]:
    ix = name("i")
    s3v.create_index(
        vectorBucketName=bucket, indexName=ix, dataType="float32", dimension=4, distanceMetric="cosine",
        metadataConfiguration={"nonFilterableMetadataKeys": ["body"]},
    )  # fmt: skip
    return bucket, ix


def vec(key: str, data: list[float] | None = None, **md: Any) -> dict[str, Any]:
    v: dict[str, Any] = {"key": key, "data": {"float32": data or [1.0, 0.5, 0.25, 0.125]}}
    if md:
        v["metadata"] = md
    return v


# -- buckets ------------------------------------------------------------------------------------
def test_bucket_lifecycle_by_name_and_arn(s3v: Any) -> None:
    b = name("b")
    arn = s3v.create_vector_bucket(vectorBucketName=b, tags={"team": "s3vl"})["vectorBucketArn"]
    assert arn == f"arn:aws:s3vectors:us-west-2:000000000000:bucket/{b}"
    got = s3v.get_vector_bucket(vectorBucketArn=arn)["vectorBucket"]
    assert got["vectorBucketName"] == b
    assert got["encryptionConfiguration"] == {"sseType": "AES256"}
    assert got["defaultIndexMode"] == "ENHANCED"
    assert s3v.get_vector_bucket(vectorBucketName=b)["vectorBucket"]["vectorBucketArn"] == arn
    assert s3v.list_tags_for_resource(resourceArn=arn)["tags"] == {"team": "s3vl"}
    s3v.delete_vector_bucket(vectorBucketArn=arn)
    with pytest.raises(ClientError) as exc:
        s3v.get_vector_bucket(vectorBucketName=b)
    assert err(exc) == ("NotFoundException", "The specified vector bucket could not be found", 404)


def test_bucket_errors(s3v: Any, bucket: str) -> None:
    with pytest.raises(ClientError) as exc:
        s3v.create_vector_bucket(vectorBucketName=bucket)
    assert err(exc) == ("ConflictException", "A vector bucket with the specified name already exists", 409)
    with pytest.raises(ClientError) as exc:
        s3v.create_vector_bucket(vectorBucketName="x" * 64)
    assert err(exc) == (
        "ValidationException",
        "1 validation error detected. Value with length 64 at '/vectorBucketName' failed to satisfy constraint: "
        "Member must have length between 3 and 63, inclusive",
        400,
    )
    assert exc.value.response["fieldList"][0]["path"] == "/vectorBucketName"
    for bad in ["Upper-case", "under_score", "-leading", "amp&ersand"]:
        with pytest.raises(ClientError) as exc:
            s3v.create_vector_bucket(vectorBucketName=bad)
        assert err(exc) == ("ValidationException", "Invalid vector bucket name", 400)
    with pytest.raises(ClientError) as exc:
        s3v.get_vector_bucket(
            vectorBucketName=bucket, vectorBucketArn=f"arn:aws:s3vectors:us-west-2:000000000000:bucket/{bucket}"
        )
    assert err(exc)[0] == "ValidationException"
    with pytest.raises(ClientError) as exc:
        s3v.get_vector_bucket()
    assert err(exc) == ("ValidationException", "Must specify either vectorBucketName or vectorBucketArn", 400)
    with pytest.raises(ClientError) as exc:
        s3v.create_vector_bucket(vectorBucketName=name(), encryptionConfiguration={"sseType": "aws:kms"})
    assert err(exc) == ("ValidationException", "kmsKeyArn is required when sseType is aws:kms", 400)


def test_bucket_not_empty_and_delete_order(s3v: Any, index: tuple[str, str]) -> None:
    b, ix = index
    with pytest.raises(ClientError) as exc:
        s3v.delete_vector_bucket(vectorBucketName=b)
    assert err(exc) == ("ConflictException", "The specified vector bucket is not empty", 409)
    s3v.delete_index(vectorBucketName=b, indexName=ix)
    s3v.delete_vector_bucket(vectorBucketName=b)


def test_list_vector_buckets_prefix_and_paging(s3v: Any) -> None:
    prefix = name("lb")
    names = sorted(f"{prefix}-{i}" for i in range(5))
    for n in names:
        s3v.create_vector_bucket(vectorBucketName=n)
    page = s3v.list_vector_buckets(prefix=prefix, maxResults=2)
    got = [b["vectorBucketName"] for b in page["vectorBuckets"]]
    while "nextToken" in page:
        page = s3v.list_vector_buckets(prefix=prefix, maxResults=2, nextToken=page["nextToken"])
        got += [b["vectorBucketName"] for b in page["vectorBuckets"]]
    assert got == names
    paginated = [b["vectorBucketName"] for p in s3v.get_paginator("list_vector_buckets").paginate(prefix=prefix)
                 for b in p["vectorBuckets"]]  # fmt: skip
    assert paginated == names
    with pytest.raises(ClientError) as exc:
        s3v.list_vector_buckets(maxResults=501)
    assert err(exc)[0:2] == (
        "ValidationException",
        "1 validation error detected. Value 501 at '/maxResults' failed to satisfy constraint: "
        "Member must be between 1 and 500, inclusive",
    )
    with pytest.raises(ClientError) as exc:
        s3v.list_vector_buckets(nextToken="garbage!")
    assert err(exc) == ("ValidationException", "The provided pagination token is invalid", 400)


def test_bucket_policy(s3v: Any, bucket: str) -> None:
    with pytest.raises(ClientError) as exc:
        s3v.get_vector_bucket_policy(vectorBucketName=bucket)
    assert err(exc) == ("NotFoundException", "The specified vector bucket policy could not be found", 404)
    policy = json.dumps({"Version": "2012-10-17", "Statement": []})
    s3v.put_vector_bucket_policy(vectorBucketName=bucket, policy=policy)
    assert s3v.get_vector_bucket_policy(vectorBucketName=bucket)["policy"] == policy
    with pytest.raises(ClientError) as exc:
        s3v.put_vector_bucket_policy(vectorBucketName=bucket, policy="{not json")
    assert err(exc) == ("ValidationException", "Policy has invalid json", 400)
    s3v.delete_vector_bucket_policy(vectorBucketName=bucket)
    with pytest.raises(ClientError):
        s3v.get_vector_bucket_policy(vectorBucketName=bucket)


def test_default_index_mode(s3v: Any, bucket: str) -> None:
    s3v.put_vector_bucket_default_index_mode(vectorBucketName=bucket, defaultIndexMode="ENHANCED")
    with pytest.raises(ClientError) as exc:
        s3v.put_vector_bucket_default_index_mode(vectorBucketName=bucket, defaultIndexMode="CLASSIC")
    assert err(exc) == (
        "ValidationException",
        "CLASSIC mode is only available for vector buckets created before September 30, 2026",
        400,
    )
    with pytest.raises(ClientError) as exc:
        s3v.put_vector_bucket_default_index_mode(vectorBucketName=bucket, defaultIndexMode="FAST")
    assert err(exc)[1].endswith("Member must satisfy enum value set: [CLASSIC, ENHANCED]")


def test_bucket_quota(endpoint: EndpointHandle, s3v: Any) -> None:
    existing = len(s3v.list_vector_buckets()["vectorBuckets"])
    endpoint.admin._request("PUT", "s3vectors/limits", {"max_buckets": existing})
    try:
        with pytest.raises(ClientError) as exc:
            s3v.create_vector_bucket(vectorBucketName=name())
        assert err(exc) == (
            "ServiceQuotaExceededException",
            "You have reached the maximum number of vector buckets allowed",
            402,
        )
    finally:
        endpoint.admin._request("PUT", "s3vectors/limits", {"max_buckets": 10_000})


# -- indexes ------------------------------------------------------------------------------------
def test_index_lifecycle(s3v: Any, bucket: str) -> None:
    ix = name("i")
    arn = s3v.create_index(
        vectorBucketName=bucket, indexName=ix, dataType="float32", dimension=8, distanceMetric="euclidean",
        metadataConfiguration={"nonFilterableMetadataKeys": ["a", "b"]}, tags={"k": "v"},
    )["indexArn"]  # fmt: skip
    assert arn == f"arn:aws:s3vectors:us-west-2:000000000000:bucket/{bucket}/index/{ix}"
    got = s3v.get_index(indexArn=arn)["index"]
    assert {k: got[k] for k in ("vectorBucketName", "indexName", "dimension", "distanceMetric", "dataType", "indexMode")} == {  # noqa: E501
        "vectorBucketName": bucket, "indexName": ix, "dimension": 8, "distanceMetric": "euclidean",
        "dataType": "float32", "indexMode": "ENHANCED",
    }  # fmt: skip
    assert got["metadataConfiguration"] == {"nonFilterableMetadataKeys": ["a", "b"]}
    assert s3v.get_index(vectorBucketName=bucket, indexName=ix)["index"]["indexArn"] == arn
    assert s3v.list_tags_for_resource(resourceArn=arn)["tags"] == {"k": "v"}
    listed = s3v.list_indexes(vectorBucketName=bucket)["indexes"]
    assert [i["indexName"] for i in listed] == [ix]
    s3v.delete_index(indexArn=arn)
    with pytest.raises(ClientError) as exc:
        s3v.get_index(indexArn=arn)
    assert err(exc) == ("NotFoundException", "The specified index could not be found", 404)
    with pytest.raises(ClientError) as exc:
        s3v.list_tags_for_resource(resourceArn=arn)
    assert err(exc) == ("NotFoundException", "The specified resource could not be found", 404)


def test_index_errors(s3v: Any, index: tuple[str, str]) -> None:
    b, ix = index
    base = {"vectorBucketName": b, "dataType": "float32", "distanceMetric": "cosine"}
    with pytest.raises(ClientError) as exc:
        s3v.create_index(indexName=ix, dimension=4, **base)
    assert err(exc) == ("ConflictException", "An index with the specified name already exists", 409)
    with pytest.raises(ClientError) as exc:
        s3v.create_index(indexName=name(), dimension=4097, **base)
    assert err(exc)[1] == (
        "1 validation error detected. Value 4097 at '/dimension' failed to satisfy constraint: "
        "Member must be between 1 and 4096, inclusive"
    )
    with pytest.raises(ClientError) as exc:
        s3v.create_index(indexName=name(), dimension=4, **{**base, "distanceMetric": "dot"})
    assert err(exc)[1].endswith("Member must satisfy enum value set: [euclidean, cosine]")
    with pytest.raises(ClientError) as exc:
        s3v.create_index(
            indexName=name(), dimension=4, metadataConfiguration={"nonFilterableMetadataKeys": [f"k{i}" for i in range(11)]},  # noqa: E501
            **base,
        )  # fmt: skip
    assert err(exc)[1] == (
        "1 validation error detected. Value with length 11 at '/metadataConfiguration/nonFilterableMetadataKeys' "
        "failed to satisfy constraint: Member must have length between 0 and 10, inclusive"
    )
    with pytest.raises(ClientError) as exc:
        s3v.create_index(indexName="Bad_Name", dimension=4, **base)
    assert err(exc) == ("ValidationException", "Invalid index name", 400)
    with pytest.raises(ClientError) as exc:
        s3v.create_index(indexName=name(), dimension=4, **{**base, "vectorBucketName": name()})
    assert err(exc) == ("NotFoundException", "The specified vector bucket could not be found", 404)
    with pytest.raises(ClientError) as exc:
        s3v.get_index(vectorBucketName=b, indexName=name())
    assert err(exc) == ("NotFoundException", "The specified index could not be found", 404)
    with pytest.raises(ClientError) as exc:
        s3v.get_index(vectorBucketName=b)
    assert err(exc) == (
        "ValidationException",
        "Must specify either indexArn or both vectorBucketName and indexName",
        400,
    )
    with pytest.raises(ClientError) as exc:
        s3v.get_index(indexArn="arn:aws:s3vectors:us-west-2:000000000000:bucket/nope")
    assert err(exc)[0] == "ValidationException"


def test_list_indexes_paging_and_quota(endpoint: EndpointHandle, s3v: Any, bucket: str) -> None:
    names = sorted(name("i") for _ in range(4))
    for n in names:
        s3v.create_index(vectorBucketName=bucket, indexName=n, dataType="float32", dimension=2, distanceMetric="cosine")
    pages = list(s3v.get_paginator("list_indexes").paginate(vectorBucketName=bucket, PaginationConfig={"PageSize": 3}))
    assert [i["indexName"] for p in pages for i in p["indexes"]] == names
    assert len(pages) == 2
    assert [i["indexName"] for i in s3v.list_indexes(vectorBucketName=bucket, prefix=names[0])["indexes"]] == [names[0]]
    endpoint.admin._request("PUT", "s3vectors/limits", {"max_indexes_per_bucket": 4})
    try:
        with pytest.raises(ClientError) as exc:
            s3v.create_index(
                vectorBucketName=bucket, indexName=name(), dataType="float32", dimension=2, distanceMetric="cosine"
            )
        assert err(exc) == (
            "ServiceQuotaExceededException",
            "You have reached the maximum number of indexes allowed in this vector bucket",
            402,
        )
    finally:
        endpoint.admin._request("PUT", "s3vectors/limits", {"max_indexes_per_bucket": 10_000})


def test_tags(s3v: Any, index: tuple[str, str]) -> None:
    b, ix = index
    arn = s3v.get_index(vectorBucketName=b, indexName=ix)["index"]["indexArn"]
    s3v.tag_resource(resourceArn=arn, tags={"a": "1", "b": "2"})
    s3v.tag_resource(resourceArn=arn, tags={"b": "3"})
    assert s3v.list_tags_for_resource(resourceArn=arn)["tags"] == {"a": "1", "b": "3"}
    s3v.untag_resource(resourceArn=arn, tagKeys=["a", "zz"])
    assert s3v.list_tags_for_resource(resourceArn=arn)["tags"] == {"b": "3"}
    with pytest.raises(ClientError) as exc:
        s3v.tag_resource(resourceArn=arn, tags={f"k{i}": "v" for i in range(50)})
    assert err(exc) == ("ValidationException", "A resource can have at most 50 tags", 400)
    with pytest.raises(ClientError) as exc:
        s3v.tag_resource(resourceArn=arn, tags={"x" * 129: "v"})
    assert "Member must have length between 1 and 128, inclusive" in err(exc)[1]
    with pytest.raises(ClientError) as exc:
        s3v.list_tags_for_resource(resourceArn="arn:aws:s3:::not-vectors")
    assert err(exc) == ("ValidationException", "Invalid resource ARN", 400)


def test_update_index_mode_and_metadata_configuration(s3v: Any, index: tuple[str, str]) -> None:
    b, ix = index
    s3v.update_index_mode(vectorBucketName=b, indexName=ix, indexMode="ENHANCED")
    with pytest.raises(ClientError) as exc:
        s3v.update_index_mode(vectorBucketName=b, indexName=ix, indexMode="CLASSIC")
    assert err(exc)[0] == "ValidationException"
    assert "September 30, 2026" in err(exc)[1]
    arn = s3v.update_metadata_configuration(
        vectorBucketName=b, indexName=ix, add={"textSearchConfigurations": [{"metadataKey": "body", "language": "en"}]}
    )["indexArn"]
    assert arn.endswith(f"/index/{ix}")
    conf = s3v.get_index(indexArn=arn)["index"]["metadataConfiguration"]
    assert conf["textSearchConfigurations"] == [{"metadataKey": "body", "language": "en", "status": "ACTIVE"}]
    with pytest.raises(ClientError) as exc:
        s3v.update_metadata_configuration(indexArn=arn, add={"textSearchConfigurations": [{"metadataKey": "body"}]})
    assert err(exc) == ("ConflictException", "A text search configuration already exists for metadata key 'body'", 409)
    with pytest.raises(ClientError) as exc:
        s3v.update_metadata_configuration(indexArn=arn)
    assert err(exc) == ("ValidationException", "Specify either add or delete, but not both", 400)
    with pytest.raises(ClientError) as exc:
        s3v.update_metadata_configuration(
            indexArn=arn,
            add={"textSearchConfigurations": []},
            delete={"textSearchConfigurations": [{"metadataKey": "x"}]},
        )
    assert err(exc)[1] == "Specify either add or delete, but not both"
    with pytest.raises(ClientError) as exc:
        s3v.update_metadata_configuration(indexArn=arn, delete={"textSearchConfigurations": [{"metadataKey": "nope"}]})
    assert err(exc)[0] == "NotFoundException"
    s3v.update_metadata_configuration(indexArn=arn, delete={"textSearchConfigurations": [{"metadataKey": "body"}]})
    assert "textSearchConfigurations" not in s3v.get_index(indexArn=arn)["index"]["metadataConfiguration"]


# -- vectors ------------------------------------------------------------------------------------
def test_put_get_delete_round_trip_float32(s3v: Any, index: tuple[str, str]) -> None:
    b, ix = index
    data = [0.1, 1 / 3, -2.5e-8, 123456.789]
    s3v.put_vectors(
        vectorBucketName=b, indexName=ix, vectors=[vec("a", data, color="red", n=1, tags=["x", "y"]), vec("b")]
    )
    got = s3v.get_vectors(
        vectorBucketName=b, indexName=ix, keys=["a", "missing", "b"], returnData=True, returnMetadata=True
    )
    by_key = {v["key"]: v for v in got["vectors"]}
    assert list(by_key) == ["a", "b"]
    assert by_key["a"]["data"]["float32"] == np.asarray(data, dtype=np.float32).tolist()
    assert by_key["a"]["metadata"] == {"color": "red", "n": 1, "tags": ["x", "y"]}
    assert by_key["b"]["metadata"] == {}
    keys_only = s3v.get_vectors(vectorBucketName=b, indexName=ix, keys=["a"])["vectors"]
    assert keys_only == [{"key": "a"}]
    # a put of an existing key replaces it, metadata included
    s3v.put_vectors(vectorBucketName=b, indexName=ix, vectors=[vec("a", [1, 1, 1, 1], color="blue")])
    got = s3v.get_vectors(vectorBucketName=b, indexName=ix, keys=["a"], returnData=True, returnMetadata=True)["vectors"]
    assert got == [{"key": "a", "data": {"float32": [1.0, 1.0, 1.0, 1.0]}, "metadata": {"color": "blue"}}]
    s3v.delete_vectors(vectorBucketName=b, indexName=ix, keys=["a", "never-existed"])
    assert [v["key"] for v in s3v.get_vectors(vectorBucketName=b, indexName=ix, keys=["a", "b"])["vectors"]] == ["b"]


@pytest.mark.parametrize(
    ("vectors", "path", "message"),
    [
        ([vec("k", [1.0, 2.0])], "/vectors/0/data/float32", "Invalid record for key 'k': vector must have length 4, but has length 2"),  # noqa: E501
        ([vec("ok"), vec("z", [0.0, 0.0, 0.0, 0.0])], "/vectors/1/data/float32",
         "Invalid record for key 'z': vector must not be a zero vector for the cosine distance metric"),
        ([vec("big", [1e39, 1.0, 1.0, 1.0])], "/vectors/0/data/float32",
         "Invalid record for key 'big': vector must not contain NaN or infinite values"),
        ([vec("nan", [float("nan"), 1.0, 1.0, 1.0])], "/vectors/0/data/float32",
         "Invalid record for key 'nan': vector must not contain NaN or infinite values"),
        ([vec("m", nested={"a": 1})], "/vectors/0/metadata",
         "Invalid record for key 'm': metadata key 'nested' must be a string, number, boolean or an array of them"),
        ([vec("m", **{f"k{i}": i for i in range(51)})], "/vectors/0/metadata",
         "Invalid record for key 'm': metadata must have at most 50 keys, but has 51"),
        ([vec("m", f="x" * 2100)], "/vectors/0/metadata",
         "Invalid record for key 'm': filterable metadata size 2108 bytes exceeds the limit of 2048 bytes"),
        ([vec("m", body="x" * 41000)], "/vectors/0/metadata",
         "Invalid record for key 'm': metadata size 41011 bytes exceeds the limit of 40960 bytes"),
    ],
)  # fmt: skip
def test_put_vectors_rejects_whole_request(
    s3v: Any, index: tuple[str, str], vectors: list[dict[str, Any]], path: str, message: str
) -> None:
    b, ix = index
    with pytest.raises(ClientError) as exc:
        s3v.put_vectors(vectorBucketName=b, indexName=ix, vectors=vectors)
    assert err(exc) == ("ValidationException", message, 400)
    assert exc.value.response["fieldList"][0] == {"path": path, "message": message}
    # nothing from the request was written
    keys = [v["key"] for v in vectors]
    assert s3v.get_vectors(vectorBucketName=b, indexName=ix, keys=keys)["vectors"] == []


def test_put_vectors_limits(s3v: Any, index: tuple[str, str]) -> None:
    b, ix = index
    # 2 KB of filterable metadata fits when the bulk is in a non-filterable key
    s3v.put_vectors(vectorBucketName=b, indexName=ix, vectors=[vec("fits", body="x" * 30000, f="y" * 1000)])
    with pytest.raises(ClientError) as exc:
        s3v.put_vectors(vectorBucketName=b, indexName=ix, vectors=[vec(f"k{i}") for i in range(501)])
    assert err(exc)[1] == (
        "1 validation error detected. Value with length 501 at '/vectors' failed to satisfy constraint: "
        "Member must have length between 1 and 500, inclusive"
    )
    with pytest.raises(ClientError) as exc:
        s3v.put_vectors(vectorBucketName=b, indexName=ix, vectors=[vec("k" * 1025)])
    assert err(exc)[1] == (
        "1 validation error detected. Value with length 1025 at '/vectors/0/key' failed to satisfy constraint: "
        "Member must have length between 1 and 1024, inclusive"
    )
    s3v.put_vectors(vectorBucketName=b, indexName=ix, vectors=[vec("k" * 1024)] + [vec(f"n{i}") for i in range(499)])
    with pytest.raises(ClientError) as exc:
        s3v.get_vectors(vectorBucketName=b, indexName=ix, keys=[f"n{i}" for i in range(101)])
    assert "Member must have length between 1 and 100, inclusive" in err(exc)[1]
    with pytest.raises(ClientError) as exc:
        s3v.delete_vectors(vectorBucketName=b, indexName=ix, keys=[f"n{i}" for i in range(501)])
    assert "Member must have length between 1 and 500, inclusive" in err(exc)[1]
    with pytest.raises(ClientError) as exc:
        s3v.put_vectors(vectorBucketName=b, indexName=name(), vectors=[vec("a")])
    assert err(exc) == ("NotFoundException", "The specified index could not be found", 404)


def test_vector_quota(endpoint: EndpointHandle, s3v: Any, index: tuple[str, str]) -> None:
    b, ix = index
    s3v.put_vectors(vectorBucketName=b, indexName=ix, vectors=[vec("a"), vec("b")])
    endpoint.admin._request("PUT", "s3vectors/limits", {"max_vectors_per_index": 2})
    try:
        s3v.put_vectors(vectorBucketName=b, indexName=ix, vectors=[vec("a")])  # replacing is fine
        with pytest.raises(ClientError) as exc:
            s3v.put_vectors(vectorBucketName=b, indexName=ix, vectors=[vec("c")])
        assert err(exc) == (
            "ServiceQuotaExceededException",
            "You have reached the maximum number of vectors allowed in this index",
            402,
        )
    finally:
        endpoint.admin._request("PUT", "s3vectors/limits", {"max_vectors_per_index": 2_000_000_000})


def test_euclidean_allows_zero_vectors_and_index_arn_addressing(s3v: Any, bucket: str) -> None:
    arn = s3v.create_index(
        vectorBucketName=bucket, indexName=name(), dataType="float32", dimension=2, distanceMetric="euclidean"
    )["indexArn"]
    s3v.put_vectors(indexArn=arn, vectors=[{"key": "zero", "data": {"float32": [0.0, 0.0]}}])
    res = s3v.query_vectors(indexArn=arn, topK=1, queryVector={"float32": [3.0, 4.0]}, returnDistance=True)
    assert res["vectors"] == [{"key": "zero", "distance": 5.0}]
    assert res["distanceMetric"] == "euclidean"


def test_query_errors(s3v: Any, index: tuple[str, str]) -> None:
    b, ix = index
    s3v.put_vectors(vectorBucketName=b, indexName=ix, vectors=[vec("a", color="red")])
    q = {"vectorBucketName": b, "indexName": ix}
    cases: list[tuple[dict[str, Any], str]] = [
        ({"topK": 10001, "queryVector": {"float32": [1, 0, 0, 0]}},
         "Value 10001 at '/topK' failed to satisfy constraint: Member must be between 1 and 10000, inclusive"),
        ({"topK": 1}, "A request must include queryVector, queryTexts, or both"),
        ({"topK": 1, "queryVector": {"float32": [1, 0]}}, "Invalid query vector: vector must have length 4, but has length 2"),  # noqa: E501
        ({"topK": 1, "queryVector": {"float32": [0, 0, 0, 0]}},
         "Invalid query vector: vector must not be a zero vector for the cosine distance metric"),
        ({"topK": 1, "queryVector": {"float32": [1, 0, 0, 0]}, "filter": {"body": "x"}},
         "Invalid filter: metadata key 'body' is not filterable"),
        ({"topK": 1, "queryVector": {"float32": [1, 0, 0, 0]}, "filter": {"n": {"$gt": "3"}}},
         "Invalid filter: $gt requires a number"),
        ({"topK": 1, "queryVector": {"float32": [1, 0, 0, 0]}, "queryMode": "CLASSIC"},
         "You can't specify CLASSIC for an ENHANCED index"),
        ({"topK": 1, "queryTexts": [{"text": "x", "metadataKey": "color"}]},
         "Metadata key 'color' is not a searchable metadata key"),
        ({"topK": 1, "queryVector": {"float32": [1, 0, 0, 0]}, "nextToken": "bogus"},
         "The provided pagination token is invalid"),
    ]  # fmt: skip
    for extra, message in cases:
        with pytest.raises(ClientError) as exc:
            s3v.query_vectors(**q, **extra)
        assert err(exc) == ("ValidationException", message, 400), extra


def test_payload_and_body_errors(endpoint: EndpointHandle) -> None:
    import urllib.error
    import urllib.request

    req = urllib.request.Request(f"{endpoint.url}/GetVectorBucket", data=b"{not json", method="POST")
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(req)
    assert exc.value.code == 400
    assert exc.value.headers["x-amzn-ErrorType"] == "SerializationException"
    req = urllib.request.Request(f"{endpoint.url}/NoSuchOperation", data=b"{}", method="POST")
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(req)
    assert exc.value.code == 404


def test_payload_over_20_mib_is_rejected(endpoint: EndpointHandle) -> None:
    import urllib.error
    import urllib.request

    body = b'{"vectorBucketName": "x", "pad": "' + b"p" * (20 * 1024 * 1024) + b'"}'
    req = urllib.request.Request(f"{endpoint.url}/GetVectorBucket", data=body, method="POST")
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(req)
    assert exc.value.code == 400
    assert exc.value.headers["x-amzn-ErrorType"] == "ValidationException"
    assert json.loads(exc.value.read())["message"] == "Request payload size exceeds the limit of 20 MiB"


def test_plain_boto3_client_from_environment(aws_env: EndpointHandle, monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3

    b = name("env")
    boto3.client("s3vectors").create_vector_bucket(vectorBucketName=b)
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3VECTORS", aws_env.url)
    assert boto3.client("s3vectors").get_vector_bucket(vectorBucketName=b)["vectorBucket"]["vectorBucketName"] == b
