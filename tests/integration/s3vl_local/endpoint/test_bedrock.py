"""Local Bedrock Runtime through the unmodified boto3 ``bedrock-runtime`` client."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from botocore.exceptions import ClientError

from tests.support.endpoint import EndpointHandle

TITAN_V2 = "amazon.titan-embed-text-v2:0"
TITAN_V1 = "amazon.titan-embed-text-v1"
COHERE_EN = "cohere.embed-english-v3"
COHERE_ML = "cohere.embed-multilingual-v3"
COHERE_V4 = "cohere.embed-v4:0"
NOVA = "amazon.nova-2-multimodal-embeddings-v1:0"


@pytest.fixture
def br(endpoint: EndpointHandle) -> Any:
    return endpoint.client("bedrock-runtime", retries=1)


def invoke(client: Any, model_id: str, body: Any) -> tuple[dict[str, Any], dict[str, str]]:
    resp = client.invoke_model(modelId=model_id, body=json.dumps(body), contentType="application/json")
    assert resp["contentType"] == "application/json"
    return json.loads(resp["body"].read()), resp["ResponseMetadata"]["HTTPHeaders"]


def error_of(client: Any, model_id: str, body: Any) -> tuple[int, str, str]:
    with pytest.raises(ClientError) as info:
        client.invoke_model(modelId=model_id, body=body if isinstance(body, str | bytes) else json.dumps(body))
    err = info.value.response
    return err["ResponseMetadata"]["HTTPStatusCode"], err["Error"]["Code"], err["Error"]["Message"]


def bedrock_config(endpoint: EndpointHandle, body: dict[str, Any] | None = None) -> dict[str, Any]:
    req = urllib.request.Request(
        f"{endpoint.url}/_s3vl/bedrock/config",
        data=None if body is None else json.dumps(body).encode(),
        method="GET" if body is None else "PUT",
    )
    with urllib.request.urlopen(req, timeout=60) as resp:
        result: dict[str, Any] = json.loads(resp.read())
        return result


def counters(endpoint: EndpointHandle) -> dict[str, int]:
    return endpoint.admin.counters().get("bedrock", {}).get("InvokeModel", {})


def cos(a: list[float], b: list[float]) -> float:
    x, y = np.asarray(a), np.asarray(b)
    return float(x @ y / (np.linalg.norm(x) * np.linalg.norm(y)))


# --- Titan v2 ------------------------------------------------------------------------------------


def test_titan_v2_default_shape(br: Any) -> None:
    body, headers = invoke(br, TITAN_V2, {"inputText": "Waterproof hiking boots"})
    assert set(body) == {"embedding", "inputTextTokenCount", "embeddingsByType"}
    assert len(body["embedding"]) == 1024
    assert np.linalg.norm(body["embedding"]) == pytest.approx(1.0, abs=1e-5)
    assert body["embeddingsByType"] == {"float": body["embedding"]}
    assert isinstance(body["inputTextTokenCount"], int)
    assert body["inputTextTokenCount"] == 3
    assert headers["x-amzn-bedrock-input-token-count"] == "3"


@pytest.mark.parametrize("dimensions", [256, 512, 1024])
def test_titan_v2_dimensions_normalize_and_binary(br: Any, dimensions: int) -> None:
    body, _ = invoke(
        br,
        TITAN_V2,
        {
            "inputText": "a red apple, a red apple",
            "dimensions": dimensions,
            "normalize": False,
            "embeddingTypes": ["float", "binary"],
        },
    )
    floats, binary = body["embeddingsByType"]["float"], body["embeddingsByType"]["binary"]
    assert len(body["embedding"]) == len(floats) == len(binary) == dimensions
    assert np.linalg.norm(floats) > 1.5  # raw (repeated words), not unit length
    assert set(binary) <= {0, 1}
    assert binary == [1 if v > 0 else 0 for v in floats]


def test_titan_v2_binary_only(br: Any) -> None:
    body, _ = invoke(br, TITAN_V2, {"inputText": "x", "dimensions": 256, "embeddingTypes": ["binary"]})
    assert set(body["embeddingsByType"]) == {"binary"}
    assert len(body["embedding"]) == 256


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"inputText": "x", "dimensions": 100}, "#/dimensions: 100 is not a valid enum value"),
        ({"inputText": "x", "dimensions": "256"}, "#/dimensions: expected type: Integer, found: String"),
        ({"inputText": "x" * 50_001}, "#/inputText: expected maxLength: 50000, actual: 50001"),
        ({"inputText": ""}, "#/inputText: expected minLength: 1, actual: 0"),
        ({"inputText": 5}, "#/inputText: expected type: String, found: Integer"),
        ({}, "#: required key [inputText] not found"),
        ({"inputText": "x", "texts": ["y"]}, "#: extraneous key [texts] is not permitted"),
        ({"inputText": "x", "normalize": "yes"}, "#/normalize: expected type: Boolean, found: String"),
        ({"inputText": "x", "embeddingTypes": ["int8"]}, "#/embeddingTypes/0: int8 is not a valid enum value"),
        ({"inputText": "x", "embeddingTypes": []}, "#/embeddingTypes: expected minimum item count: 1, found: 0"),
        (["x"], "#: expected type: JSONObject, found: JSONArray"),
    ],
)
def test_titan_v2_validation_errors(br: Any, body: Any, message: str) -> None:
    status, code, text = error_of(br, TITAN_V2, body)
    assert (status, code) == (400, "ValidationException")
    assert text == f"Malformed input request: {message}, please reformat your input and try again."


def test_titan_v2_too_many_tokens(br: Any) -> None:
    status, code, text = error_of(br, TITAN_V2, {"inputText": "a " * 9000})
    assert (status, code) == (400, "ValidationException")
    assert "Too many input tokens. Max input tokens: 8192, request input token count: 9000" in text


def test_malformed_json_body(br: Any) -> None:
    status, code, text = error_of(br, TITAN_V2, b"{not json")
    assert (status, code) == (400, "ValidationException")
    assert text.startswith("Malformed input request:")


# --- Titan v1 ------------------------------------------------------------------------------------


def test_titan_v1_shape_and_only_input_text(br: Any) -> None:
    body, _ = invoke(br, TITAN_V1, {"inputText": "hello world"})
    assert set(body) == {"embedding", "inputTextTokenCount"}
    assert len(body["embedding"]) == 1536
    assert body["inputTextTokenCount"] == 2
    status, code, text = error_of(br, TITAN_V1, {"inputText": "x", "dimensions": 256})
    assert (status, code) == (400, "ValidationException")
    assert "extraneous key [dimensions]" in text


# --- Cohere v3 -----------------------------------------------------------------------------------


@pytest.mark.parametrize("model", [COHERE_EN, COHERE_ML])
def test_cohere_batch_of_96(br: Any, model: str) -> None:
    texts = [f"document number {i} about topic {i % 7}" for i in range(96)]
    body, headers = invoke(br, model, {"texts": texts, "input_type": "search_document"})
    assert set(body) == {"embeddings", "id", "texts", "response_type"}
    assert body["response_type"] == "embeddings_floats"
    assert body["texts"] == texts
    assert len(body["embeddings"]) == 96
    assert all(len(v) == 1024 for v in body["embeddings"])
    assert int(headers["x-amzn-bedrock-input-token-count"]) == sum(len(t.split()) for t in texts)
    # Same text, same vector, whatever the batch or the input_type.
    single, _ = invoke(br, model, {"texts": [texts[5]], "input_type": "search_query"})
    np.testing.assert_allclose(single["embeddings"][0], body["embeddings"][5], atol=1e-6)


def test_cohere_embedding_types(br: Any) -> None:
    body, _ = invoke(
        br,
        COHERE_EN,
        {
            "texts": ["a", "b c"],
            "input_type": "clustering",
            "embedding_types": ["float", "int8", "uint8", "binary", "ubinary"],
        },
    )
    assert body["response_type"] == "embeddings_by_type"
    emb = body["embeddings"]
    assert {k: (len(v), len(v[0])) for k, v in emb.items()} == {
        "float": (2, 1024),
        "int8": (2, 1024),
        "uint8": (2, 1024),
        "binary": (2, 128),
        "ubinary": (2, 128),
    }
    assert all(-128 <= x <= 127 for row in emb["int8"] + emb["binary"] for x in row)
    assert all(0 <= x <= 255 for row in emb["uint8"] + emb["ubinary"] for x in row)
    assert [x - 128 for x in emb["ubinary"][0]] == emb["binary"][0]


def test_cohere_empty_texts(br: Any) -> None:
    body, _ = invoke(br, COHERE_EN, {"texts": [], "input_type": "search_query"})
    assert body["embeddings"] == []
    assert body["texts"] == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"texts": ["x"] * 97, "input_type": "search_document"}, "#/texts: expected maximum item count: 96, found: 97"),
        ({"texts": ["x"]}, "#: required key [input_type] not found"),
        ({"input_type": "search_query"}, "#: required key [texts] not found"),
        ({"texts": ["x"], "input_type": "summary"}, "#/input_type: summary is not a valid enum value"),
        ({"texts": ["x" * 2049], "input_type": "search_query"}, "#/texts/0: expected maxLength: 2048, actual: 2049"),
        ({"texts": "x", "input_type": "search_query"}, "#/texts: expected type: JSONArray, found: String"),
        (
            {"texts": ["x"], "input_type": "search_query", "truncate": "MIDDLE"},
            "#/truncate: MIDDLE is not a valid enum value",
        ),
        (
            {"texts": ["x"], "input_type": "search_query", "embedding_types": ["double"]},
            "#/embedding_types/0: double is not a valid enum value",
        ),
    ],
)
def test_cohere_validation_errors(br: Any, body: dict[str, Any], message: str) -> None:
    status, code, text = error_of(br, COHERE_EN, body)
    assert (status, code) == (400, "ValidationException")
    assert text == f"Malformed input request: {message}, please reformat your input and try again."


def test_cohere_too_many_tokens_unless_truncated(br: Any) -> None:
    text = "a " * 600  # 1,200 characters, 600 tokens > 512
    status, code, message = error_of(br, COHERE_EN, {"texts": [text], "input_type": "search_query"})
    assert (status, code) == (400, "ValidationException")
    assert "600 tokens" in message
    body, _ = invoke(br, COHERE_EN, {"texts": [text], "input_type": "search_query", "truncate": "END"})
    assert len(body["embeddings"]) == 1


def test_cohere_images_are_refused(br: Any) -> None:
    status, code, _ = error_of(br, COHERE_EN, {"images": ["data:image/png;base64,AAAA"], "input_type": "image"})
    assert (status, code) == (400, "ValidationException")


# --- Cohere v4 -----------------------------------------------------------------------------------


@pytest.mark.parametrize("dimension", [256, 512, 1024, 1536])
def test_cohere_v4_output_dimension(br: Any, dimension: int) -> None:
    # the user guide's request: input_type, texts, embedding_types, output_dimension
    body, _ = invoke(br, COHERE_V4, {"input_type": "search_document", "texts": ["hello", "world"],
                                     "embedding_types": ["float", "int8"], "output_dimension": dimension})
    assert body["response_type"] == "embeddings_by_type"
    assert [len(v) for v in body["embeddings"]["float"]] == [dimension, dimension]
    assert [len(v) for v in body["embeddings"]["int8"]] == [dimension, dimension]
    plain, _ = invoke(br, COHERE_V4, {"input_type": "search_query", "texts": ["hello"]})
    assert len(plain["embeddings"][0]) == 1536  # the default dimension
    assert plain["response_type"] == "embeddings_floats"


def test_cohere_v4_tokens_per_request(br: Any) -> None:
    texts = ["a " * 50_000, "b " * 50_000, "c " * 30_001]  # 130,001 tokens in one request
    status, code, message = error_of(br, COHERE_V4, {"texts": texts, "input_type": "search_document"})
    assert (status, code) == (400, "ValidationException")
    assert "Max input tokens: 128000, request input token count: 130001" in message
    body, headers = invoke(br, COHERE_V4, {"texts": texts[:2], "input_type": "search_document"})
    assert len(body["embeddings"]) == 2
    assert headers["x-amzn-bedrock-input-token-count"] == "100000"
    truncated, _ = invoke(br, COHERE_V4, {"texts": texts, "input_type": "search_document", "truncate": "RIGHT"})
    assert len(truncated["embeddings"]) == 3


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"texts": ["x"], "input_type": "search_query", "output_dimension": 768},
         "#/output_dimension: 768 is not a valid enum value"),
        ({"texts": ["x"], "input_type": "search_query", "truncate": "END"},
         "#/truncate: END is not a valid enum value"),
        ({"texts": ["x"] * 97, "input_type": "search_query"}, "#/texts: expected maximum item count: 96, found: 97"),
        ({"texts": ["x"], "input_type": "search_query", "dimensions": 256},
         "#: extraneous key [dimensions] is not permitted"),
    ],
)
def test_cohere_v4_validation_errors(br: Any, body: dict[str, Any], message: str) -> None:
    status, code, text = error_of(br, COHERE_V4, body)
    assert (status, code) == (400, "ValidationException")
    assert text == f"Malformed input request: {message}, please reformat your input and try again."


# --- Nova multimodal embeddings (text) --------------------------------------------------------------


def nova_body(text: str, dimension: int | None = None, truncation: str = "END", **extra: Any) -> dict[str, Any]:
    params: dict[str, Any] = {"embeddingPurpose": "GENERIC_INDEX",
                              "text": {"truncationMode": truncation, "value": text}}
    if dimension is not None:
        params["embeddingDimension"] = dimension
    return {"taskType": "SINGLE_EMBEDDING", "singleEmbeddingParams": params, **extra}


@pytest.mark.parametrize("dimension", [256, 384, 1024, 3072])
def test_nova_text_embedding(br: Any, dimension: int) -> None:
    body, headers = invoke(br, NOVA, nova_body("Hello World", dimension, schemaVersion="nova-multimodal-embed-v1"))
    assert list(body) == ["embeddings"]
    (item,) = body["embeddings"]
    assert item["embeddingType"] == "TEXT"
    assert len(item["embedding"]) == dimension
    assert headers["x-amzn-bedrock-input-token-count"] == "2"
    default, _ = invoke(br, NOVA, nova_body("Hello World!"))
    assert len(default["embeddings"][0]["embedding"]) == 3072


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (nova_body("x", 512), "#/singleEmbeddingParams/embeddingDimension: 512 is not a valid enum value"),
        ({"taskType": "SEGMENTED_EMBEDDING", "singleEmbeddingParams": {}},
         "#/taskType: SEGMENTED_EMBEDDING is not a valid enum value"),
        ({"taskType": "SINGLE_EMBEDDING"}, "#: required key [singleEmbeddingParams] not found"),
        ({"taskType": "SINGLE_EMBEDDING", "singleEmbeddingParams": {"text": {"truncationMode": "END", "value": "x"}}},
         "#/singleEmbeddingParams: required key [embeddingPurpose] not found"),
        (nova_body("x", truncation="MIDDLE"),
         "#/singleEmbeddingParams/text/truncationMode: MIDDLE is not a valid enum value"),
        (nova_body(""), "#/singleEmbeddingParams/text/value: expected minLength: 1, actual: 0"),
    ],
)
def test_nova_validation_errors(br: Any, body: dict[str, Any], message: str) -> None:
    status, code, text = error_of(br, NOVA, body)
    assert (status, code) == (400, "ValidationException")
    assert text == f"Malformed input request: {message}, please reformat your input and try again."


def test_nova_too_many_tokens_unless_truncated(br: Any) -> None:
    text = "a " * 8193
    status, code, message = error_of(br, NOVA, nova_body(text, 256, truncation="NONE"))
    assert (status, code) == (400, "ValidationException")
    assert "Max input tokens: 8192, request input token count: 8193" in message
    body, _ = invoke(br, NOVA, nova_body(text, 256, truncation="END"))
    assert len(body["embeddings"][0]["embedding"]) == 256


def test_same_text_same_vector_across_models_of_one_dimension(br: Any) -> None:
    """The local models share one embedder: a sync can change model without changing its tests."""
    cohere, _ = invoke(br, COHERE_V4, {"texts": ["boots"], "input_type": "search_document", "output_dimension": 1024})
    nova, _ = invoke(br, NOVA, nova_body("boots", 1024))
    titan, _ = invoke(br, TITAN_V2, {"inputText": "boots"})
    np.testing.assert_allclose(cohere["embeddings"][0], nova["embeddings"][0]["embedding"], atol=1e-6)
    np.testing.assert_allclose(titan["embedding"], nova["embeddings"][0]["embedding"], atol=1e-6)


# --- model ids -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "model_id",
    [
        "arn:aws:bedrock:us-west-2::foundation-model/amazon.titan-embed-text-v2:0",
        "us.amazon.titan-embed-text-v2:0",
        "arn:aws:bedrock:us-west-2:000000000000:inference-profile/us.amazon.titan-embed-text-v2:0",
    ],
)
def test_model_id_forms(br: Any, model_id: str) -> None:
    body, _ = invoke(br, model_id, {"inputText": "same text"})
    direct, _ = invoke(br, TITAN_V2, {"inputText": "same text"})
    assert body["embedding"] == direct["embedding"]


@pytest.mark.parametrize("model_id", ["amazon.titan-embed-text-v9", "arn:aws:bedrock:us-west-2::foundation-model/x"])
def test_unknown_model_is_resource_not_found(br: Any, model_id: str) -> None:
    status, code, text = error_of(br, model_id, {"inputText": "x"})
    assert (status, code) == (404, "ResourceNotFoundException")
    assert text == f"Could not resolve the foundation model from the provided model identifier: {model_id}"


# --- the hashed embedder through the endpoint ------------------------------------------------------


def test_texts_sharing_words_are_closer(br: Any) -> None:
    vec = [
        invoke(br, TITAN_V2, {"inputText": t})[0]["embedding"]
        for t in ("red apple pie recipe", "apple pie with cream", "tax return deadline")
    ]
    assert cos(vec[0], vec[1]) > cos(vec[0], vec[2]) + 0.3
    again = invoke(br, TITAN_V2, {"inputText": "red apple pie recipe"})[0]["embedding"]
    assert again == vec[0]


# --- faults and counters -----------------------------------------------------------------------


@pytest.fixture
def faults(endpoint: EndpointHandle) -> Iterator[EndpointHandle]:
    try:
        yield endpoint
    finally:
        endpoint.admin.clear_faults()
        bedrock_config(endpoint, {"model_timeout_fraction": 0})


@pytest.mark.parametrize(
    ("rule", "status", "code"),
    [
        ({"throttle_fraction": 1.0}, 429, "ThrottlingException"),
        ({"unavailable_fraction": 1.0}, 503, "ServiceUnavailableException"),
    ],
)
def test_injected_faults(br: Any, faults: EndpointHandle, rule: dict[str, float], status: int, code: str) -> None:
    faults.admin.set_faults({"rules": [{"service": "bedrock", **rule}]})
    got = error_of(br, TITAN_V2, {"inputText": "x"})
    assert got[:2] == (status, code)
    # Only Bedrock is faulted.
    assert faults.client("s3vectors", retries=1).list_vector_buckets()["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_injected_model_timeout(br: Any, faults: EndpointHandle) -> None:
    assert bedrock_config(faults, {"model_timeout_fraction": 1.0, "seed": 3})["model_timeout_fraction"] == 1.0
    status, code, _ = error_of(br, TITAN_V2, {"inputText": "x"})
    assert (status, code) == (408, "ModelTimeoutException")


def test_injected_latency_and_partial_throttling(br: Any, faults: EndpointHandle) -> None:
    faults.admin.set_faults({"seed": 11, "rules": [{"service": "bedrock", "throttle_fraction": 0.5}]})
    outcomes = []
    for _ in range(40):
        try:
            invoke(br, TITAN_V2, {"inputText": "x"})
            outcomes.append("ok")
        except ClientError as exc:
            outcomes.append(exc.response["Error"]["Code"])
    assert set(outcomes) == {"ok", "ThrottlingException"}
    assert 8 <= outcomes.count("ok") <= 32


def test_counters_per_model(br: Any, endpoint: EndpointHandle) -> None:
    before = counters(endpoint)
    invoke(br, TITAN_V2, {"inputText": "one two three"})
    invoke(br, COHERE_EN, {"texts": ["a b", "c d e"], "input_type": "search_document"})
    error_of(br, TITAN_V2, {"inputText": ""})
    after = counters(endpoint)

    def delta(name: str) -> int:
        return after.get(name, 0) - before.get(name, 0)

    assert delta("requests") == 3
    assert delta("errors") == 1
    assert delta("error:ValidationException") == 1
    assert (delta(f"calls:{TITAN_V2}"), delta(f"texts:{TITAN_V2}"), delta(f"input_tokens:{TITAN_V2}")) == (1, 1, 3)
    assert (delta(f"calls:{COHERE_EN}"), delta(f"texts:{COHERE_EN}"), delta(f"input_tokens:{COHERE_EN}")) == (1, 2, 5)
    assert (delta("texts"), delta("input_tokens")) == (3, 8)


# --- embedder selection ------------------------------------------------------------------------


def test_config_rejects_unknown_embedder(endpoint: EndpointHandle) -> None:
    req = urllib.request.Request(
        f"{endpoint.url}/_s3vl/bedrock/config", data=json.dumps({"embedder": "bert"}).encode(), method="PUT"
    )
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(req, timeout=10)
    assert info.value.code == 400
    assert bedrock_config(endpoint)["embedder"] == "hash"


def test_semantic_ranking_with_minilm(br: Any, endpoint: EndpointHandle) -> None:
    assert bedrock_config(endpoint, {"embedder": "minilm"})["embedder"] == "minilm"
    try:
        query, paraphrase, unrelated = (
            invoke(br, TITAN_V2, {"inputText": t, "dimensions": 512})[0]["embedding"]
            for t in (
                "How do I reset my password?",
                "Steps to recover access when you forgot your login credentials",
                "The recipe needs two cups of flour and a pinch of salt",
            )
        )
        assert cos(query, paraphrase) > cos(query, unrelated) + 0.2
        # Cohere (1,024 dims, zero-padded from 384) ranks the same way.
        body, _ = invoke(
            br,
            COHERE_EN,
            {
                "texts": ["How do I reset my password?", "I forgot my login and need a new one", "Bake at 180 degrees"],
                "input_type": "search_query",
            },
        )
        q, p, u = body["embeddings"]
        assert cos(q, p) > cos(q, u) + 0.2
    finally:
        bedrock_config(endpoint, {"embedder": "hash"})
