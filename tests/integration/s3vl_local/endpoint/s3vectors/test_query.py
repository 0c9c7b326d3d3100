"""QueryVectors through boto3 against a brute-force numpy reference, plus paging, ties,
full-text and hybrid search."""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np
import pytest
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, given, settings

from s3vl_local.endpoint.s3vectors.filters import matches
from tests.unit.s3vl_local.endpoint.s3vectors.test_filters import filters

CATS = ["a", "b", "c", "d"]


def name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def make_index(s3v: Any, dim: int, metric: str, **extra: Any) -> str:
    b = name("q")
    s3v.create_vector_bucket(vectorBucketName=b)
    return str(
        s3v.create_index(
            vectorBucketName=b, indexName="idx", dataType="float32", dimension=dim, distanceMetric=metric, **extra
        )["indexArn"]
    )


def random_metadata(rng: np.random.Generator, i: int) -> dict[str, Any]:
    md: dict[str, Any] = {"cat": CATS[i % 4], "n": int(rng.integers(0, 100)), "even": i % 2 == 0}
    if i % 3 == 0:
        md["tags"] = [CATS[int(rng.integers(0, 4))], CATS[int(rng.integers(0, 4))]]
    return md


def load(s3v: Any, arn: str, data: np.ndarray, metas: list[dict[str, Any]]) -> list[str]:
    keys = [f"k{i:05d}" for i in range(len(data))]
    for start in range(0, len(keys), 500):
        s3v.put_vectors(
            indexArn=arn,
            vectors=[
                {"key": keys[i], "data": {"float32": data[i].tolist()}, "metadata": metas[i]}
                for i in range(start, min(start + 500, len(keys)))
            ],
        )
    return keys


def reference(data: np.ndarray, q: np.ndarray, metric: str) -> np.ndarray:
    d = data.astype(np.float64)
    qq = q.astype(np.float64)
    if metric == "cosine":
        return 1.0 - (d @ qq) / (np.linalg.norm(d, axis=1) * np.linalg.norm(qq))
    return np.linalg.norm(d - qq, axis=1)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_differential_against_numpy(s3v: Any, metric: str) -> None:
    rng = np.random.default_rng(42)
    n, dim = 3000, 24
    data = rng.standard_normal((n, dim)).astype(np.float32)
    metas = [random_metadata(rng, i) for i in range(n)]
    arn = make_index(s3v, dim, metric)
    keys = load(s3v, arn, data, metas)
    flts: list[dict[str, Any] | None] = [
        None,
        {"cat": "b"},
        {"n": {"$gte": 10, "$lt": 40}, "even": True},
        {"$or": [{"tags": "a"}, {"cat": {"$in": ["c", "d"]}}]},
        {"tags": {"$exists": False}, "cat": {"$ne": "a"}},
        {"n": {"$gt": 1000}},
    ]
    for flt in flts:
        for top_k in (1, 10, 37):
            q = rng.standard_normal(dim).astype(np.float32)
            kwargs: dict[str, Any] = {"filter": flt} if flt else {}
            res = s3v.query_vectors(
                indexArn=arn, topK=top_k, queryVector={"float32": q.tolist()}, returnDistance=True, **kwargs
            )
            assert res["distanceMetric"] == metric
            ok = np.array([flt is None or matches(flt, m) for m in metas])
            ref = reference(data, q, metric)
            ref_ok = np.sort(ref[ok])[:top_k]
            got = res["vectors"]
            assert len(got) == min(top_k, int(ok.sum()))
            got_d = np.array([v["distance"] for v in got])
            np.testing.assert_allclose(got_d, ref_ok, rtol=1e-4, atol=1e-5)
            assert np.all(np.diff(got_d) >= 0)
            for v in got:
                i = keys.index(v["key"])
                assert ok[i]
                assert v["distance"] == pytest.approx(ref[i], rel=1e-4, abs=1e-5)


def test_ties_are_broken_by_key_and_results_carry_metadata(s3v: Any) -> None:
    arn = make_index(s3v, 3, "cosine")
    s3v.put_vectors(
        indexArn=arn,
        vectors=[{"key": k, "data": {"float32": [1, 2, 3]}, "metadata": {"k": k}} for k in ["d", "b", "a", "c"]]
        + [{"key": "far", "data": {"float32": [-1, 0, 0]}}],
    )
    res = s3v.query_vectors(indexArn=arn, topK=3, queryVector={"float32": [2, 4, 6]}, returnMetadata=True)
    assert [v["key"] for v in res["vectors"]] == ["a", "b", "c"]
    assert [v["metadata"] for v in res["vectors"]] == [{"k": "a"}, {"k": "b"}, {"k": "c"}]
    assert "distance" not in res["vectors"][0]
    res = s3v.query_vectors(indexArn=arn, topK=10, queryVector={"float32": [2, 4, 6]}, returnMetadata=True)
    assert res["vectors"][-1] == {"key": "far", "metadata": {}}


