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

from sync.aws.embedders import (
    CohereEmbedder,
    CohereV4Embedder,
    NovaEmbedder,
    TitanEmbedder,
    for_model,
    foundation_model,
)
from sync.aws.embedders.bedrock import token_bound
from sync.aws.retry import RetryPolicy
from sync.errors import EmbeddingError, RowError, SyncDefinitionError, TransientAwsError


def _error(code: str, status: int) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": f"{code}!"}, "ResponseMetadata": {"HTTPStatusCode": status}},
                       "InvokeModel")


class FakeBedrock:
    """Answers InvokeModel like Bedrock (each model family's response shape); texts containing
    BAD are refused; a request of more than ``max_chars`` characters in all is refused as too
    many tokens; throttles on demand."""

    def __init__(self, dims: int, throttle_first: int = 0, delay: float = 0.0, max_chars: int | None = None) -> None:
        self.dims = dims
        self.delay = delay
        self.max_chars = max_chars
        self.bodies: list[dict[str, Any]] = []
        self.models: list[str] = []
        self.throttle_left = throttle_first
        self.lock = threading.Lock()

    def invoke_model(self, *, modelId: str, body: str, **_: Any) -> dict[str, Any]:  # noqa: N803 - boto3 name
        doc = json.loads(body)
        time.sleep(self.delay)
        with self.lock:
            self.bodies.append(doc)
            self.models.append(modelId)
            if self.throttle_left:
                self.throttle_left -= 1
                raise _error("ThrottlingException", 429)
        if "singleEmbeddingParams" in doc:
            texts = [doc["singleEmbeddingParams"]["text"]["value"]]
        else:
            texts = doc.get("texts") or [doc["inputText"]]
        if any("BAD" in t for t in texts):
            raise _error("ValidationException", 400)
        if self.max_chars is not None and sum(len(t) for t in texts) > self.max_chars:
            raise _error("ValidationException", 400)
        vectors = [[float(len(t))] + [0.0] * (self.dims - 1) for t in texts]
        out: dict[str, Any]
        if "singleEmbeddingParams" in doc:
            out = {"embeddings": [{"embeddingType": "TEXT", "embedding": vectors[0]}]}
        elif "inputText" in doc:
            out = {"embedding": [0.5] * self.dims, "embeddingsByType": {"float": vectors[0]}} \
                if doc.get("embeddingTypes") else {"embedding": vectors[0]}
        elif doc.get("embedding_types"):
            out = {"embeddings": {"float": vectors}, "response_type": "embeddings_by_type"}
        else:
            out = {"embeddings": vectors, "response_type": "embeddings_floats"}
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
    assert all(b == {"inputText": b["inputText"], "dimensions": 256, "normalize": True, "embeddingTypes": ["float"]}
               for b in client.bodies)  # the user guide's v2 request; embeddingsByType.float is read back


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
    sizes = [len(b["texts"]) for b in client.bodies]
    assert (sizes.count(96), sizes.count(8)) == (2, 1)  # 96 + 96 + 8, then the refused batch in halves
    assert [b["texts"] for b in client.bodies if len(b["texts"]) == 1 and "BAD one" in b["texts"]] == [["BAD one"]]
    assert out.calls == len(client.bodies) < 3 + 2 * 8  # halving: about 2 log2(96) calls, not 96
    assert isinstance(out.vectors[150], RowError)
    assert all(isinstance(v, np.ndarray) and v[0] == len(texts[i]) for i, v in enumerate(out.vectors) if i != 150)
    assert client.bodies[0] == {"texts": client.bodies[0]["texts"], "input_type": "search_document",
                                "truncate": "NONE", "embedding_types": ["float"]}


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
    assert type(for_model("cohere.embed-v4:0", 256, True, FakeBedrock(256))) is CohereV4Embedder
    assert isinstance(for_model("amazon.nova-2-multimodal-embeddings-v1:0", 384, True, None), NovaEmbedder)
    with pytest.raises(SyncDefinitionError):
        for_model("openai.ada", 1, True, None)


def test_an_inference_profile_is_invoked_as_it_is_with_its_models_shapes() -> None:
    assert foundation_model("global.cohere.embed-v4:0") == "cohere.embed-v4:0"
    assert foundation_model("us-gov.amazon.titan-embed-text-v2:0") == "amazon.titan-embed-text-v2:0"
    assert foundation_model("cohere.embed-v4:0") == "cohere.embed-v4:0"
    client = FakeBedrock(256)
    emb = for_model("eu.cohere.embed-v4:0", 256, False, client)
    assert type(emb) is CohereV4Embedder
    emb.embed(["a"])
    assert client.bodies[0]["output_dimension"] == 256
    assert client.models == ["eu.cohere.embed-v4:0"]


def test_cohere_v4_asks_for_its_dimension_and_packs_calls_by_tokens() -> None:
    client = FakeBedrock(512)
    emb = CohereV4Embedder(client, "cohere.embed-v4:0", 512, False, concurrency=2, policy=FAST)
    texts = ["é" * 20_000] * 7 + ["short"] * 3  # 40,000 bytes each: three fit in 128,000 tokens
    out = emb.embed(texts)
    assert all(isinstance(v, np.ndarray) and v.shape == (512,) for v in out.vectors)
    assert all(sum(token_bound(t) for t in b["texts"]) <= 128_000 for b in client.bodies)
    assert sorted(len(b["texts"]) for b in client.bodies) == [3, 3, 4]  # the limit split the batch
    assert out.calls == 3
    assert client.bodies[0] == {"texts": client.bodies[0]["texts"], "input_type": "search_document",
                                "truncate": "NONE", "embedding_types": ["float"], "output_dimension": 512}


