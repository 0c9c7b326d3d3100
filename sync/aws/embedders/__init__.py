"""Embedders: texts -> vectors, behind one interface (:class:`~sync.aws.embedders.base.Embedder`).

:func:`for_model` picks the implementation for a sync's model: Titan (one text per call, run
with adaptive concurrency) or Cohere (up to 96 texts per call).
"""

from __future__ import annotations

from typing import Any

from sync.aws.embedders.base import Embedded, Embedder
from sync.aws.embedders.bedrock import CohereEmbedder, TitanEmbedder
from sync.aws.retry import RetryPolicy
from sync.errors import SyncDefinitionError


def for_model(model: str, dimensions: int, normalize: bool, client: Any, *, concurrency: int = 8,
              max_concurrency: int | None = None, policy: RetryPolicy | None = None) -> Embedder:
    """The embedder for a Bedrock model id (as stored in ``s3vl.syncs.embedding_model``); its
    calls in flight start at ``concurrency`` and adapt up to ``max_concurrency``."""
    if model.startswith("amazon.titan-embed-text"):
        return TitanEmbedder(client, model, dimensions, normalize, concurrency=concurrency,
                             max_concurrency=max_concurrency, policy=policy)
    if model.startswith("cohere.embed"):
        return CohereEmbedder(client, model, dimensions, normalize, concurrency=concurrency,
                              max_concurrency=max_concurrency, policy=policy)
    raise SyncDefinitionError(f"no embedder for model {model!r}")


__all__ = ["CohereEmbedder", "Embedded", "Embedder", "TitanEmbedder", "for_model"]