def test_query_paging_beyond_page_size(s3v: Any) -> None:
    rng = np.random.default_rng(3)
    data = rng.standard_normal((450, 8)).astype(np.float32)
    arn = make_index(s3v, 8, "euclidean")
    keys = load(s3v, arn, data, [{"i": i} for i in range(450)])
    q = rng.standard_normal(8).astype(np.float32)
    kwargs = {"indexArn": arn, "topK": 420, "queryVector": {"float32": q.tolist()}, "returnDistance": True}
    first = s3v.query_vectors(**kwargs)
    assert len(first["vectors"]) == 100
    assert "nextToken" in first
    # writes between pages do not change the result set of the running query
    s3v.delete_vectors(indexArn=arn, keys=[first["vectors"][0]["key"], keys[-1]])
    pages = [first]
    while "nextToken" in pages[-1]:
        pages.append(s3v.query_vectors(**kwargs, nextToken=pages[-1]["nextToken"]))
    got = [v["key"] for p in pages for v in p["vectors"]]
    assert [len(p["vectors"]) for p in pages] == [100, 100, 100, 100, 20]
    order = np.argsort(reference(data, q, "euclidean"), kind="stable")[:420]
    assert got == [keys[i] for i in order]
    paginated = [v["key"] for p in s3v.get_paginator("query_vectors").paginate(**kwargs) for v in p["vectors"]]
    assert len(paginated) == 420
    with pytest.raises(ClientError) as exc:
        s3v.query_vectors(**{**kwargs, "topK": 419}, nextToken=first["nextToken"])
    assert exc.value.response["Error"]["Message"] == (
        "The pagination token does not match the query. Use the same parameters as the original query."
    )


@pytest.fixture(scope="module")
def filter_index(endpoint: Any) -> tuple[str, list[dict[str, Any]], list[str]]:
    s3v = endpoint.client()
    rng = np.random.default_rng(11)
    pool: list[Any] = ["x", "y", "z", -3, 0, 1, 3, 0.5, -1.5, 2.0, True, False]

    def value() -> Any:
        if rng.random() < 0.25:
            return [pool[int(i)] for i in rng.integers(0, len(pool), size=int(rng.integers(0, 4)))]
        return pool[int(rng.integers(0, len(pool)))]

    metas = [{k: value() for k in ["a", "b", "c"] if rng.random() < 0.7} for _ in range(80)]
    data = rng.standard_normal((80, 4)).astype(np.float32) + 5
    arn = make_index(s3v, 4, "euclidean")
    keys = load(s3v, arn, data, metas)
    return arn, metas, keys


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(flt=filters)
def test_filter_language_matches_reference(
    s3v: Any, filter_index: tuple[str, list[dict[str, Any]], list[str]], flt: dict[str, Any]
) -> None:
    arn, metas, keys = filter_index
    res = s3v.query_vectors(indexArn=arn, topK=100, queryVector={"float32": [5.0, 5.0, 5.0, 5.0]}, filter=flt)
    expected = {k for k, m in zip(keys, metas, strict=True) if matches(flt, m)}
    assert {v["key"] for v in res["vectors"]} == expected


def test_full_text_and_hybrid_search(s3v: Any) -> None:
    arn = make_index(
        s3v, 2, "cosine",
        metadataConfiguration={"nonFilterableMetadataKeys": ["body"],
                               "textSearchConfigurations": [{"metadataKey": "body"}, {"metadataKey": "title"}]},
    )  # fmt: skip
    docs = {
        "d1": ([1.0, 0.0], "red running shoes", "Shoes", "x"),
        "d2": ([0.0, 1.0], "red red red hat for the sun", "Hat", "x"),
        "d3": ([0.7, 0.7], "blue running shoes", "Shoes", "y"),
        "d4": ([1.0, 0.1], "green scarf", "Scarf", "x"),
    }
    s3v.put_vectors(
        indexArn=arn,
        vectors=[
            {"key": k, "data": {"float32": v}, "metadata": {"body": body, "title": title, "grp": g}}
            for k, (v, body, title, g) in docs.items()
        ],
    )
    text_only = s3v.query_vectors(
        indexArn=arn, topK=10, queryTexts=[{"text": "red", "metadataKey": "body"}], returnScores=True
    )
    assert [v["key"] for v in text_only["vectors"]] == ["d2", "d1"]
    scores = text_only["vectors"][0]["scores"]
    assert [s["metadataKey"] for s in scores["bm25Scores"]] == ["body"]
    assert "fused" not in scores
    assert scores["bm25Scores"][0]["score"] > text_only["vectors"][1]["scores"]["bm25Scores"][0]["score"]
    # filters apply to text search too
    filtered = s3v.query_vectors(
        indexArn=arn, topK=10, queryTexts=[{"text": "shoes", "metadataKey": "body"}], filter={"grp": "y"}
    )
    assert [v["key"] for v in filtered["vectors"]] == ["d3"]
    # hybrid: RRF over the vector ranking and the text ranking
    hybrid = s3v.query_vectors(
        indexArn=arn,
        topK=2,
        queryVector={"float32": [1.0, 0.05]},
        queryTexts=[{"text": "shoes", "metadataKey": "body"}],
        returnScores=True,
        returnDistance=True,
    )
    got = hybrid["vectors"]
    # vector ranking: d4, d1 (topK=2 each); text ranking: d1, d3 (equal BM25, key order)
    assert [v["key"] for v in got] == ["d1", "d4"]
    assert got[0]["scores"]["fused"] == pytest.approx(1 / 62 + 1 / 61)
    assert got[1]["scores"]["fused"] == pytest.approx(1 / 61)
    assert got[0]["scores"]["vectorDistance"] == pytest.approx(got[0]["distance"])
    assert got[1]["scores"]["bm25Scores"] == []
    assert got[0]["scores"]["bm25Scores"][0]["metadataKey"] == "body"
    multi = s3v.query_vectors(
        indexArn=arn, topK=5,
        queryTexts=[{"text": "shoes", "metadataKey": "body"}, {"text": "hat", "metadataKey": "title"}],
    )  # fmt: skip
    assert {v["key"] for v in multi["vectors"]} == {"d1", "d2", "d3"}
    with pytest.raises(ClientError) as exc:
        s3v.query_vectors(
            indexArn=arn, topK=1,
            queryTexts=[{"text": "a", "metadataKey": "body"}, {"text": "b", "metadataKey": "body"}],
        )  # fmt: skip
    assert exc.value.response["Error"]["Message"] == (
        "Each entry in queryTexts must target a distinct searchable metadata key"
    )
