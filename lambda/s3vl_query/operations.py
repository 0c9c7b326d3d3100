"""The operations: each takes its validated request and a time budget, and returns the result.

Results use the SQL side's names (``key``, ``distance``, ``similarity_score``, ``metadata``,
``data``, ``found``, ``next_token``); ``sql/idempotent/100-query.sql`` turns them into rows.
``similarity_score`` is ``1 - distance`` for cosine indexes (1.0 = same direction) and
``1 / (1 + distance)`` for euclidean ones (1.0 = same point).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable
from typing import Any

from s3vl_query import aws
from s3vl_query.errors import (
    DimensionMismatchError,
    EmbeddingError,
    InvalidArgumentError,
    VectorNotFoundError,
)
from s3vl_query.requests import (
    MAX_QUERY_TEXT_CHARS,
    MAX_TOP_K,
    GetIndex,
    GetVectors,
    ListVectors,
    Ping,
    Prefilter,
    QueryText,
    QueryVectors,
    Request,
    SimilarTo,
    region_of,
)

GET_VECTORS_BATCH = 100  # S3 Vectors GetVectors: at most 100 keys per call
SOURCE_ID_KEY = "s3vl_id"


def _s3v(index_arn: str) -> Any:
    return aws.client("s3vectors", region_of(index_arn))


def _bedrock(index_arn: str) -> Any:
    region = os.environ.get("AWS_REGION") or region_of(index_arn)
    return aws.client("bedrock-runtime", region)


def similarity(distance: float | None, metric: str | None) -> float | None:
    if distance is None:
        return None
    if metric == "euclidean":
        return 1.0 / (1.0 + distance)
    return 1.0 - distance


def _row(v: dict[str, Any], metric: str | None, with_metadata: bool) -> dict[str, Any]:
    scores = v.get("scores") or {}
    distance = v.get("distance", scores.get("vectorDistance"))
    row: dict[str, Any] = {
        "key": v["key"],
        "distance": distance,
        "similarity_score": similarity(distance, metric),
        "metadata": v.get("metadata") if with_metadata else None,
    }
    if "fused" in scores:
        row["score"] = scores["fused"]
    return row


# --- ping / index -------------------------------------------------------------------------------


def ping(request: Ping, budget: aws.Budget, context: Any) -> dict[str, Any]:
    return {
        "status": "available",
        "function_name": getattr(context, "function_name", None),
        "function_version": getattr(context, "function_version", None),
        "region": os.environ.get("AWS_REGION"),
    }


def get_index(request: GetIndex, budget: aws.Budget) -> dict[str, Any]:
    resp = aws.call(_s3v(request.index_arn).get_index, "GetIndex", budget, indexArn=request.index_arn)
    index = resp["index"]
    meta = index.get("metadataConfiguration") or {}
    return {
        "index_arn": index.get("indexArn", request.index_arn),
        "index_name": index.get("indexName"),
        "bucket_name": index.get("vectorBucketName"),
        "dimension": index.get("dimension"),
        "distance_metric": index.get("distanceMetric"),
        "data_type": index.get("dataType"),
        "index_mode": index.get("indexMode"),
        "non_filterable_keys": list(meta.get("nonFilterableMetadataKeys") or []),
        "searchable_keys": [
            c["metadataKey"]
            for c in meta.get("textSearchConfigurations") or []
            if c.get("status", "ACTIVE") == "ACTIVE"
        ],
    }


# --- queries ------------------------------------------------------------------------------------


def _query_pages(
    index_arn: str,
    budget: aws.Budget,
    top_k: int,
    query_vector: Iterable[float] | None,
    metadata_filter: dict[str, Any] | None,
    return_metadata: bool,
    query_texts: list[dict[str, str]] | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """QueryVectors, following nextToken until ``top_k`` results or the last page."""
    params: dict[str, Any] = {
        "indexArn": index_arn,
        "topK": top_k,
        "returnDistance": True,
        "returnMetadata": return_metadata,
    }
    if query_vector is not None:
        params["queryVector"] = {"float32": list(query_vector)}
    if metadata_filter is not None:
        params["filter"] = metadata_filter
    if query_texts:
        params["queryTexts"] = query_texts
        params["returnScores"] = True
    fn = _s3v(index_arn).query_vectors
    found: list[dict[str, Any]] = []
    metric: str | None = None
    while True:
        resp = aws.call(fn, "QueryVectors", budget, **params)
        found.extend(resp.get("vectors") or [])
        metric = resp.get("distanceMetric", metric)
        token = resp.get("nextToken")
        if not token or len(found) >= top_k:
            break
        params["nextToken"] = token
    return found[:top_k], metric


def _with_prefilter(
    run: Callable[[int, dict[str, Any] | None, bool], tuple[list[dict[str, Any]], str | None]],
    top_k: int,
    metadata_filter: dict[str, Any] | None,
    return_metadata: bool,
    prefilter: Prefilter | None,
) -> tuple[list[dict[str, Any]], str | None, dict[str, Any] | None]:
    """Run a query restricted to ``prefilter.source_ids``: as a filter, or over-fetch + re-rank."""
    if prefilter is None:
        found, metric = run(top_k, metadata_filter, return_metadata)
        return [_row(v, metric, return_metadata) for v in found], metric, None
    ids = prefilter.source_ids
    if prefilter.mode == "filter":
        id_filter: dict[str, Any] = {SOURCE_ID_KEY: {"$in": list(ids)}}
        combined = id_filter if metadata_filter is None else {"$and": [metadata_filter, id_filter]}
        found, metric = run(top_k, combined, return_metadata)
        rows = [_row(v, metric, return_metadata) for v in found]
        return rows, metric, {"mode": "filter", "candidates": len(ids), "fetched": len(found)}
    # Over-fetch: query factor x top_k without the ID restriction, keep the candidates' vectors,
    # re-rank by distance. Finds fewer than top_k when the candidates rank below the fetched depth.
    fetch = min(top_k * prefilter.overfetch_factor, MAX_TOP_K)
    found, metric = run(fetch, metadata_filter, True)
    wanted = set(ids)
    kept = [v for v in found if str((v.get("metadata") or {}).get(SOURCE_ID_KEY)) in wanted]
    kept.sort(key=lambda v: (v.get("distance") is None, v.get("distance") or 0.0))
    rows = [_row(v, metric, return_metadata) for v in kept[:top_k]]
    return rows, metric, {"mode": "overfetch", "candidates": len(ids), "fetched": len(found)}


def query_vectors(request: QueryVectors, budget: aws.Budget) -> dict[str, Any]:
    def run(k: int, flt: dict[str, Any] | None, meta: bool) -> tuple[list[dict[str, Any]], str | None]:
        return _query_pages(request.index_arn, budget, k, request.query_vector, flt, meta)

    rows, metric, pre = _with_prefilter(
        run, request.top_k, request.metadata_filter, request.return_metadata, request.prefilter
    )
    return {"vectors": rows, "distance_metric": metric, "prefilter": pre}


#: A cross-region inference profile id: a geography, a dot, then the model id it serves.
_PROFILE = re.compile(r"^(us-gov|us|eu|apac|ca|jp|au|global)\.")


def embed(model: str, text: str, dimension: int, index_arn: str, budget: aws.Budget) -> tuple[list[float], int | None]:
    """The embedding of ``text`` by Bedrock ``model`` (a model id, or an inference profile id such
    as ``us.cohere.embed-v4:0``, invoked as it is): (vector, input tokens when reported)."""
    body: dict[str, Any]
    base = _PROFILE.sub("", model, count=1)
    if base.startswith("amazon.titan-embed-text-v2"):
        body = {"inputText": text, "dimensions": dimension, "normalize": True}
    elif base.startswith("amazon.titan-embed"):
        body = {"inputText": text}
    elif base.startswith("amazon.nova-2-multimodal-embeddings"):
        body = {
            "taskType": "SINGLE_EMBEDDING",
            "singleEmbeddingParams": {
                "embeddingPurpose": "GENERIC_RETRIEVAL",  # a query against a GENERIC_INDEX corpus
                "embeddingDimension": dimension,
                "text": {"truncationMode": "END", "value": text},
            },
        }
    elif base.startswith("cohere.embed-v4"):
        body = {"texts": [text], "input_type": "search_query", "output_dimension": dimension, "truncate": "RIGHT"}
    elif base.startswith("cohere.embed"):
        body = {"texts": [text], "input_type": "search_query"}
    else:
        raise EmbeddingError(
            f"embedding model {model!r} is not supported; use amazon.titan-embed-text-v2:0, "
            "amazon.titan-embed-text-v1, amazon.nova-2-multimodal-embeddings-v1:0 or cohere.embed-*"
        )
    resp = aws.call(
        _bedrock(index_arn).invoke_model,
        "InvokeModel",
        budget,
        modelId=model,
        body=json.dumps(body).encode(),
        contentType="application/json",
        accept="application/json",
    )
    try:
        doc = json.loads(resp["body"].read())
        if "embedding" in doc:
            vec, tokens = doc["embedding"], doc.get("inputTextTokenCount")
        elif isinstance(doc.get("embeddings"), list) and doc["embeddings"] and isinstance(doc["embeddings"][0], dict):
            vec, tokens = doc["embeddings"][0]["embedding"], None  # Nova: [{"embeddingType", "embedding"}]
        else:
            embeddings = doc["embeddings"]
            vec = embeddings["float"][0] if isinstance(embeddings, dict) else embeddings[0]
            tokens = None
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise EmbeddingError(f"InvokeModel: {model} returned an unexpected response") from exc
    if len(vec) != dimension:
        raise DimensionMismatchError(
            f"{model} returned {len(vec)} dimensions but the index has {dimension}; "
            "register the index with a model (and dimensions) that match it"
        )
    return [float(x) for x in vec], tokens


def query_text(request: QueryText, budget: aws.Budget) -> dict[str, Any]:
    keys = request.text_keys
    if request.hybrid is not False and keys is None:
        keys = tuple(get_index(GetIndex(request.index_arn), budget)["searchable_keys"])
    hybrid = bool(keys) if request.hybrid is None else request.hybrid
    if hybrid and not keys:
        raise InvalidArgumentError(
            "hybrid search needs searchable metadata keys (full-text search configured on the index)"
        )
    vec, tokens = embed(request.embedding_model, request.query_text, request.dimension, request.index_arn, budget)
    texts = [{"text": request.query_text[:MAX_QUERY_TEXT_CHARS], "metadataKey": k} for k in keys or ()][:10]

    def run(k: int, flt: dict[str, Any] | None, meta: bool) -> tuple[list[dict[str, Any]], str | None]:
        return _query_pages(request.index_arn, budget, k, vec, flt, meta, texts if hybrid else None)

    rows, metric, pre = _with_prefilter(
        run, request.top_k, request.metadata_filter, request.return_metadata, request.prefilter
    )
    return {
        "vectors": rows,
        "distance_metric": metric,
        "prefilter": pre,
        "hybrid": hybrid,
        "text_keys": list(keys or ()) if hybrid else [],
        "embedding_model": request.embedding_model,
        "input_tokens": tokens,
    }


def similar_to(request: SimilarTo, budget: aws.Budget) -> dict[str, Any]:
    got = aws.call(
        _s3v(request.index_arn).get_vectors,
        "GetVectors",
        budget,
        indexArn=request.index_arn,
        keys=[request.vector_id],
        returnData=True,
        returnMetadata=False,
    )
    vectors = got.get("vectors") or []
    if not vectors:
        raise VectorNotFoundError(f"vector {request.vector_id!r} is not in the index")
    values = vectors[0]["data"]["float32"]
    k = request.top_k if request.include_self else request.top_k + 1
    found, metric = _query_pages(
        request.index_arn, budget, k, values, request.metadata_filter, request.return_metadata
    )
    if not request.include_self:
        found = [v for v in found if v["key"] != request.vector_id]
    rows = [_row(v, metric, request.return_metadata) for v in found[: request.top_k]]
    return {"vectors": rows, "distance_metric": metric}


# --- get / list ---------------------------------------------------------------------------------


def get_vectors(request: GetVectors, budget: aws.Budget) -> dict[str, Any]:
    unique = list(dict.fromkeys(request.keys))
    fn = _s3v(request.index_arn).get_vectors
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(unique), GET_VECTORS_BATCH):
        resp = aws.call(
            fn,
            "GetVectors",
            budget,
            indexArn=request.index_arn,
            keys=unique[start : start + GET_VECTORS_BATCH],
            returnData=request.return_data,
            returnMetadata=request.return_metadata,
        )
        for v in resp.get("vectors") or []:
            found[v["key"]] = v
    rows = []
    for key in request.keys:  # input order, duplicates kept
        v = found.get(key)
        rows.append(
            {
                "key": key,
                "found": v is not None,
                "data": ((v.get("data") or {}).get("float32") if v and request.return_data else None),
                "metadata": (v.get("metadata") if v and request.return_metadata else None),
            }
        )
    return {"vectors": rows}


def list_vectors(request: ListVectors, budget: aws.Budget) -> dict[str, Any]:
    params: dict[str, Any] = {
        "indexArn": request.index_arn,
        "maxResults": request.max_results,
        "returnData": request.return_data,
        "returnMetadata": request.return_metadata,
    }
    if request.next_token:
        params["nextToken"] = request.next_token
    if request.segment_count is not None:
        params["segmentCount"] = request.segment_count
        params["segmentIndex"] = request.segment_index
    resp = aws.call(_s3v(request.index_arn).list_vectors, "ListVectors", budget, **params)
    rows = [
        {
            "key": v["key"],
            "data": (v.get("data") or {}).get("float32") if request.return_data else None,
            "metadata": v.get("metadata") if request.return_metadata else None,
        }
        for v in resp.get("vectors") or []
    ]
    return {"vectors": rows, "next_token": resp.get("nextToken")}


def run(request: Request, budget: aws.Budget, context: Any) -> dict[str, Any]:
    """Dispatch ``request`` to its operation."""
    if isinstance(request, Ping):
        return ping(request, budget, context)
    if isinstance(request, GetIndex):
        return get_index(request, budget)
    if isinstance(request, QueryVectors):
        return query_vectors(request, budget)
    if isinstance(request, QueryText):
        return query_text(request, budget)
    if isinstance(request, SimilarTo):
        return similar_to(request, budget)
    if isinstance(request, GetVectors):
        return get_vectors(request, budget)
    return list_vectors(request, budget)
