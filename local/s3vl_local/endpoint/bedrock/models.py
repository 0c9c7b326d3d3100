"""The embedding models the local Bedrock serves: their request/response bodies and limits.

Pure: a JSON body and a :class:`~s3vl_local.embedding.LocalEmbedder` in, a JSON body out (or an
:class:`~s3vl_local.endpoint.app.AwsError`). Shapes follow the Bedrock user guide's model
parameter pages:

``amazon.titan-embed-text-v2:0``
    ``{"inputText", "dimensions": 256|512|1024 (1024), "normalize": bool (true),
    "embeddingTypes": ["float"|"binary", ...] (["float"])}`` ->
    ``{"embedding", "inputTextTokenCount", "embeddingsByType": {"float"?, "binary"?}}``.
    ``inputText`` 1..50,000 characters and at most 8,192 tokens. ``binary`` is 0/1 per dimension.
``amazon.titan-embed-text-v1``
    ``{"inputText"}`` -> ``{"embedding" (1,536 floats), "inputTextTokenCount"}``; 8,192 tokens.
``cohere.embed-english-v3`` / ``cohere.embed-multilingual-v3``
    ``{"texts": [0..96 strings of <= 2,048 characters], "input_type": search_document|
    search_query|classification|clustering, "truncate": NONE|START|END (NONE),
    "embedding_types": [float|int8|uint8|binary|ubinary, ...]}`` -> ``{"id", "texts",
    "embeddings": [[1,024 floats], ...], "response_type": "embeddings_floats"}``, or with
    ``embedding_types`` ``{"embeddings": {"float": [...], "int8": [...], ...},
    "response_type": "embeddings_by_type"}``. More than 512 tokens with ``truncate: NONE`` is a
    ValidationException.
``cohere.embed-v4:0``
    As v3, plus ``"output_dimension": 256|512|1024|1536 (1536)`` and ``"max_tokens"``;
    ``truncate`` is ``NONE|LEFT|RIGHT``; up to 96 texts and 128,000 tokens per request: more
    tokens with ``truncate: NONE`` is the ValidationException "Too many input tokens".
``amazon.nova-2-multimodal-embeddings-v1:0`` (text)
    ``{"schemaVersion"?: "nova-multimodal-embed-v1", "taskType": "SINGLE_EMBEDDING",
    "singleEmbeddingParams": {"embeddingPurpose": GENERIC_INDEX|GENERIC_RETRIEVAL|TEXT_RETRIEVAL|...,
    "embeddingDimension": 256|384|1024|3072 (3072), "text": {"truncationMode": START|END|NONE,
    "value"}}}`` -> ``{"embeddings": [{"embeddingType": "TEXT", "embedding": [...]}]}``; 8,192
    tokens (more with ``truncationMode: NONE`` is "Too many input tokens").

Local simplifications (documented here, where they are made):

- Vectors come from the process's local embedder (hashed features or MiniLM), mapped to each
  model's dimension; they are *not* the real models' vectors, so never mix them with real ones.
- ``input_type`` is validated but does not change the vector (a real Cohere model prepends a
  type token, moving query and document vectors slightly apart).
- ``truncate: START|END`` accepts over-long texts; the local model's own 256-token window applies.
- Cohere ``int8``/``uint8`` quantise each vector by its largest component (Cohere calibrates
  ranges on a corpus); ``binary``/``ubinary`` pack sign bits, 8 dimensions per byte, the signed
  form offset by -128, as Cohere documents.
- ``images`` / ``inputs`` (Cohere image embeddings), Nova's image, audio and video inputs and
  text from an S3 ``source`` are not supported: ValidationException.
- ``embeddingPurpose`` and ``input_type`` do not change the vector; Nova's value is limited to
  50,000 characters (a local bound: the user guide states the token limit only).
- Titan v1 vectors are unit length (the real v1 is not normalised).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from s3vl_local.embedding import LocalEmbedder
from s3vl_local.embedding.base import FloatMatrix
from s3vl_local.endpoint.app import AwsError
from s3vl_local.endpoint.bedrock import errors

Family = Literal["titan-v2", "titan-v1", "cohere-v3", "cohere-v4", "nova"]


@dataclass(frozen=True)
class ModelSpec:
    model_id: str
    family: Family
    dimensions: int
    max_tokens: int


MODELS: dict[str, ModelSpec] = {
    spec.model_id: spec
    for spec in (
        ModelSpec("amazon.titan-embed-text-v2:0", "titan-v2", 1024, 8192),
        ModelSpec("amazon.titan-embed-text-v1", "titan-v1", 1536, 8192),
        ModelSpec("cohere.embed-english-v3", "cohere-v3", 1024, 512),
        ModelSpec("cohere.embed-multilingual-v3", "cohere-v3", 1024, 512),
        ModelSpec("cohere.embed-v4:0", "cohere-v4", 1536, 128_000),
        ModelSpec("amazon.nova-2-multimodal-embeddings-v1:0", "nova", 3072, 8192),
    )
}

TITAN_V2_DIMENSIONS = (256, 512, 1024)
TITAN_MAX_CHARS = 50_000
COHERE_MAX_TEXTS = 96
COHERE_MAX_CHARS = 2048
COHERE_INPUT_TYPES = ("search_document", "search_query", "classification", "clustering")
COHERE_TRUNCATE = ("NONE", "START", "END")
COHERE_EMBEDDING_TYPES = ("float", "int8", "uint8", "binary", "ubinary")
COHERE_V4_DIMENSIONS = (256, 512, 1024, 1536)
#: Characters per v4 text: a local bound (the user guide states tokens only), far above what
#: 128,000 tokens can hold, so the token limit is what refuses a long text.
COHERE_V4_MAX_CHARS = 128_000 * 8
COHERE_V4_TRUNCATE = ("NONE", "LEFT", "RIGHT")
NOVA_DIMENSIONS = (256, 384, 1024, 3072)
#: Characters of a Nova text value: a local bound (the user guide states 8,192 tokens only).
NOVA_MAX_CHARS = 50_000
NOVA_PURPOSES = ("GENERIC_INDEX", "GENERIC_RETRIEVAL", "TEXT_RETRIEVAL", "IMAGE_RETRIEVAL", "VIDEO_RETRIEVAL",
                 "DOCUMENT_RETRIEVAL", "AUDIO_RETRIEVAL", "CLASSIFICATION", "CLUSTERING")
NOVA_TRUNCATION = ("START", "END", "NONE")
NOVA_MEDIA = ("image", "audio", "video")

# arn:aws:bedrock:<region>:<account>:foundation-model/<id> (account empty for foundation models)
_ARN = re.compile(r"^arn:aws[a-z-]*:bedrock:[a-z0-9-]*:\d*:(foundation-model|inference-profile)/(.+)$")
# Cross-region inference profile ids prefix the model id with a geography.
_PROFILE_PREFIX = re.compile(r"^(us|eu|apac|us-gov|ca|jp|au|global)\.")


def resolve_model(model_id: str) -> ModelSpec:
    """The model for a URL's ``modelId``: a model id, its foundation-model ARN, or an inference
    profile id/ARN (geography prefix stripped). Unknown: 404 ResourceNotFoundException."""
    bare = model_id.strip()
    match = _ARN.match(bare)
    if match:
        bare = match.group(2)
    if bare not in MODELS:
        bare = _PROFILE_PREFIX.sub("", bare, count=1)
    spec = MODELS.get(bare)
    if spec is None:
        raise errors.model_not_found(model_id)
    return spec


@dataclass(frozen=True)
class Invocation:
    """A model's answer and what it cost: the response body, texts embedded, input tokens."""

    body: dict[str, Any]
    texts: int
    input_tokens: int


