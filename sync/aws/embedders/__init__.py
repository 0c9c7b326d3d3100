"""Embedders: texts -> vectors, behind one interface (:class:`~sync.aws.embedders.base.Embedder`).

:func:`for_model` picks the implementation for a sync's model (the same models
``s3vl.embedding_models()`` accepts in SQL): Titan text v1/v2 and Nova multimodal (one text per
call, run with adaptive concurrency), Cohere Embed v3 and v4 (up to 96 texts per call).
"""

from __future__ import annotations

import re
from typing import Any

from sync.aws.embedders.base import Embedded, Embedder
from sync.aws.embedders.bedrock import (
    BedrockEmbedder,
    Call,
    CohereEmbedder,
    CohereV4Embedder,
    NovaEmbedder,
    TitanEmbedder,
)
from sync.aws.retry import RetryPolicy
from sync.errors import SyncDefinitionError

#: Model id prefix -> embedder class; the first prefix that matches wins.
FAMILIES: tuple[tuple[str, type[BedrockEmbedder]], ...] = (
    ("amazon.titan-embed-text", TitanEmbedder),
    ("amazon.nova-2-multimodal-embeddings", NovaEmbedder),
    ("cohere.embed-v4", CohereV4Embedder),
    ("cohere.embed", CohereEmbedder),
)


#: A cross-region inference profile id is a geography, a dot, then the model id it serves
#: (``us.cohere.embed-v4:0``); the same prefixes as ``s3vl.embedding_model()`` strips.
_PROFILE = re.compile(r"^(us-gov|us|eu|apac|ca|jp|au|global)\.")


def foundation_model(model: str) -> str:
    """The model id an inference profile id serves (a model id as it is)."""
    return _PROFILE.sub("", model, count=1)


def for_model(model: str, dimensions: int, normalize: bool, client: Any, *, concurrency: int = 8,
              max_concurrency: int | None = None, policy: RetryPolicy | None = None) -> BedrockEmbedder:
    """The embedder for a Bedrock model id (as stored in ``s3vl.syncs.embedding_model``); its
    calls in flight start at ``concurrency`` and adapt up to ``max_concurrency``. An inference
    profile id is invoked as it is, with its model's request shapes."""
    base = foundation_model(model)
    for prefix, cls in FAMILIES:
        if base.startswith(prefix):
            return cls(client, model, dimensions, normalize, concurrency=concurrency,
                       max_concurrency=max_concurrency, policy=policy)
    raise SyncDefinitionError(f"no embedder for model {model!r}")


__all__ = ["BedrockEmbedder", "Call", "CohereEmbedder", "CohereV4Embedder", "Embedded", "Embedder",
           "NovaEmbedder", "TitanEmbedder", "for_model", "foundation_model"]
