"""Bedrock Runtime embedders: Amazon Titan Text Embeddings and Cohere Embed.

* Titan takes one text per ``InvokeModel``; texts are sent concurrently, at most
  ``concurrency`` at a time, and the limit halves when Bedrock throttles (AIMD, see
  :class:`~sync.aws.AdaptiveLimit`).
* Cohere takes up to 96 texts per call; a batch Bedrock refuses as a whole is retried text
  by text, so that only the offending texts fail.
Request and response bodies follow the models' documented JSON.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from botocore.exceptions import ClientError

from sync.aws.embedders.base import Embedded, Embedder, batch_indices
from sync.aws.retry import AdaptiveLimit, RetryPolicy, error_code, is_throttling
from sync.errors import EmbeddingError, RowError
from sync.telemetry import metrics


class _Bedrock(Embedder):
    def __init__(self, client: Any, model: str, dimensions: int, normalize: bool, *, concurrency: int = 8,
                 policy: RetryPolicy | None = None) -> None:
        self.client = client
        self.model = model
        self.dimensions = dimensions
        self.normalize = normalize
        self.policy = policy or RetryPolicy()
        self.limit = AdaptiveLimit(concurrency)
        self._pool = ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="s3vl-embed")

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
                finally:
                    metrics.AWS_LATENCY.labels("bedrock", "InvokeModel").observe(time.perf_counter() - start)
            self.limit.succeeded()
            result: dict[str, Any] = json.loads(resp["body"].read())
            return result

        return (policy or self.policy).call(f"bedrock InvokeModel {self.model}", call, on_retry=self._on_retry)

    @staticmethod
    def _refused(exc: ClientError) -> RowError:
        err = exc.response.get("Error", {})
        return RowError(f"Bedrock {err.get('Code', 'error')}: {err.get('Message', '')}")


class TitanEmbedder(_Bedrock):
    """``amazon.titan-embed-text-v2:0`` (256/512/1024) and ``-v1`` (1536): one text per call."""

    max_batch = 1
    max_chars = 50_000

    def _body(self, text: str) -> dict[str, Any]:
        if self.model.endswith("v1"):
            return {"inputText": text}
        return {"inputText": text, "dimensions": self.dimensions, "normalize": self.normalize}

    def _one(self, text: str, policy: RetryPolicy | None = None) -> list[float] | RowError:
        if len(text) > self.max_chars:
            return RowError(f"text is {len(text)} characters; {self.model} accepts {self.max_chars}")
        try:
            out = self._invoke(self._body(text), policy)
        except ClientError as exc:
            return self._refused(exc)
        return _checked(self.model, [float(x) for x in out["embedding"]], self.dimensions)

    def embed(self, texts: Sequence[str], *, policy: RetryPolicy | None = None) -> Embedded:
        start = time.perf_counter()
        results = list(self._pool.map(lambda t: self._one(t, policy), texts))
        return Embedded(vectors=results, calls=len(texts), texts=len(texts), seconds=time.perf_counter() - start)


class CohereEmbedder(_Bedrock):
    """``cohere.embed-english-v3`` / ``-multilingual-v3`` (1024): up to 96 texts per call."""

    max_batch = 96
    max_chars = 2048

    def _batch(self, texts: Sequence[str],
               policy: RetryPolicy | None = None) -> tuple[list[list[float] | RowError], int]:
        body = {"texts": list(texts), "input_type": "search_document", "truncate": "NONE"}
        try:
            out = self._invoke(body, policy)
        except ClientError as exc:
            if len(texts) == 1:
                return [self._refused(exc)], 1
            # one bad text refuses the whole batch: find it by sending each text alone
            singles = [self._batch([t], policy) for t in texts]
            return [r[0][0] for r in singles], 1 + sum(r[1] for r in singles)
        embeddings = out["embeddings"]
        if isinstance(embeddings, dict):  # embedding_types given: {"float": [...]}
            embeddings = embeddings["float"]
        vectors: list[list[float] | RowError] = []
        for e in embeddings:
            v = _checked(self.model, [float(x) for x in e], self.dimensions)
            vectors.append(_unit(v) if self.normalize and not isinstance(v, RowError) else v)
        return vectors, 1

    def embed(self, texts: Sequence[str], *, policy: RetryPolicy | None = None) -> Embedded:
        start = time.perf_counter()
        results: list[list[float] | RowError] = [RowError("not embedded")] * len(texts)
        ok: list[int] = []
        for i, t in enumerate(texts):
            if len(t) > self.max_chars:
                results[i] = RowError(f"text is {len(t)} characters; {self.model} accepts {self.max_chars}")
            else:
                ok.append(i)
        ranges = batch_indices([len(texts[i]) for i in ok], self.max_batch)
        futures = [self._pool.submit(self._batch, [texts[i] for i in ok[a:b]], policy) for a, b in ranges]
        calls = 0
        for (a, b), fut in zip(ranges, futures, strict=True):
            vectors, n = fut.result()
            calls += n
            for j, v in zip(range(a, b), vectors, strict=True):
                results[ok[j]] = v
        return Embedded(vectors=results, calls=calls, texts=len(texts), seconds=time.perf_counter() - start)


def _checked(model: str, vector: list[float], dimensions: int) -> list[float] | RowError:
    """The model's vector, or why it cannot be stored: a wrong dimension is the model's (the sync
    is misconfigured: :class:`EmbeddingError`), a NaN or infinity the text's (that row fails)."""
    if len(vector) != dimensions:
        raise EmbeddingError(f"{model} returned {len(vector)} dimensions, expected {dimensions}")
    if not all(math.isfinite(x) for x in vector):
        return RowError(f"{model} returned a vector with NaN or infinite values for this text")
    return vector


def _unit(v: list[float]) -> list[float]:
    norm = sum(x * x for x in v) ** 0.5
    return [x / norm for x in v] if norm > 0 else v