def invoke(spec: ModelSpec, body: Any, embedder: LocalEmbedder) -> Invocation:
    """Validate ``body`` for ``spec``'s model, embed, and build the model's response body."""
    if spec.family == "titan-v2":
        return _titan_v2(spec, body, embedder)
    if spec.family == "titan-v1":
        return _titan_v1(spec, body, embedder)
    if spec.family == "nova":
        return _nova(spec, body, embedder)
    return _cohere(spec, body, embedder)


# --- JSON-schema style checks (Bedrock's wording) -----------------------------------------------


def _type_name(value: Any) -> str:
    if value is None:
        return "Null"
    if isinstance(value, bool):
        return "Boolean"
    if isinstance(value, int):
        return "Integer"
    if isinstance(value, float):
        return "BigDecimal"
    if isinstance(value, str):
        return "String"
    if isinstance(value, list):
        return "JSONArray"
    return "JSONObject"


def _expect(path: str, value: Any, expected: str, ok: bool) -> None:
    if not ok:
        raise errors.malformed(f"{path}: expected type: {expected}, found: {_type_name(value)}")


def _object_at(path: str, value: Any, allowed: Sequence[str], required: Sequence[str]) -> dict[str, Any]:
    """A nested JSON object, checked like the body's top level."""
    _expect(path, value, "JSONObject", isinstance(value, dict))
    for key in value:
        if key not in allowed:
            raise errors.malformed(f"{path}: extraneous key [{key}] is not permitted")
    for key in required:
        if key not in value:
            raise errors.malformed(f"{path}: required key [{key}] not found")
    result: dict[str, Any] = value
    return result


