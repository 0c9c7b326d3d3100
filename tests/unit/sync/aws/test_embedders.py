"""Bedrock embedders against a fake client: request bodies, batching, per-text failures, throttling."""

from __future__ import annotations

import io
import json
import threading
import time
from typing import Any

import numpy as np
import pytest
from botocore.exceptions import ClientError

from sync.aws.embedders import CohereEmbedder, TitanEmbedder, for_model
from sync.aws.retry import RetryPolicy
from sync.errors import EmbeddingError, RowError, SyncDefinitionError, TransientAwsError


def _error(code: str, status: int) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": f"{code}!"}, "ResponseMetadata": {"HTTPStatusCode": status}},
                       "InvokeModel")


class FakeBedrock:
    """Answers InvokeModel like Bedrock; texts containing BAD are refused; throttles on demand."""

    def __init__(self, dims: int, throttle_first: int = 0, delay: float = 0.0) -> None:
        self.dims = dims
        self.delay = delay
        self.bodies: list[dict[str, Any]] = []
        self.throttle_left = throttle_first
        self.lock = threading.Lock()

    def invoke_model(self, *, modelId: str, body: str, **_: Any) -> dict[str, Any]:  # noqa: N803 - boto3 name
        doc = json.loads(body)
        time.sleep(self.delay)
        with self.lock:
            self.bodies.append(doc)
            if self.throttle_left:
                self.throttle_left -= 1
                raise _error("ThrottlingException", 429)
        texts = doc.get("texts") or [doc["inputText"]]
        if any("BAD" in t for t in texts):
            raise _error("ValidationException", 400)
        vectors = [[float(len(t))] + [0.0] * (self.dims - 1) for t in texts]
        out = {"embedding": vectors[0]} if "inputText" in doc else {"embeddings": vectors}
        return {"body": io.BytesIO(json.dumps(out).encode())}


FAST = RetryPolicy(attempts=5, base=0.001, cap=0.002)


def test_titan_one_text_per_call_with_dimensions() -> None:
    client = FakeBedrock(256)
    emb = TitanEmbedder(client, "amazon.titan-embed-text-v2:0", 256, True, concurrency=3, policy=FAST)
    out = emb.embed(["a", "bb", "BAD", "dddd"])
    assert out.calls == 4
    assert [float(v[0]) if isinstance(v, np.ndarray) else "err" for v in out.vectors] == [1.0, 2.0, "err", 4.0]
    assert all(v.dtype == np.float32 and v.shape == (256,) for v in out.vectors if isinstance(v, np.ndarray))
    assert isinstance(out.vectors[2], RowError)
    assert "ValidationException" in str(out.vectors[2])
    assert all(b["dimensions"] == 256 and b["normalize"] is True for b in client.bodies)


def test_titan_refuses_overlong_text_without_a_call() -> None:
    client = FakeBedrock(256)
    emb = TitanEmbedder(client, "amazon.titan-embed-text-v2:0", 256, True, policy=FAST)
    (result,) = emb.embed(["x" * 50_001]).vectors
    assert isinstance(result, RowError)
    assert client.bodies == []


def test_titan_retries_throttling_and_halves_concurrency() -> None:
    client = FakeBedrock(256, throttle_first=2)
    emb = TitanEmbedder(client, "amazon.titan-embed-text-v2:0", 256, True, concurrency=8, policy=FAST)
    out = emb.embed(["a"])
    assert isinstance(out.vectors[0], np.ndarray)
    assert emb.limit.limit == 4  # halved once: the second throttle came within the cool-down


def test_titan_gives_up_on_persistent_throttling() -> None:
    client = FakeBedrock(256, throttle_first=100)
    emb = TitanEmbedder(client, "amazon.titan-embed-text-v2:0", 256, True, policy=RetryPolicy(attempts=3, base=0.001))
    with pytest.raises(TransientAwsError):
        emb.embed(["a"])


def test_cohere_batches_96_and_isolates_bad_texts() -> None:
    client = FakeBedrock(1024)
    emb = CohereEmbedder(client, "cohere.embed-english-v3", 1024, False, concurrency=2, policy=FAST)
    texts = [f"text {i}" for i in range(200)]
    texts[150] = "BAD one"
    out = emb.embed(texts)
    batch_sizes = sorted(len(b["texts"]) for b in client.bodies)
    assert batch_sizes[-3:] == [8, 96, 96]            # 96 + 96 + 8, then the refused batch text by text
    assert sum(1 for b in client.bodies if len(b["texts"]) == 1) == 96
    assert isinstance(out.vectors[150], RowError)
    assert all(isinstance(v, np.ndarray) for i, v in enumerate(out.vectors) if i != 150)
    assert client.bodies[0]["input_type"] == "search_document"


class CannedBedrock:
    """Answers every InvokeModel with the same embeddings."""

    def __init__(self, embeddings: Any) -> None:
        self.embeddings = embeddings

    def invoke_model(self, **_: Any) -> dict[str, Any]:
        return {"body": io.BytesIO(json.dumps({"embeddings": self.embeddings}).encode())}


def test_cohere_normalises_to_float32_unit_vectors() -> None:
    emb = CohereEmbedder(CannedBedrock([[3.0, 4.0], [0.0, 0.0]]), "cohere.embed-english-v3", 2, True, policy=FAST)
    unit, zero = emb.embed(["a", "b"]).vectors
    assert isinstance(unit, np.ndarray)
    assert unit.dtype == np.float32
    assert unit.tolist() == pytest.approx([0.6, 0.8])
    assert isinstance(zero, np.ndarray)
    assert zero.tolist() == [0.0, 0.0]  # nothing to normalise: stored as the model gave it


def test_a_non_finite_vector_fails_its_text_and_a_wrong_dimension_the_sync() -> None:
    emb = CohereEmbedder(CannedBedrock([[1.0, float("nan")], [1.0, 2.0]]), "cohere.embed-english-v3", 2, False,
                         policy=FAST)
    bad, good = emb.embed(["a", "b"]).vectors
    assert isinstance(bad, RowError)
    assert "NaN or infinite" in str(bad)
    assert isinstance(good, np.ndarray)
    wrong = CohereEmbedder(CannedBedrock([[1.0, 2.0, 3.0]]), "cohere.embed-english-v3", 2, False, policy=FAST)
    with pytest.raises(EmbeddingError, match="returned 3 dimensions for 1 text"):
        wrong.embed(["a"])


def test_titan_concurrency_grows_while_bedrock_keeps_up() -> None:
    emb = TitanEmbedder(FakeBedrock(8, delay=0.005), "amazon.titan-embed-text-v2:0", 8, True, concurrency=2,
                        max_concurrency=6, policy=FAST)
    for _ in range(10):
        emb.embed([f"t{i}" for i in range(12)])
    assert emb.limit.limit > 2
    assert emb.limit.limit <= 6


def test_for_model() -> None:
    assert isinstance(for_model("amazon.titan-embed-text-v1", 1536, True, FakeBedrock(1536)), TitanEmbedder)
    assert isinstance(for_model("cohere.embed-multilingual-v3", 1024, True, FakeBedrock(1024)), CohereEmbedder)
    with pytest.raises(SyncDefinitionError):
        for_model("openai.ada", 1, True, None)
