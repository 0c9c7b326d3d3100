"""Every embedding model s3vl supports, end to end: create_sync accepts it, the worker embeds with
the model's own request shape through the local Bedrock, and the index holds the vector that an
on-demand InvokeModel of the same text returns."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from sync.aws.embedders import foundation_model
from tests.support.endpoint import EndpointHandle
from tests.support.syncenv import products_env

pytestmark = pytest.mark.usefixtures("aws_env")


def _invoke(endpoint: EndpointHandle, model: str, dims: int, text: str) -> list[float]:
    """The documented on-demand request of each model, built here by hand (not by s3vl)."""
    body: dict[str, Any]
    if "cohere.embed-v4" in model:
        body = {"texts": [text], "input_type": "search_document", "output_dimension": dims}
    elif "amazon.nova" in model:
        body = {"taskType": "SINGLE_EMBEDDING", "singleEmbeddingParams": {
            "embeddingPurpose": "GENERIC_INDEX", "embeddingDimension": dims,
            "text": {"truncationMode": "NONE", "value": text}}}
    else:
        body = {"inputText": text, "dimensions": dims}
    raw = endpoint.client("bedrock-runtime").invoke_model(modelId=model, body=json.dumps(body))["body"].read()
    doc = json.loads(raw)
    if "embedding" in doc:
        return list(doc["embedding"])
    first = doc["embeddings"][0]
    return list(first["embedding"] if isinstance(first, dict) else first)


@pytest.mark.parametrize(("model", "dims", "calls"), [
    ("cohere.embed-v4:0", 512, 1),                           # 12 texts in one call
    ("amazon.nova-2-multimodal-embeddings-v1:0", 384, 12),   # one text per call
    ("amazon.titan-embed-text-v2:0", 256, 12),
    ("us.cohere.embed-v4:0", 256, 1),                        # a cross-region inference profile id
])
def test_sync_with_each_model(db_url: str, endpoint: EndpointHandle, model: str, dims: int, calls: int) -> None:
    env = products_env(db_url, endpoint, rows=12, model=model, dims=dims)
    endpoint.admin.reset()
    env.drain()
    env.assert_converged()
    counted = endpoint.admin.counters()["bedrock"]["InvokeModel"]
    base = foundation_model(model)  # the local Bedrock counts by the model a profile serves
    assert (counted[f"calls:{base}"], counted[f"texts:{base}"]) == (calls, 12)
    text = env.sql("SELECT name || '. ' || coalesce(description, '') FROM products WHERE id = 7")[0][0]
    got = endpoint.client("s3vectors").get_vectors(indexArn=env.index_arn, keys=["7"], returnData=True)
    stored = np.asarray(got["vectors"][0]["data"]["float32"], dtype=np.float32)
    assert stored.shape == (dims,)
    np.testing.assert_allclose(stored, np.asarray(_invoke(endpoint, model, dims, text), dtype=np.float32), atol=1e-6)


def test_create_sync_refuses_a_dimension_the_model_lacks(db_url: str, endpoint: EndpointHandle) -> None:
    with pytest.raises(Exception, match=r"does not produce 768 dimensions \(it supports \{256,512,1024,1536\}\)"):
        products_env(db_url, endpoint, rows=0, model="cohere.embed-v4:0", dims=768)