def _object(body: Any, allowed: Sequence[str], required: Sequence[str]) -> dict[str, Any]:
    return _object_at("#", body, allowed, required)


def _string(path: str, value: Any, min_length: int, max_length: int) -> str:
    _expect(path, value, "String", isinstance(value, str))
    if len(value) < min_length:
        raise errors.malformed(f"{path}: expected minLength: {min_length}, actual: {len(value)}")
    if len(value) > max_length:
        raise errors.malformed(f"{path}: expected maxLength: {max_length}, actual: {len(value)}")
    text: str = value
    return text


def _integer(path: str, value: Any) -> int:
    _expect(path, value, "Integer", isinstance(value, int) and not isinstance(value, bool))
    number: int = value
    return number


def _enum(path: str, value: Any, allowed: Sequence[Any]) -> None:
    if isinstance(value, bool) or value not in allowed:
        raise errors.malformed(f"{path}: {value} is not a valid enum value")


def _enum_list(path: str, value: Any, allowed: Sequence[str]) -> list[str]:
    _expect(path, value, "JSONArray", isinstance(value, list))
    if not value:
        raise errors.malformed(f"{path}: expected minimum item count: 1, found: 0")
    for i, item in enumerate(value):
        _expect(f"{path}/{i}", item, "String", isinstance(item, str))
        _enum(f"{path}/{i}", item, allowed)
    if len(set(value)) != len(value):
        raise errors.malformed(f"{path}: array items are not unique")
    items: list[str] = value
    return items


def _floats(vectors: FloatMatrix) -> FloatMatrix:
    """Vectors as the response carries them: float32 arrays, written by orjson as the shortest
    text of each float32 (as Bedrock's own float32 values; no Python float per element)."""
    return np.ascontiguousarray(vectors, dtype=np.float32)


# --- Titan ---------------------------------------------------------------------------------------


def _titan_text(spec: ModelSpec, body: dict[str, Any], embedder: LocalEmbedder) -> tuple[str, int]:
    text = _string("#/inputText", body["inputText"], 1, TITAN_MAX_CHARS)
    tokens = embedder.count_tokens([text])[0]
    if tokens > spec.max_tokens:
        raise errors.too_many_tokens(spec.max_tokens, tokens)
    return text, tokens


