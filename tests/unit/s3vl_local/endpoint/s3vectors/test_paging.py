"""Paging tokens, segments, BM25/RRF, fault configuration and model checks (pure logic)."""

from __future__ import annotations

from collections import Counter

import pytest

from s3vl_local.endpoint.faults import FaultConfig, Faults
from s3vl_local.endpoint.s3vectors import model
from s3vl_local.endpoint.s3vectors.paging import TokenError, decode_token, encode_token, segment_of
from s3vl_local.endpoint.s3vectors.text import TextIndex, rrf, tokenize


def test_token_round_trip_and_garbage() -> None:
    state = {"k": "clé/ünïcode#1", "seg": [4, 2]}
    assert decode_token(encode_token(state)) == state
    for bad in ["%%%", "bm90IGpzb24=", encode_token([1, 2])]:  # type: ignore[list-item]
        with pytest.raises(TokenError, match="The provided pagination token is invalid"):
            decode_token(bad)


@pytest.mark.parametrize("count", [1, 2, 3, 7, 16])
def test_segments_partition_keys(count: int) -> None:
    keys = [f"key-{i}" for i in range(2000)]
    seen = Counter(segment_of(k, count) for k in keys)
    assert set(seen) <= set(range(count))
    assert sum(seen.values()) == len(keys)
    if count > 1:  # crc32 spreads keys: no segment is empty or hoards
        assert min(seen.values()) > len(keys) / count / 2
    assert all(segment_of(k, count) == segment_of(k, count) for k in keys[:10])


def test_bm25_ranks_rarer_and_denser_terms_higher() -> None:
    tix = TextIndex()
    tix.add(0, "red shoes for running")
    tix.add(1, "red red red hat")
    tix.add(2, "blue running shoes")
    tix.add(3, "green hat")
    scores = tix.score("red hat")
    assert set(scores) == {0, 1, 3}
    assert scores[1] > scores[3] > 0
    assert scores[1] > scores[0]
    assert tix.score("running", allowed=lambda s: s != 2) == {0: pytest.approx(tix.score("running")[0])}
    tix.remove(1)
    assert 1 not in tix.score("red")
    tix.add(0, "nothing")
    assert tix.score("shoes").keys() == {2}
    assert tokenize("Héllo, WORLD-42!") == ["héllo", "world", "42"]


def test_rrf() -> None:
    fused = rrf([[1, 2, 3], [3, 1]], k=60)
    assert fused[1] == pytest.approx(1 / 61 + 1 / 62)
    assert fused[3] == pytest.approx(1 / 63 + 1 / 61)
    assert fused[2] == pytest.approx(1 / 62)


def test_fault_config_parsing_and_decisions() -> None:
    cfg = FaultConfig.from_json(
        {
            "seed": 1,
            "rules": [{"service": "s3vectors", "operation": "PutVectors", "throttle_fraction": 1.0}],
            "unavailable_fraction": 0.5,
        }
    )
    assert len(cfg.rules) == 2
    faults = Faults(cfg)
    assert faults.decide("s3vectors", "PutVectors").error == "throttle"
    draws = Counter(faults.decide("bedrock", "InvokeModel").error for _ in range(400))
    assert 120 < draws["unavailable"] < 280
    assert draws["throttle"] == 0
    assert Faults().decide("s3vectors", "QueryVectors").error is None
    for bad in [{"bogus": 1}, {"rules": [{"throttle_fraction": 2}]}, {"rules": [{"latency_ms": -1}]},
                {"rules": [{"throttle_fraction": 0.6, "unavailable_fraction": 0.6}]}, {"rules": "x"},
                {"seed": "x"}, {"rules": [{"operation": 3}]}]:  # fmt: skip
        with pytest.raises(ValueError, match=r"must|unknown|seed"):
            FaultConfig.from_json(bad)


def test_model_checks_maximums_with_smithy_wording() -> None:
    problems = model.check_input(
        "ListVectors", {"vectorBucketName": "b" * 64, "indexName": "idx", "maxResults": 1001, "segmentCount": 17}
    )
    assert dict(problems) == {
        "/vectorBucketName": "Value with length 64 at '/vectorBucketName' failed to satisfy constraint: "
        "Member must have length between 3 and 63, inclusive",
        "/maxResults": "Value 1001 at '/maxResults' failed to satisfy constraint: "
        "Member must be between 1 and 1000, inclusive",
        "/segmentCount": "Value 17 at '/segmentCount' failed to satisfy constraint: "
        "Member must be between 1 and 16, inclusive",
    }
    assert model.check_input(
        "CreateIndex", {"indexName": "abc", "dataType": "float16", "dimension": 3, "distanceMetric": "cosine"}
    ) == [
        (
            "/dataType",
            "Value 'float16' at '/dataType' failed to satisfy constraint: "
            "Member must satisfy enum value set: [float32]",
        )
    ]
    assert model.check_input("GetVectors", {"indexArn": "arn:x", "keys": ["k"]})[0][0] == "/indexArn"
    assert model.check_input("DeleteVectors", {"keys": None}) == [
        ("/keys", "Value null at '/keys' failed to satisfy constraint: Member must not be null")
    ]
