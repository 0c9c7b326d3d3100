"""Bedrock Runtime embedders: Amazon Titan Text Embeddings, Amazon Nova multimodal embeddings
(text) and Cohere Embed v3 / v4.

* Titan and Nova take one text per ``InvokeModel``; texts are sent concurrently through the
  embedder's :class:`~sync.aws.retry.AdaptiveLimit`, which starts at ``concurrency``, grows
  while Bedrock keeps up (up to ``max_concurrency``) and halves when it throttles.
* Cohere takes up to 96 texts per call, and v4 at most 128,000 tokens per call: texts are packed
  into calls by count and by an upper bound of their tokens (UTF-8 bytes: no tokenizer makes more
  tokens than bytes), so a batch over the limit is split before it is sent. A call Bedrock
  refuses as a whole is split in halves until the refused texts stand alone, so only they fail.
Request and response bodies follow the models' documented JSON (Bedrock user guide, model
parameter pages). Each embedder can also :meth:`~BedrockEmbedder.plan` its calls without making
them and read an answer back (:meth:`~BedrockEmbedder.answer`), as Bedrock batch inference needs
(its JSONL records carry the same bodies, its output the same answers; s3vl does not submit
batch jobs yet). Responses are parsed with orjson straight into float32 arrays (botocore hands
InvokeModel's body over unparsed).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
from botocore.exceptions import ClientError

from sync.aws.embedders.base import Embedded, Embedder, batch_indices, check_stop
from sync.aws.retry import AdaptiveLimit, RetryPolicy, error_code, is_throttling
from sync.errors import EmbeddingError, RowError
from sync.telemetry import metrics

#: Refusals that are the model's or the account's, not a text's (model not enabled or unknown,
#: credentials refused): the sync pauses instead of failing every row, and no text is retried.
MODEL_REFUSALS = frozenset({"AccessDeniedException", "ResourceNotFoundException", "UnrecognizedClientException",
                            "ExpiredTokenException"})
#: ValidationExceptions that are about the model id, not the body: an invalid identifier, or a
#: model reached only through an inference profile ("on-demand throughput isn't supported").
MODEL_VALIDATION = ("model identifier is invalid", "on-demand throughput")


def _message(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Message", ""))


def model_refused(exc: ClientError) -> bool:
    """Does this refusal say the model (or the account) cannot be used, whatever the text?"""
    code = error_code(exc)
    message = _message(exc).lower()
    return code in MODEL_REFUSALS or (code == "ValidationException" and any(m in message for m in MODEL_VALIDATION))


def token_bound(text: str) -> int:
    """An upper bound of the tokens any of these models makes of ``text``: its UTF-8 bytes."""
    return len(text.encode("utf-8"))


@dataclass(frozen=True)
class Call:
    """One InvokeModel request an embedder would make: which of its texts, and the body."""

    indices: list[int]
    body: dict[str, Any]


class BedrockEmbedder(Embedder):
    #: the most tokens (by :func:`token_bound`) one call may carry (None: no limit but max_batch)
    max_call_tokens: int | None = None

    def __init__(self, client: Any, model: str, dimensions: int, normalize: bool, *, concurrency: int = 8,
                 max_concurrency: int | None = None, policy: RetryPolicy | None = None) -> None:
        self.client = client
        self.model = model
        self.dimensions = dimensions
        self.normalize = normalize
        self.policy = policy or RetryPolicy()
        self.limit = AdaptiveLimit(concurrency, max_concurrency)
        self._pool = ThreadPoolExecutor(max_workers=self.limit.maximum, thread_name_prefix="s3vl-embed")

    # --- what a family defines ------------------------------------------------------------
    def _body(self, texts: list[str]) -> dict[str, Any]:
        raise NotImplementedError

    def _embeddings(self, out: dict[str, Any]) -> Any:
        """The float embeddings in an answer (a list of vectors)."""
        raise NotImplementedError

    #: the model normalises its vectors itself (s3vl does not normalise them again)
    normalizes_itself = False

    # --- shared -------------------------------------------------------------------------------
    def plan(self, texts: Sequence[str]) -> tuple[list[Call], dict[int, RowError]]:
        """The calls that embed ``texts``, and the texts refused before any call (too long)."""
        refused: dict[int, RowError] = {}
        ok: list[int] = []
        for i, t in enumerate(texts):
            if len(t) > self.max_chars:
                refused[i] = RowError(f"text is {len(t)} characters; {self.model} accepts {self.max_chars}")
            else:
                ok.append(i)
        ranges = batch_indices([token_bound(texts[i]) for i in ok], self.max_batch, self.max_call_tokens)
        calls = []
        for a, b in ranges:
            indices = ok[a:b]
            calls.append(Call(indices, self._body([texts[i] for i in indices])))
        return calls, refused

    def answer(self, out: dict[str, Any], count: int) -> list[np.ndarray | RowError]:
        """The vectors in a model's answer to a call of ``count`` texts."""
        try:
            embeddings = self._embeddings(out)
        except (KeyError, IndexError, TypeError) as exc:
            raise EmbeddingError(f"{self.model} answered without embeddings ({exc!r}): "
                                 f"{str(out)[:200]}") from exc
        return self._vectors(embeddings, count, self.normalize and not self.normalizes_itself)

    def _on_retry(self, exc: BaseException) -> None:
        metrics.AWS_ERRORS.labels("bedrock", "InvokeModel", error_code(exc) or "error").inc()
        if is_throttling(exc):
            self.limit.throttled()

    def _invoke(self, body: dict[str, Any], policy: RetryPolicy | None = None) -> dict[str, Any]:
        def call() -> dict[str, Any]:
            with self.limit:
                start = time.perf_counter()
                try:
                    resp = self.client.invoke_model(modelId=self.model, body=json.dumps(body),
                                                    contentType="application/json", accept="application/json")
                    raw = resp["body"].read()
                finally:
                    metrics.AWS_LATENCY.labels("bedrock", "InvokeModel").observe(time.perf_counter() - start)
            self.limit.succeeded()
            try:
                result: dict[str, Any] = orjson.loads(raw)
            except orjson.JSONDecodeError:  # NaN/Infinity literals: the stdlib reads them (that row fails)
                result = json.loads(raw)
            return result

        return (policy or self.policy).call(f"bedrock InvokeModel {self.model}", call, on_retry=self._on_retry)

    @staticmethod
    def _refused(exc: ClientError) -> RowError:
        return RowError(f"Bedrock {error_code(exc) or 'error'}: {_message(exc)}")

    def _call(self, texts: list[str], policy: RetryPolicy | None, stop: threading.Event | None,
              body: dict[str, Any] | None = None) -> tuple[list[np.ndarray | RowError], int]:
        """Results for one call's texts (``body``: the call's, when already built), and the calls
        it took: a call refused as a whole is split in halves until the refused texts stand
        alone (a batch over a token limit too); a refusal of the model raises EmbeddingError."""
        check_stop(stop)
        try:
            out = self._invoke(body if body is not None else self._body(texts), policy)
        except ClientError as exc:
            if model_refused(exc):
                raise EmbeddingError(f"Bedrock refused {self.model}: {error_code(exc)}: {_message(exc)}") from exc
            if len(texts) == 1:
                return [self._refused(exc)], 1
            middle = len(texts) // 2
            left, n_left = self._call(texts[:middle], policy, stop)
            right, n_right = self._call(texts[middle:], policy, stop)
            return left + right, 1 + n_left + n_right
        return self.answer(out, len(texts)), 1

    def embed(self, texts: Sequence[str], *, policy: RetryPolicy | None = None,
              stop: threading.Event | None = None) -> Embedded:
        start = time.perf_counter()
        calls, refused = self.plan(texts)
        results: list[np.ndarray | RowError] = [RowError("not embedded")] * len(texts)
        for i, err in refused.items():
            results[i] = err
        futures = [self._pool.submit(self._call, [texts[i] for i in c.indices], policy, stop, c.body) for c in calls]
        n_calls = 0
        for c, fut in zip(calls, futures, strict=True):
            vectors, n = fut.result()
            n_calls += n
            for i, v in zip(c.indices, vectors, strict=True):
                results[i] = v
        return Embedded(vectors=results, calls=n_calls, texts=len(texts), seconds=time.perf_counter() - start)

    def _vectors(self, embeddings: Any, count: int, normalize: bool) -> list[np.ndarray | RowError]:
        """The model's answer for ``count`` texts as float32 vectors, or why one cannot be stored:
        a wrong shape is the model's (the sync is misconfigured: :class:`EmbeddingError`), a NaN
        or infinity the text's (that row fails)."""
        try:
            arr = np.asarray(embeddings, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise EmbeddingError(f"{self.model} returned embeddings that are not numbers: {exc}") from exc
        if arr.shape != (count, self.dimensions):
            got = arr.shape[-1] if arr.ndim == 2 and len(arr) == count else arr.shape
            raise EmbeddingError(f"{self.model} returned {got} dimensions for {count} text(s), "
                                 f"expected {self.dimensions}")
        finite = np.all(np.isfinite(arr), axis=1, keepdims=False).astype(bool).tolist()
        if normalize:
            with np.errstate(invalid="ignore", over="ignore"):
                norms = np.linalg.norm(arr, axis=1, keepdims=True)
            norms[~(norms > 0)] = 1.0  # a zero vector stays as it is (a NaN row fails below)
            arr = arr / norms
        out = arr.astype(np.float32)
        return [out[i] if finite[i] else RowError(f"{self.model} returned a vector with NaN or infinite values "
                                                  "for this text") for i in range(count)]


class TitanEmbedder(BedrockEmbedder):
    """``amazon.titan-embed-text-v2:0`` (256/512/1024; ``embeddingTypes: ["float"]``) and ``-v1``
    (1536): one text of at most 50,000 characters (8,192 tokens) per call."""

    max_chars = 50_000
    normalizes_itself = True  # v2 with normalize: true; v1 is given as it is (as before)

    def _body(self, texts: list[str]) -> dict[str, Any]:
        (text,) = texts
        if self.model.endswith("v1"):
            return {"inputText": text}
        return {"inputText": text, "dimensions": self.dimensions, "normalize": self.normalize,
                "embeddingTypes": ["float"]}

    def _embeddings(self, out: dict[str, Any]) -> Any:
        by_type = out.get("embeddingsByType")
        return [by_type["float"] if isinstance(by_type, dict) and "float" in by_type else out["embedding"]]


class NovaEmbedder(BedrockEmbedder):
    """``amazon.nova-2-multimodal-embeddings-v1:0`` for text (256/384/1024/3072): one text of at
    most 8,192 tokens per call, ``SINGLE_EMBEDDING`` with ``embeddingPurpose: GENERIC_INDEX`` and
    ``truncationMode: NONE`` (a text over the limit fails its row instead of being cut silently)."""

    max_chars = 50_000

    def _body(self, texts: list[str]) -> dict[str, Any]:
        (text,) = texts
        return {"taskType": "SINGLE_EMBEDDING",
                "singleEmbeddingParams": {"embeddingPurpose": "GENERIC_INDEX", "embeddingDimension": self.dimensions,
                                          "text": {"truncationMode": "NONE", "value": text}}}

    def _embeddings(self, out: dict[str, Any]) -> Any:
        return [out["embeddings"][0]["embedding"]]


class CohereEmbedder(BedrockEmbedder):
    """``cohere.embed-english-v3`` / ``-multilingual-v3`` (1024): up to 96 texts of at most 2,048
    characters (512 tokens) per call."""

    max_batch = 96
    max_chars = 2048

    def _body(self, texts: list[str]) -> dict[str, Any]:
        return {"texts": texts, "input_type": "search_document", "truncate": "NONE", "embedding_types": ["float"]}

    def _embeddings(self, out: dict[str, Any]) -> Any:
        embeddings = out["embeddings"]
        return embeddings["float"] if isinstance(embeddings, dict) else embeddings


class CohereV4Embedder(CohereEmbedder):
    """``cohere.embed-v4:0`` (256/512/1024/1536 by ``output_dimension``): up to 96 texts and at most
    128,000 tokens per call."""

    max_call_tokens = 128_000
    max_chars = 128_000

    def _body(self, texts: list[str]) -> dict[str, Any]:
        return {**super()._body(texts), "output_dimension": self.dimensions}