def _titan_v2(spec: ModelSpec, raw: Any, embedder: LocalEmbedder) -> Invocation:
    body = _object(raw, ("inputText", "dimensions", "normalize", "embeddingTypes"), ("inputText",))
    dimensions = body.get("dimensions", spec.dimensions)
    _integer("#/dimensions", dimensions)
    _enum("#/dimensions", dimensions, TITAN_V2_DIMENSIONS)
    normalize = body.get("normalize", True)
    _expect("#/normalize", normalize, "Boolean", isinstance(normalize, bool))
    types = _enum_list("#/embeddingTypes", body.get("embeddingTypes", ["float"]), ("float", "binary"))
    text, tokens = _titan_text(spec, body, embedder)
    vector = embedder.embed([text], dimensions, normalize=normalize).vectors[0]
    floats = _floats(vector)
    by_type: dict[str, Any] = {}
    if "float" in types:
        by_type["float"] = floats
    if "binary" in types:
        by_type["binary"] = (vector > 0).astype(np.int64).tolist()
    return Invocation(
        body={"embedding": floats, "inputTextTokenCount": tokens, "embeddingsByType": by_type},
        texts=1,
        input_tokens=tokens,
    )


def _titan_v1(spec: ModelSpec, raw: Any, embedder: LocalEmbedder) -> Invocation:
    body = _object(raw, ("inputText",), ("inputText",))
    text, tokens = _titan_text(spec, body, embedder)
    vector = embedder.embed([text], spec.dimensions).vectors[0]
    return Invocation(body={"embedding": _floats(vector), "inputTextTokenCount": tokens}, texts=1, input_tokens=tokens)


# --- Cohere --------------------------------------------------------------------------------------


def _quantized(vectors: FloatMatrix, kind: str) -> list[list[int]]:
    scale = np.maximum(np.abs(vectors).max(axis=1, keepdims=True), np.float32(1e-12))
    if kind == "int8":
        result: list[list[int]] = np.clip(np.rint(vectors / scale * 127), -128, 127).astype(np.int64).tolist()
        return result
    if kind == "uint8":
        result = np.clip(np.rint(vectors / scale * 127 + 128), 0, 255).astype(np.int64).tolist()
        return result
    packed = np.packbits(vectors > 0, axis=1).astype(np.int64)
    result = (packed - 128 if kind == "binary" else packed).tolist()
    return result


def _cohere(spec: ModelSpec, raw: Any, embedder: LocalEmbedder) -> Invocation:
    v4 = spec.family == "cohere-v4"
    allowed: tuple[str, ...] = ("texts", "images", "input_type", "truncate", "embedding_types")
    if v4:
        allowed += ("inputs", "output_dimension", "max_tokens")
    body = _object(raw, allowed, ("input_type",))
    if "images" in body or "inputs" in body:
        raise errors.validation("images are not supported by the s3vl local endpoint; send texts")  # local wording
    if "texts" not in body:
        raise errors.malformed("#: required key [texts] not found")
    texts = body["texts"]
    _expect("#/texts", texts, "JSONArray", isinstance(texts, list))
    if len(texts) > COHERE_MAX_TEXTS:
        raise errors.malformed(f"#/texts: expected maximum item count: {COHERE_MAX_TEXTS}, found: {len(texts)}")
    for i, text in enumerate(texts):
        _string(f"#/texts/{i}", text, 0, COHERE_V4_MAX_CHARS if v4 else COHERE_MAX_CHARS)
    _expect("#/input_type", body["input_type"], "String", isinstance(body["input_type"], str))
    _enum("#/input_type", body["input_type"], COHERE_INPUT_TYPES)
    truncate = body.get("truncate", "NONE")
    _expect("#/truncate", truncate, "String", isinstance(truncate, str))
    _enum("#/truncate", truncate, COHERE_V4_TRUNCATE if v4 else COHERE_TRUNCATE)
    dimensions = spec.dimensions
    if v4:
        dimensions = body.get("output_dimension", spec.dimensions)
        _integer("#/output_dimension", dimensions)
        _enum("#/output_dimension", dimensions, COHERE_V4_DIMENSIONS)
        max_tokens = _integer("#/max_tokens", body.get("max_tokens", spec.max_tokens))
        if not 1 <= max_tokens <= spec.max_tokens:
            raise errors.malformed(f"#/max_tokens: {max_tokens} is not in 1..{spec.max_tokens}")
    types = (
        _enum_list("#/embedding_types", body["embedding_types"], COHERE_EMBEDDING_TYPES)
        if body.get("embedding_types") is not None
        else None
    )
    counts = embedder.count_tokens(texts)
    if truncate == "NONE":
        if v4 and sum(counts) > spec.max_tokens:
            raise errors.too_many_tokens(spec.max_tokens, sum(counts))
        for count in counts:
            if not v4 and count > spec.max_tokens:
                raise errors.validation(  # local wording
                    f"input text has {count} tokens, more than the model's maximum of {spec.max_tokens}; "
                    'shorten it or set "truncate" to "START" or "END"'
                )
    vectors = embedder.embed(texts, dimensions).vectors if texts else np.zeros((0, dimensions), dtype=np.float32)
    out: dict[str, Any] = {"id": str(uuid.uuid4()), "texts": list(texts)}
    if types is None:
        out["embeddings"] = _floats(vectors)
        out["response_type"] = "embeddings_floats"
    else:
        out["embeddings"] = {
            kind: (_floats(vectors) if kind == "float" else _quantized(vectors, kind)) for kind in types
        }
        out["response_type"] = "embeddings_by_type"
    return Invocation(body=out, texts=len(texts), input_tokens=sum(counts))


