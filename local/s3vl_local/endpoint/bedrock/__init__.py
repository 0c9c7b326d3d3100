"""Local Amazon Bedrock: Runtime ``InvokeModel`` for the Titan, Nova and Cohere embedding models,
and the control plane's batch inference jobs (:mod:`.jobs`).

Vectors are computed in-process by a local embedder (:mod:`s3vl_local.embedding`): ``hash`` by
default, ``minilm`` for semantic search (``--embedder minilm`` / ``S3VL_LOCAL_EMBEDDER``).
:mod:`.models` holds each model's request/response shapes and limits, :mod:`.service` the routes.
"""

from __future__ import annotations

from s3vl_local.endpoint.app import EndpointContext
from s3vl_local.endpoint.bedrock.service import BedrockService


def create_service(ctx: EndpointContext) -> BedrockService:
    return BedrockService(ctx)


__all__ = ["BedrockService", "create_service"]