def test_a_batch_refused_for_its_size_is_split_not_failed() -> None:
    # Bedrock counts tokens its own way: a batch it finds too long is halved until it fits
    client = FakeBedrock(8, max_chars=250)
    emb = CohereV4Embedder(client, "cohere.embed-v4:0", 8, False, policy=FAST)
    texts = ["x" * 100] * 8
    out = emb.embed(texts)
    assert all(isinstance(v, np.ndarray) for v in out.vectors)
    assert [len(b["texts"]) for b in client.bodies] == [8, 4, 2, 2, 4, 2, 2]


def test_nova_request_is_the_documented_single_embedding() -> None:
    client = FakeBedrock(384)
    emb = NovaEmbedder(client, "amazon.nova-2-multimodal-embeddings-v1:0", 384, True, policy=FAST)
    a, bad = emb.embed(["hello world", "BAD"]).vectors
    assert isinstance(a, np.ndarray)
    assert a.shape == (384,)
    assert a[0] == pytest.approx(1.0)  # normalised by s3vl: Nova's vectors are taken as they come
    assert isinstance(bad, RowError)
    hello = next(b for b in client.bodies if b["singleEmbeddingParams"]["text"]["value"] == "hello world")
    assert hello == {"taskType": "SINGLE_EMBEDDING", "singleEmbeddingParams": {
        "embeddingPurpose": "GENERIC_INDEX", "embeddingDimension": 384,
        "text": {"truncationMode": "NONE", "value": "hello world"}}}


@pytest.mark.parametrize(("model", "dims"), [("amazon.titan-embed-text-v2:0", 256), ("cohere.embed-v4:0", 256),
                                             ("amazon.nova-2-multimodal-embeddings-v1:0", 256),
                                             ("cohere.embed-english-v3", 1024)])
def test_plan_and_answer_without_a_call(model: str, dims: int) -> None:
    """What batch inference relies on: the calls an embedder would make, and reading an answer back."""
    client = FakeBedrock(dims)
    emb = for_model(model, dims, False, client)
    texts = ["one", "x" * 200_000, "three"]
    calls, refused = emb.plan(texts)
    assert list(refused) == [1]
    assert client.bodies == []
    assert sorted(i for c in calls for i in c.indices) == [0, 2]
    for c in calls:
        raw = client.invoke_model(modelId=model, body=json.dumps(c.body))["body"].read()
        vectors = emb.answer(json.loads(raw), len(c.indices))
        assert [float(v[0]) for v in vectors if isinstance(v, np.ndarray)] == [float(len(texts[i])) for i in c.indices]


def test_the_sql_model_table_matches_the_embedders() -> None:
    """s3vl.embedding_models() (what create_sync accepts) and the worker's registry agree."""
    import re
    from pathlib import Path

    sql = (Path(__file__).parents[4] / "sql" / "idempotent" / "200-sync-sql.sql").read_text()
    rows = re.findall(r"\('([a-z0-9.:-]+)', ARRAY\[([0-9, ]+)\], (\d+), (\d+)\)", sql)
    assert len(rows) == 6
    for model, dims, max_batch, max_chars in rows:
        emb = for_model(model, int(dims.split(",")[0]), True, None)
        assert (emb.max_batch, emb.max_chars) == (int(max_batch), int(max_chars)), model


@pytest.mark.parametrize(("code", "message"), [
    ("AccessDeniedException", "You don't have access to the model with the specified model ID."),
    ("ResourceNotFoundException", "Could not resolve the foundation model"),
    ("ValidationException", "The provided model identifier is invalid."),
    ("ValidationException", "Invocation of model ID cohere.embed-v4:0 with on-demand throughput isn't supported."),
])
def test_a_refused_model_fails_the_sync_not_its_rows(code: str, message: str) -> None:
    class Refusing(FakeBedrock):
        def invoke_model(self, **kwargs: Any) -> dict[str, Any]:
            self.bodies.append(json.loads(kwargs["body"]))
            raise ClientError({"Error": {"Code": code, "Message": message}}, "InvokeModel")

    client = Refusing(8)
    emb = CohereV4Embedder(client, "cohere.embed-v4:0", 8, False, policy=FAST)
    with pytest.raises(EmbeddingError, match=f"Bedrock refused cohere.embed-v4:0: {code}"):
        emb.embed([f"t{i}" for i in range(96)])
    assert len(client.bodies) == 1  # no halving, no text retried alone


def test_every_copy_of_the_inference_profile_prefixes_agrees() -> None:
    """The worker, the query Lambda, the local Bedrock and SQL each strip the same geographies."""
    import re
    from pathlib import Path

    from sync.aws import embedders

    root = Path(__file__).parents[4]

    def prefixes(pattern: str) -> set[str]:
        match = re.search(r"\^\(([a-z|-]+)\)", pattern)
        assert match, pattern
        return set(match.group(1).split("|"))

    want = prefixes(embedders._PROFILE.pattern)
    sql = (root / "sql" / "idempotent" / "200-sync-sql.sql").read_text()
    lam = (root / "lambda" / "s3vl_query" / "operations.py").read_text()
    local = (root / "local" / "s3vl_local" / "endpoint" / "bedrock" / "models.py").read_text()
    for text in (sql, lam, local):
        assert prefixes(text[text.index("^("):]) == want