# --- Nova ----------------------------------------------------------------------------------------


def _nova(spec: ModelSpec, raw: Any, embedder: LocalEmbedder) -> Invocation:
    body = _object(raw, ("schemaVersion", "taskType", "singleEmbeddingParams"), ("taskType", "singleEmbeddingParams"))
    if "schemaVersion" in body:
        _enum("#/schemaVersion", body["schemaVersion"], ("nova-multimodal-embed-v1",))
    _enum("#/taskType", body["taskType"], ("SINGLE_EMBEDDING",))  # SEGMENTED_EMBEDDING is asynchronous only
    params = _object_at("#/singleEmbeddingParams", body["singleEmbeddingParams"],
                        ("embeddingPurpose", "embeddingDimension", "text", *NOVA_MEDIA), ("embeddingPurpose",))
    _enum("#/singleEmbeddingParams/embeddingPurpose", params["embeddingPurpose"], NOVA_PURPOSES)
    dimensions = params.get("embeddingDimension", spec.dimensions)
    _integer("#/singleEmbeddingParams/embeddingDimension", dimensions)
    _enum("#/singleEmbeddingParams/embeddingDimension", dimensions, NOVA_DIMENSIONS)
    if any(m in params for m in NOVA_MEDIA):
        raise errors.validation("image, audio and video are not supported by the s3vl local endpoint; "
                                "send text")  # local wording
    if "text" not in params:
        raise errors.malformed("#/singleEmbeddingParams: exactly one of [text, image, audio, video] is required")
    text_obj = _object_at("#/singleEmbeddingParams/text", params["text"], ("truncationMode", "value", "source"),
                          ("truncationMode",))
    _enum("#/singleEmbeddingParams/text/truncationMode", text_obj["truncationMode"], NOVA_TRUNCATION)
    if "source" in text_obj:
        raise errors.validation("text from an S3 source is not supported by the s3vl local endpoint; "
                                "send value")  # local wording
    text = _string("#/singleEmbeddingParams/text/value", text_obj.get("value"), 1, NOVA_MAX_CHARS)
    tokens = embedder.count_tokens([text])[0]
    if tokens > spec.max_tokens and text_obj["truncationMode"] == "NONE":
        raise errors.too_many_tokens(spec.max_tokens, tokens)
    vector = embedder.embed([text], dimensions).vectors[0]
    return Invocation(body={"embeddings": [{"embeddingType": "TEXT", "embedding": _floats(vector)}]},
                      texts=1, input_tokens=tokens)


def error_for(exc: Exception) -> AwsError:
    """An embedder failure (e.g. the MiniLM package missing) as Bedrock would report a model error."""
    return AwsError(424, "ModelErrorException", f"The local embedder failed: {exc}", originalStatusCode=500)
