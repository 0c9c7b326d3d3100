"""Bedrock Runtime embedders: Amazon Titan Text Embeddings and Cohere Embed.

* Titan takes one text per ``InvokeModel``; texts are sent concurrently through the embedder's
  :class:`~sync.aws.retry.AdaptiveLimit`, which starts at ``concurrency``, grows while Bedrock
  keeps up (up to ``max_concurrency``) and halves when it throttles.
* Cohere takes up to 96 texts per call; a batch Bedrock refuses as a whole is retried text
  by text, so that only the offending texts fail.
Request and response bodies follow the models' documented JSON. Responses are parsed with
orjson straight into float32 arrays (botocore hands InvokeModel's body over unparsed).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import orjson
from botocore.exceptions import ClientError

from sync.aws.embedders.base import Embedded, Embedder, batch_indices, check_stop
from sync.aws.retry import AdaptiveLimit, RetryPolicy, error_code, is_throttling
from sync.errors import EmbeddingError, RowError
from sync.telemetry import metrics


class _Bedrock(Embedder):
    def __init__(self, client: Any, model: str, dimensions: int, normalize: bool, *, concurrency: int = 8,
                 max_concurrency: int | None = None, policy: RetryPolicy | None = None) -> None:
        self.client = client
        self.model = model
        self.dimensions = dimensions
        self.normalize = normalize
        self.policy = policy or RetryPolicy()
        self.limit = AdaptiveLimit(concurrency, max_concurrency)
        self._pool = ThreadPoolExecutor(max_workers=self.limit.maximum, thread_name_prefix="s3vl-embed")

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
        err = exc.response.get("Error", {})
        return RowError(f"Bedrock {err.get('Code', 'error')}: {err.get('Message', '')}")

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


class TitanEmbedder(_Bedrock):
    """``amazon.titan-embed-text-v2:0`` (256/512/1024) and ``-v1`` (1536): one text per call."""

    max_batch = 1
    max_chars = 50_000

    def _body(self, text: str) -> dict[str, Any]:
        if self.model.endswith("v1"):
            return {"inputText": text}
        return {"inputText": text, "dimensions": self.dimensions, "normalize": self.normalize}

    def _one(self, text: str, policy: RetryPolicy | None, stop: threading.Event | None) -> np.ndarray | RowError:
        if len(text) > self.max_chars:
            return RowError(f"text is {len(text)} characters; {self.model} accepts {self.max_chars}")
        check_stop(stop)
        try:
            out = self._invoke(self._body(text), policy)
        except ClientError as exc:
            return self._refused(exc)
        return self._vectors([out["embedding"]], 1, normalize=False)[0]  # Titan normalises itself

    def embed(self, texts: Sequence[str], *, policy: RetryPolicy | None = None,
              stop: threading.Event | None = None) -> Embedded:
        start = time.perf_counter()
        results = list(self._pool.map(lambda t: self._one(t, policy, stop), texts))
        return Embedded(vectors=results, calls=len(texts), texts=len(texts), seconds=time.perf_counter() - start)


class CohereEmbedder(_Bedrock):
    """``cohere.embed-english-v3`` / ``-multilingual-v3`` (1024): up to 96 texts per call."""

    max_batch = 96
    max_chars = 2048

    def _batch(self, texts: Sequence[str], policy: RetryPolicy | None,
               stop: threading.Event | None) -> tuple[list[np.ndarray | RowError], int]:
        check_stop(stop)
        body = {"texts": list(texts), "input_type": "search_document", "truncate": "NONE"}
        try:
            out = self._invoke(body, policy)
        except ClientError as exc:
            if len(texts) == 1:
                return [self._refused(exc)], 1
            # one bad text refuses the whole batch: find it by sending each text alone
            singles = [self._batch([t], policy, stop) for t in texts]
            return [r[0][0] for r in singles], 1 + sum(r[1] for r in singles)
        embeddings = out["embeddings"]
        if isinstance(embeddings, dict):  # embedding_types given: {"float": [...]}
            embeddings = embeddings["float"]
        return self._vectors(embeddings, len(texts), self.normalize), 1

    def embed(self, texts: Sequence[str], *, policy: RetryPolicy | None = None,
              stop: threading.Event | None = None) -> Embedded:
        start = time.perf_counter()
        results: list[np.ndarray | RowError] = [RowError("not embedded")] * len(texts)
        ok: list[int] = []
        for i, t in enumerate(texts):
            if len(t) > self.max_chars:
                results[i] = RowError(f"text is {len(t)} characters; {self.model} accepts {self.max_chars}")
            else:
                ok.append(i)
        ranges = batch_indices([len(texts[i]) for i in ok], self.max_batch)
        futures = [self._pool.submit(self._batch, [texts[i] for i in ok[a:b]], policy, stop) for a, b in ranges]
        calls = 0
        for (a, b), fut in zip(ranges, futures, strict=True):
            vectors, n = fut.result()
            calls += n
            for j, v in zip(range(a, b), vectors, strict=True):
                results[ok[j]] = v
        return Embedded(vectors=results, calls=calls, texts=len(texts), seconds=time.perf_counter() - start)
