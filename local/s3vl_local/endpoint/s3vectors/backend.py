"""The S3 Vectors backend: one method per operation, over the store and in-memory indexes.

Each method takes the request's parameters (already checked against the botocore model by
:mod:`.model`) and returns the response members, raising :class:`~..app.AwsError` for errors.
Validation beyond the model (names, dimensions, metadata limits, filters) lives here, in one
place per operation. Writes go to SQLite first (one transaction per request), then to memory,
both under the index's lock, so readers never see a write that is not durable.

Ignored or simplified parameters (documented where they are handled):
``encryptionConfiguration`` is stored and returned but nothing is encrypted; KMS errors never
occur. Bucket policies are stored verbatim (must be JSON) and never enforced; no
AccessDeniedException. ARNs are resolved by bucket and index name: their region and account
are not checked (ARNs we return use the endpoint's region and account 000000000000).
``queryMode``/index mode: both modes are exact locally (CLASSIC's filter-during-search can
return fewer than topK on AWS; here both behave like ENHANCED). Rate limits are not enforced
(use fault injection for 429s).
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from s3vl_local.endpoint.app import AwsError
from s3vl_local.endpoint.s3vectors import errors
from s3vl_local.endpoint.s3vectors.filters import FilterError, is_number, is_primitive, validate_filter
from s3vl_local.endpoint.s3vectors.index import VectorIndex
from s3vl_local.endpoint.s3vectors.paging import TokenError, decode_token, encode_token, key_hash
from s3vl_local.endpoint.s3vectors.store import BucketRow, IndexRow, Store
from s3vl_local.endpoint.s3vectors.text import RRF_K, rrf

NAME_RE = re.compile(r"[a-z0-9][a-z0-9-.]{1,61}[a-z0-9]")
BUCKET_ARN_RE = re.compile(r"arn:aws[-a-z0-9]*:s3vectors:([a-z0-9-]+):([0-9]{12}):bucket/([^/]+)")
INDEX_ARN_RE = re.compile(r"arn:aws[-a-z0-9]*:s3vectors:([a-z0-9-]+):([0-9]{12}):bucket/([^/]+)/index/([^/]+)")

#: Buckets created before this instant may use CLASSIC mode (botocore model, UpdateIndexMode).
CLASSIC_CUTOFF = 1790726400.0  # 2026-09-30T00:00:00Z

#: Metadata sizes are measured as the UTF-8 bytes of the compact JSON of the metadata (or of
#: its filterable part): AWS documents the limits, not how it measures them.
MAX_METADATA_BYTES = 40 * 1024
MAX_FILTERABLE_METADATA_BYTES = 2 * 1024
MAX_METADATA_KEYS = 50
MAX_TOP_K = 10_000
QUERY_PAGE_SIZE = 100
QUERY_SESSION_TTL_S = 600.0
LIST_PAGE_BYTES = 1024 * 1024
LIST_DEFAULT_MAX = 500
LIST_BUCKETS_DEFAULT_MAX = 500
MAX_PAYLOAD_BYTES = 20 * 1024 * 1024
MAX_TOKEN_CHARS = 2048


@dataclass
class Limits:
    """Service quotas (ServiceQuotaExceededException beyond them); settable for tests via
    ``PUT /_s3vl/s3vectors/limits``."""

    max_buckets: int = 10_000
    max_indexes_per_bucket: int = 10_000
    max_vectors_per_index: int = 2_000_000_000


@dataclass
class _QuerySession:
    fingerprint: str
    created: float
    results: list[dict[str, Any]]


def _compact(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def _size(obj: Any) -> int:
    """Bytes of ``obj`` as compact UTF-8 JSON (orjson; the stdlib for integers beyond 64 bits)."""
    try:
        return len(orjson.dumps(obj))
    except TypeError:
        return len(_compact(obj).encode("utf-8"))


class S3VectorsBackend:
    def __init__(self, data_dir: Path, region: str, account_id: str) -> None:
        self.region = region
        self.account_id = account_id
        self.store = Store(data_dir / "s3vectors.sqlite3")
        self.lock = threading.RLock()  # the catalog: buckets and indexes
        self.limits = Limits()
        self.buckets: dict[str, BucketRow] = {b.name: b for b in self.store.load_buckets()}
        self.indexes: dict[tuple[str, str], VectorIndex] = {}
        self._sessions: dict[str, _QuerySession] = {}
        self._sessions_lock = threading.Lock()
        for row in self.store.load_indexes():
            self.indexes[(row.bucket, row.name)] = self._load_index(row)

    def _load_index(self, row: IndexRow) -> VectorIndex:
        # Sized up front with 25% headroom: growing a 100,000 x 1,024 matrix by doubling costs
        # seconds of copying, at load and in the first PutVectors after it.
        count = self.store.count_vectors(row.id)
        ix = VectorIndex(row, capacity=max(1024, count + count // 4))
        batch_keys: list[str] = []
        batch_data: list[bytes] = []
        batch_md: list[dict[str, Any] | None] = []

        def flush() -> None:
            if batch_keys:
                data = np.frombuffer(b"".join(batch_data), dtype="<f4").reshape(len(batch_keys), row.dimension)
                ix.put(batch_keys, data.astype(np.float32), batch_md)
                batch_keys.clear()
                batch_data.clear()
                batch_md.clear()

        for key, blob, md in self.store.iter_vectors(row.id):
            batch_keys.append(key)
            batch_data.append(blob)
            batch_md.append(None if md is None else orjson.loads(md))
            if len(batch_keys) >= 4096:
                flush()
        flush()
        return ix

    def close(self) -> None:
        self.store.close()

    # -- ARNs and addressing ----------------------------------------------------------------
    def bucket_arn(self, name: str) -> str:
        return f"arn:aws:s3vectors:{self.region}:{self.account_id}:bucket/{name}"

    def index_arn(self, bucket: str, name: str) -> str:
        return f"{self.bucket_arn(bucket)}/index/{name}"

    def _bucket(self, p: Mapping[str, Any]) -> BucketRow:
        name, arn = p.get("vectorBucketName"), p.get("vectorBucketArn")
        if name is not None and arn is not None:
            raise errors.validation("Must specify either vectorBucketName or vectorBucketArn but not both")
        if arn is not None:
            m = BUCKET_ARN_RE.fullmatch(arn)
            if m is None:
                raise errors.field_error("/vectorBucketArn", "Invalid vector bucket ARN")
            name = m.group(3)
        if name is None:
            raise errors.validation("Must specify either vectorBucketName or vectorBucketArn")
        bucket = self.buckets.get(name)
        if bucket is None:
            raise errors.bucket_not_found()
        return bucket

    def _index(self, p: Mapping[str, Any]) -> VectorIndex:
        arn, bucket, name = p.get("indexArn"), p.get("vectorBucketName"), p.get("indexName")
        if arn is not None:
            if bucket is not None or name is not None:
                raise errors.validation("Must specify either indexArn or both vectorBucketName and indexName")
            m = INDEX_ARN_RE.fullmatch(arn)
            if m is None:
                raise errors.field_error("/indexArn", "Invalid index ARN")
            bucket, name = m.group(3), m.group(4)
        if bucket is None or name is None:
            raise errors.validation("Must specify either indexArn or both vectorBucketName and indexName")
        with self.lock:
            if bucket not in self.buckets:
                raise errors.bucket_not_found()
            ix = self.indexes.get((bucket, name))
        if ix is None:
            raise errors.index_not_found()
        return ix

    # -- buckets ------------------------------------------------------------------------------
    def create_vector_bucket(self, p: Mapping[str, Any]) -> dict[str, Any]:
        name = p["vectorBucketName"]
        if not NAME_RE.fullmatch(name):
            raise errors.field_error("/vectorBucketName", "Invalid vector bucket name")
        encryption = self._encryption(p.get("encryptionConfiguration"))
        tags = dict(p.get("tags") or {})
        with self.lock:
            if name in self.buckets:
                raise errors.bucket_exists()
            if len(self.buckets) >= self.limits.max_buckets:
                raise errors.quota("You have reached the maximum number of vector buckets allowed")
            row = BucketRow(name, time.time(), encryption, "ENHANCED", None, tags)
            self.store.insert_bucket(row)
            self.buckets[name] = row
        return {"vectorBucketArn": self.bucket_arn(name)}

    @staticmethod
    def _encryption(conf: Mapping[str, Any] | None) -> dict[str, Any]:
        # Stored and returned; nothing is encrypted locally.
        if not conf:
            return {"sseType": "AES256"}
        sse = conf.get("sseType", "AES256")
        if sse == "aws:kms" and not conf.get("kmsKeyArn"):
            raise errors.field_error(
                "/encryptionConfiguration/kmsKeyArn", "kmsKeyArn is required when sseType is aws:kms"
            )
        if sse == "AES256" and conf.get("kmsKeyArn"):
            raise errors.field_error(
                "/encryptionConfiguration/kmsKeyArn", "kmsKeyArn can only be specified when sseType is aws:kms"
            )
        return {k: v for k, v in {"sseType": sse, "kmsKeyArn": conf.get("kmsKeyArn")}.items() if v}

    def get_vector_bucket(self, p: Mapping[str, Any]) -> dict[str, Any]:
        with self.lock:
            b = self._bucket(p)
            return {
                "vectorBucket": {
                    "vectorBucketName": b.name,
                    "vectorBucketArn": self.bucket_arn(b.name),
                    "creationTime": b.created,
                    "encryptionConfiguration": b.encryption or {"sseType": "AES256"},
                    "defaultIndexMode": b.default_index_mode,
                }
            }

    def list_vector_buckets(self, p: Mapping[str, Any]) -> dict[str, Any]:
        limit = p.get("maxResults") or LIST_BUCKETS_DEFAULT_MAX
        after = self._name_token(p.get("nextToken"), "b")
        prefix = p.get("prefix") or ""
        with self.lock:
            names = sorted(n for n in self.buckets if n.startswith(prefix) and (after is None or n > after))
            page = names[:limit]
            out: dict[str, Any] = {
                "vectorBuckets": [
                    {
                        "vectorBucketName": n,
                        "vectorBucketArn": self.bucket_arn(n),
                        "creationTime": self.buckets[n].created,
                    }
                    for n in page
                ]
            }
        if len(names) > limit:
            out["nextToken"] = encode_token({"b": page[-1]})
        return out

    @staticmethod
    def _name_token(token: str | None, kind: str) -> str | None:
        if token is None:
            return None
        try:
            state = decode_token(token)
        except TokenError as exc:
            raise errors.field_error("/nextToken", str(exc)) from exc
        value = state.get(kind)
        if not isinstance(value, str):
            raise errors.field_error("/nextToken", "The provided pagination token is invalid")
        return value

    def delete_vector_bucket(self, p: Mapping[str, Any]) -> dict[str, Any]:
        with self.lock:
            b = self._bucket(p)
            if any(bucket == b.name for bucket, _ in self.indexes):
                raise errors.bucket_not_empty()
            self.store.delete_bucket(b.name)
            del self.buckets[b.name]
        return {}

    def put_vector_bucket_policy(self, p: Mapping[str, Any]) -> dict[str, Any]:
        # Stored verbatim and returned by GetVectorBucketPolicy; never enforced locally.
        policy = p["policy"]
        try:
            doc = json.loads(policy)
        except ValueError as exc:
            raise errors.field_error("/policy", "Policy has invalid json") from exc
        if not isinstance(doc, dict):
            raise errors.field_error("/policy", "Policy has invalid json")
        with self.lock:
            b = self._bucket(p)
            b.policy = policy
            self.store.update_bucket(b)
        return {}

    def get_vector_bucket_policy(self, p: Mapping[str, Any]) -> dict[str, Any]:
        with self.lock:
            b = self._bucket(p)
            if b.policy is None:
                raise errors.policy_not_found()
            return {"policy": b.policy}

    def delete_vector_bucket_policy(self, p: Mapping[str, Any]) -> dict[str, Any]:
        with self.lock:
            b = self._bucket(p)
            if b.policy is not None:
                b.policy = None
                self.store.update_bucket(b)
        return {}

    def put_vector_bucket_default_index_mode(self, p: Mapping[str, Any]) -> dict[str, Any]:
        mode = p["defaultIndexMode"]
        with self.lock:
            b = self._bucket(p)
            if mode == "CLASSIC" and b.created >= CLASSIC_CUTOFF:
                raise errors.field_error(
                    "/defaultIndexMode",
                    "CLASSIC mode is only available for vector buckets created before September 30, 2026",
                )
            b.default_index_mode = mode
            self.store.update_bucket(b)
        return {}

    # -- indexes ------------------------------------------------------------------------------
    def create_index(self, p: Mapping[str, Any]) -> dict[str, Any]:
        name = p["indexName"]
        if not NAME_RE.fullmatch(name):
            raise errors.field_error("/indexName", "Invalid index name")
        conf = p.get("metadataConfiguration") or {}
        non_filterable = list(conf.get("nonFilterableMetadataKeys") or [])
        if len(set(non_filterable)) != len(non_filterable):
            raise errors.field_error(
                "/metadataConfiguration/nonFilterableMetadataKeys", "Non-filterable metadata keys must be unique"
            )
        text_search = self._text_configs(conf.get("textSearchConfigurations") or [], [])
        encryption = self._encryption(p.get("encryptionConfiguration"))
        with self.lock:
            b = self._bucket(p)
            if (b.name, name) in self.indexes:
                raise errors.index_exists()
            if sum(1 for bucket, _ in self.indexes if bucket == b.name) >= self.limits.max_indexes_per_bucket:
                raise errors.quota("You have reached the maximum number of indexes allowed in this vector bucket")
            if text_search and b.default_index_mode != "ENHANCED":
                raise errors.validation("Text search configurations require a vector index in ENHANCED mode")
            row = IndexRow(
                0, b.name, name, time.time(), p["dataType"], p["dimension"], p["distanceMetric"],
                non_filterable, text_search, encryption, b.default_index_mode, dict(p.get("tags") or {}),
            )  # fmt: skip
            row.id = self.store.insert_index(row)
            self.indexes[(b.name, name)] = VectorIndex(row)
        return {"indexArn": self.index_arn(b.name, name)}

    @staticmethod
    def _text_configs(configs: list[dict[str, Any]], existing: list[dict[str, Any]]) -> list[dict[str, Any]]:
        seen = {c["metadataKey"] for c in existing}
        out = []
        for i, c in enumerate(configs):
            key = c["metadataKey"]
            if key in seen:
                raise errors.field_error(
                    f"/metadataConfiguration/textSearchConfigurations/{i}/metadataKey",
                    f"Duplicate text search configuration for metadata key '{key}'",
                )
            seen.add(key)
            entry = {"metadataKey": key, "status": "ACTIVE"}
            if c.get("language"):
                entry["language"] = c["language"]  # accepted; no language-specific analysis locally
            out.append(entry)
        return out

    def _index_description(self, ix: VectorIndex) -> dict[str, Any]:
        r = ix.row
        conf: dict[str, Any] = {}
        if r.non_filterable:
            conf["nonFilterableMetadataKeys"] = list(r.non_filterable)
        if r.text_search:
            conf["textSearchConfigurations"] = [dict(c) for c in r.text_search]
        out: dict[str, Any] = {
            "vectorBucketName": r.bucket,
            "indexName": r.name,
            "indexArn": self.index_arn(r.bucket, r.name),
            "creationTime": r.created,
            "dataType": r.data_type,
            "dimension": r.dimension,
            "distanceMetric": r.metric,
            "encryptionConfiguration": r.encryption or {"sseType": "AES256"},
            "indexMode": r.mode,
        }
        if conf:
            out["metadataConfiguration"] = conf
        return out

    def get_index(self, p: Mapping[str, Any]) -> dict[str, Any]:
        ix = self._index(p)
        return {"index": self._index_description(ix)}

    def list_indexes(self, p: Mapping[str, Any]) -> dict[str, Any]:
        limit = p.get("maxResults") or LIST_BUCKETS_DEFAULT_MAX
        after = self._name_token(p.get("nextToken"), "i")
        prefix = p.get("prefix") or ""
        with self.lock:
            b = self._bucket(p)
            names = sorted(
                n
                for bucket, n in self.indexes
                if bucket == b.name and n.startswith(prefix) and (after is None or n > after)
            )
            page = names[:limit]
            out: dict[str, Any] = {
                "indexes": [
                    {
                        "vectorBucketName": b.name,
                        "indexName": n,
                        "indexArn": self.index_arn(b.name, n),
                        "creationTime": self.indexes[(b.name, n)].row.created,
                    }
                    for n in page
                ]
            }
        if len(names) > limit:
            out["nextToken"] = encode_token({"i": page[-1]})
        return out

    def delete_index(self, p: Mapping[str, Any]) -> dict[str, Any]:
        with self.lock:
            ix = self._index(p)
            with ix.lock:
                self.store.delete_index(ix.row.id)
                del self.indexes[(ix.row.bucket, ix.row.name)]
        return {}

    def update_index_mode(self, p: Mapping[str, Any]) -> dict[str, Any]:
        mode = p["indexMode"]
        with self.lock:
            ix = self._index(p)
            b = self.buckets[ix.row.bucket]
            if mode == "CLASSIC" and b.created >= CLASSIC_CUTOFF:
                raise errors.field_error(
                    "/indexMode",
                    "CLASSIC mode is only available for vector indexes in vector buckets "
                    "created before September 30, 2026",
                )
            if mode == "CLASSIC" and ix.row.text_search:
                raise errors.validation("A vector index with text search configurations must be in ENHANCED mode")
            with ix.lock:
                ix.row.mode = mode
                self.store.update_index(ix.row)
        return {}

    def update_metadata_configuration(self, p: Mapping[str, Any]) -> dict[str, Any]:
        add, delete = p.get("add"), p.get("delete")
        if (add is None) == (delete is None):
            raise errors.validation("Specify either add or delete, but not both")
        ix = self._index(p)
        with ix.lock:
            if ix.row.mode != "ENHANCED":
                raise errors.validation("The vector index must be in ENHANCED mode")
            current = list(ix.row.text_search)
            if add is not None:
                configs = add.get("textSearchConfigurations") or []
                for c in configs:
                    if any(e["metadataKey"] == c["metadataKey"] for e in current):
                        raise AwsError(
                            409, "ConflictException",
                            f"A text search configuration already exists for metadata key '{c['metadataKey']}'",
                        )  # fmt: skip
                new = self._text_configs(configs, current)
                if len(current) + len(new) > 10:
                    raise errors.validation("A vector index can have at most 10 text search configurations")
                ix.row.text_search = current + new
                ix.rebuild_text([c["metadataKey"] for c in new])
            else:
                assert delete is not None
                keys = [c["metadataKey"] for c in delete.get("textSearchConfigurations") or []]
                for k in keys:
                    if not any(e["metadataKey"] == k for e in current):
                        raise errors.resource_not_found()
                ix.row.text_search = [e for e in current if e["metadataKey"] not in keys]
                for k in keys:
                    ix.text.pop(k, None)
            self.store.update_index(ix.row)
        return {"indexArn": self.index_arn(ix.row.bucket, ix.row.name)}

    # -- tags ---------------------------------------------------------------------------------
    def _tagged(self, arn: str) -> tuple[BucketRow | None, VectorIndex | None]:
        m = INDEX_ARN_RE.fullmatch(arn)
        if m is not None:
            ix = self.indexes.get((m.group(3), m.group(4)))
            if ix is None:
                raise errors.resource_not_found()
            return None, ix
        m = BUCKET_ARN_RE.fullmatch(arn)
        if m is not None:
            b = self.buckets.get(m.group(3))
            if b is None:
                raise errors.resource_not_found()
            return b, None
        raise errors.field_error("/resourceArn", "Invalid resource ARN")

    def tag_resource(self, p: Mapping[str, Any]) -> dict[str, Any]:
        with self.lock:
            b, ix = self._tagged(p["resourceArn"])
            tags = dict(p.get("tags") or {})
            if b is not None:
                merged = {**b.tags, **tags}
                if len(merged) > 50:
                    raise errors.validation("A resource can have at most 50 tags")
                b.tags = merged
                self.store.update_bucket(b)
            elif ix is not None:
                merged = {**ix.row.tags, **tags}
                if len(merged) > 50:
                    raise errors.validation("A resource can have at most 50 tags")
                ix.row.tags = merged
                self.store.update_index(ix.row)
        return {}

    def untag_resource(self, p: Mapping[str, Any]) -> dict[str, Any]:
        keys = set(p.get("tagKeys") or [])
        with self.lock:
            b, ix = self._tagged(p["resourceArn"])
            if b is not None:
                b.tags = {k: v for k, v in b.tags.items() if k not in keys}
                self.store.update_bucket(b)
            elif ix is not None:
                ix.row.tags = {k: v for k, v in ix.row.tags.items() if k not in keys}
                self.store.update_index(ix.row)
        return {}

    def list_tags_for_resource(self, p: Mapping[str, Any]) -> dict[str, Any]:
        with self.lock:
            b, ix = self._tagged(p["resourceArn"])
            tags = b.tags if b is not None else ix.row.tags if ix is not None else {}
            return {"tags": dict(tags)}

    # -- vectors: writes ----------------------------------------------------------------------
    def put_vectors(self, p: Mapping[str, Any]) -> tuple[dict[str, Any], int]:
        ix = self._index(p)
        vectors = p["vectors"]
        dim = ix.dim
        problems: list[tuple[str, str]] = []
        keys: list[str] = []
        metas: list[dict[str, Any] | None] = []
        lists: list[Any] = []
        non_filterable = ix.non_filterable
        for i, v in enumerate(vectors):
            key = v["key"]
            raw = (v.get("data") or {}).get("float32")
            if not isinstance(raw, list):
                problems.append((f"/vectors/{i}/data", f"Invalid record for key '{key}': vector data must be float32"))
                continue
            if len(raw) != dim:
                problems.append(
                    (
                        f"/vectors/{i}/data/float32",
                        f"Invalid record for key '{key}': vector must have length {dim}, but has length {len(raw)}",
                    )
                )
                continue
            md = v.get("metadata")
            problem = self._check_metadata(key, md, non_filterable)
            if problem:
                problems.append((f"/vectors/{i}/metadata", problem))
                continue
            keys.append(key)
            metas.append(md if md else None)
            lists.append(raw)
        data = np.zeros((0, dim), dtype=np.float32)
        # numpy converts the lists in one call; it also accepts numeric strings and booleans,
        # which boto3's own validation never sends (a documented local leniency).
        if not problems:
            try:
                with np.errstate(over="ignore", invalid="ignore"):
                    data = np.asarray(lists, dtype=np.float32)
            except (ValueError, TypeError):
                problems.append(("/vectors", "Invalid vector data: every element must be a number"))
        if not problems:
            finite = [bool(x) for x in np.atleast_1d(np.isfinite(data).all(axis=1))]
            zero = (
                [not bool(x) for x in np.atleast_1d(data.any(axis=1))]
                if ix.row.metric == "cosine"
                else [False] * len(keys)
            )
            for j, key in enumerate(keys):
                if not finite[j]:
                    why = "vector must not contain NaN or infinite values"
                elif zero[j]:
                    why = "vector must not be a zero vector for the cosine distance metric"
                else:
                    continue
                problems.append((f"/vectors/{j}/data/float32", f"Invalid record for key '{key}': {why}"))
        if problems:
            raise errors.validation(problems[0][1], [{"path": path, "message": m} for path, m in problems])
        # A key repeated in one request: the last occurrence wins (as successive puts would).
        last: dict[str, int] = {k: i for i, k in enumerate(keys)}
        if len(last) != len(keys):
            order = sorted(last.values())
            keys = [keys[i] for i in order]
            metas = [metas[i] for i in order]
            data = data[order]
        blob_data = data.astype("<f4", copy=False)
        rows = [
            (k, key_hash(k), blob_data[i].tobytes(), None if m is None else _compact(m))
            for i, (k, m) in enumerate(zip(keys, metas, strict=True))
        ]
        with ix.lock:
            self._check_live(ix)
            new = sum(1 for k in keys if k not in ix.slots)
            if len(ix) + new > self.limits.max_vectors_per_index:
                raise errors.quota("You have reached the maximum number of vectors allowed in this index")
            self.store.put_vectors(ix.row.id, rows)
            ix.put(keys, data, metas)
        return {}, len(keys)

    def _check_live(self, ix: VectorIndex) -> None:
        """The index was not deleted between lookup and lock."""
        if self.indexes.get((ix.row.bucket, ix.row.name)) is not ix:
            raise errors.index_not_found()

    @staticmethod
    def _check_metadata(key: str, md: Any, non_filterable: set[str]) -> str | None:
        if md is None:
            return None
        bad = f"Invalid record for key '{key}':"
        if not isinstance(md, dict):
            return f"{bad} metadata must be a JSON object"
        if len(md) > MAX_METADATA_KEYS:
            return f"{bad} metadata must have at most {MAX_METADATA_KEYS} keys, but has {len(md)}"
        for mkey, value in md.items():
            if not mkey:
                return f"Invalid record for key '{key}': metadata keys must not be empty"
            if isinstance(value, list):
                if not all(is_primitive(x) for x in value):
                    return f"{bad} metadata key '{mkey}' must be a string, number, boolean or an array of them"
            elif not is_primitive(value):
                return f"{bad} metadata key '{mkey}' must be a string, number, boolean or an array of them"
            elif is_number(value) and not np.isfinite(float(value)):
                return f"Invalid record for key '{key}': metadata key '{mkey}' must be a finite number"
        total = _size(md)
        if total > MAX_METADATA_BYTES:
            return f"{bad} metadata size {total} bytes exceeds the limit of {MAX_METADATA_BYTES} bytes"
        filterable = {k: v for k, v in md.items() if k not in non_filterable}
        fsize = _size(filterable) if filterable else 0
        if fsize > MAX_FILTERABLE_METADATA_BYTES:
            return (
                f"Invalid record for key '{key}': filterable metadata size {fsize} bytes exceeds the limit of "
                f"{MAX_FILTERABLE_METADATA_BYTES} bytes"
            )
        return None

    def delete_vectors(self, p: Mapping[str, Any]) -> tuple[dict[str, Any], int]:
        ix = self._index(p)
        keys = list(dict.fromkeys(p["keys"]))
        with ix.lock:
            self._check_live(ix)
            present = [k for k in keys if k in ix.slots]
            if present:
                self.store.delete_vectors(ix.row.id, present)
                ix.delete(present)
        return {}, len(present)

    # -- vectors: reads -----------------------------------------------------------------------
    def _vector_out(self, ix: VectorIndex, key: str, want_data: bool, want_md: bool) -> dict[str, Any] | None:
        got = ix.get(key)
        if got is None:
            return None
        data, md = got
        out: dict[str, Any] = {"key": key}
        if want_data:
            out["data"] = {"float32": data.tolist()}
        if want_md:
            out["metadata"] = md if md is not None else {}
        return out

    def get_vectors(self, p: Mapping[str, Any]) -> tuple[dict[str, Any], int]:
        ix = self._index(p)
        want_data, want_md = bool(p.get("returnData")), bool(p.get("returnMetadata"))
        out = []
        with ix.lock:
            for key in dict.fromkeys(p["keys"]):
                v = self._vector_out(ix, key, want_data, want_md)
                if v is not None:
                    out.append(v)
        return {"vectors": out}, len(out)

    def list_vectors(self, p: Mapping[str, Any]) -> tuple[dict[str, Any], int]:
        ix = self._index(p)
        count, index = p.get("segmentCount"), p.get("segmentIndex")
        if (count is None) != (index is None):
            raise errors.validation(
                "If you specify segmentCount, you must also specify segmentIndex"
                if index is None
                else "If you provide segmentIndex, you must also provide segmentCount"
            )
        if count is not None and index is not None and index >= count:
            raise errors.field_error(
                "/segmentIndex", "The value of segmentIndex must be less than the value of segmentCount"
            )
        segment = (count, index) if count is not None and index is not None else None
        limit = p.get("maxResults") or LIST_DEFAULT_MAX
        after = None
        if p.get("nextToken") is not None:
            state = self._load_token(p["nextToken"])
            if state.get("seg") != (list(segment) if segment else None) or state.get("ix") != ix.row.id:
                raise errors.field_error("/nextToken", "The provided pagination token is invalid")
            after = state["k"]
        want_data, want_md = bool(p.get("returnData")), bool(p.get("returnMetadata"))
        out: list[dict[str, Any]] = []
        size = 0
        more = False
        with ix.lock:
            self._check_live(ix)
            keys = self.store.list_keys(ix.row.id, after, limit + 1, segment)
            for key in keys[:limit]:
                if out and size > LIST_PAGE_BYTES:
                    more = True
                    break
                v = self._vector_out(ix, key, want_data, want_md)
                if v is None:
                    continue
                out.append(v)
                size += len(key) + 16 + (ix.dim * 12 if want_data else 0)
                if want_md and v.get("metadata"):
                    size += _size(v["metadata"])
            more = more or len(keys) > limit
        result: dict[str, Any] = {"vectors": out}
        if more and out:
            result["nextToken"] = self._save_token(
                {"ix": ix.row.id, "seg": list(segment) if segment else None, "k": out[-1]["key"]}
            )
        return result, len(out)

    def _save_token(self, state: dict[str, Any]) -> str:
        token = encode_token(state)
        if len(token) <= MAX_TOKEN_CHARS:
            return token
        # Very long keys: keep the state server-side (durably) and hand out a short reference.
        token_id = secrets.token_hex(16)
        self.store.save_token(token_id, _compact(state), time.time())
        return encode_token({"ref": token_id})

    def _load_token(self, token: str) -> dict[str, Any]:
        try:
            state = decode_token(token)
            if "ref" in state:
                raw = self.store.load_token(str(state["ref"]))
                if raw is None:
                    raise TokenError("The provided pagination token is invalid")
                state = json.loads(raw)
        except TokenError as exc:
            raise errors.field_error("/nextToken", str(exc)) from exc
        if not isinstance(state.get("k"), str):
            raise errors.field_error("/nextToken", "The provided pagination token is invalid")
        return state

    # -- QueryVectors -------------------------------------------------------------------------
    def query_vectors(self, p: Mapping[str, Any]) -> tuple[dict[str, Any], int]:
        ix = self._index(p)
        top_k = p["topK"]
        if top_k > MAX_TOP_K:
            raise errors.field_error(
                "/topK",
                f"Value {top_k} at '/topK' failed to satisfy constraint: "
                f"Member must be between 1 and {MAX_TOP_K}, inclusive",
            )
        qv = p.get("queryVector")
        texts = p.get("queryTexts")
        if qv is None and not texts:
            raise errors.validation("A request must include queryVector, queryTexts, or both")
        mode = p.get("queryMode")
        if mode == "CLASSIC" and ix.row.mode == "ENHANCED":
            raise errors.field_error("/queryMode", "You can't specify CLASSIC for an ENHANCED index")
        flt = p.get("filter")
        if flt is not None:
            try:
                validate_filter(flt, ix.non_filterable)
            except FilterError as exc:
                raise errors.field_error("/filter", str(exc)) from exc
        query = None
        if qv is not None:
            raw = qv.get("float32")
            if not isinstance(raw, list):
                raise errors.field_error("/queryVector", "Invalid query vector: vector data must be float32")
            if len(raw) != ix.dim:
                raise errors.field_error(
                    "/queryVector/float32",
                    f"Invalid query vector: vector must have length {ix.dim}, but has length {len(raw)}",
                )
            try:
                with np.errstate(over="ignore", invalid="ignore"):
                    query = np.asarray(raw, dtype=np.float32)
            except (ValueError, TypeError) as exc:
                raise errors.field_error(
                    "/queryVector/float32", "Invalid query vector: every element must be a number"
                ) from exc
            if not np.isfinite(query).all():
                raise errors.field_error(
                    "/queryVector/float32", "Invalid query vector: vector must not contain NaN or infinite values"
                )
            if ix.row.metric == "cosine" and not query.any():
                raise errors.field_error(
                    "/queryVector/float32",
                    "Invalid query vector: vector must not be a zero vector for the cosine distance metric",
                )
        if texts:
            if ix.row.mode != "ENHANCED":
                raise errors.validation("Full-text and hybrid searches require a vector index in ENHANCED mode")
            searchable = {c["metadataKey"] for c in ix.row.text_search}
            seen: set[str] = set()
            for i, t in enumerate(texts):
                if t["metadataKey"] not in searchable:
                    raise errors.field_error(
                        f"/queryTexts/{i}/metadataKey",
                        f"Metadata key '{t['metadataKey']}' is not a searchable metadata key",
                    )
                if t["metadataKey"] in seen:
                    raise errors.field_error(
                        f"/queryTexts/{i}/metadataKey",
                        "Each entry in queryTexts must target a distinct searchable metadata key",
                    )
                seen.add(t["metadataKey"])
        want_md, want_dist, want_scores = (
            bool(p.get("returnMetadata")),
            bool(p.get("returnDistance")),
            bool(p.get("returnScores")),
        )
        fingerprint = hashlib.sha256(
            _compact([ix.row.id, top_k, qv, texts, flt, want_md, want_dist, want_scores]).encode()
        ).hexdigest()
        token = p.get("nextToken")
        if token is not None:
            results, offset = self._resume(token, fingerprint)
        else:
            with ix.lock:
                results = self._rank(ix, query, texts or [], flt, top_k, want_md, want_dist, want_scores)
            offset = 0
        page = results[offset : offset + QUERY_PAGE_SIZE]
        out: dict[str, Any] = {"vectors": page, "distanceMetric": ix.row.metric}
        if offset + QUERY_PAGE_SIZE < len(results):
            out["nextToken"] = self._session_token(token, fingerprint, results, offset + QUERY_PAGE_SIZE)
        return out, len(page)

    def _rank(
        self,
        ix: VectorIndex,
        query: Any,
        texts: list[dict[str, Any]],
        flt: Any,
        top_k: int,
        want_md: bool,
        want_dist: bool,
        want_scores: bool,
    ) -> list[dict[str, Any]]:
        mask = ix.filter_mask(flt)
        vector_hits = ix.nearest(query, top_k, mask) if query is not None else []
        if not texts:
            out = []
            for h in vector_hits:
                item: dict[str, Any] = {"key": h.key}
                if want_dist:
                    item["distance"] = h.distance
                if want_md:
                    item["metadata"] = ix.metadata[h.slot] or {}
                out.append(item)
            return out
        # Full-text (BM25 per searchable key) and hybrid (RRF) ranking.
        allowed = mask.__getitem__
        per_key: dict[str, dict[int, float]] = {}
        rankings: list[list[int]] = []
        for t in texts:
            scores = ix.text[t["metadataKey"]].score(t["text"], lambda s: s < len(mask) and bool(allowed(s)))
            per_key[t["metadataKey"]] = scores
            ranked = sorted(scores, key=lambda s: (-scores[s], ix.keys[s] or ""))[:top_k]
            rankings.append(ranked)
        distance = {h.slot: h.distance for h in vector_hits}
        hybrid = query is not None
        if hybrid:
            fused = rrf([[h.slot for h in vector_hits], *rankings], RRF_K)
            order = sorted(fused, key=lambda s: (-fused[s], ix.keys[s] or ""))
        else:
            total: dict[int, float] = {}
            for ranked, t in zip(rankings, texts, strict=True):
                for s in ranked:
                    total[s] = total.get(s, 0.0) + per_key[t["metadataKey"]][s]
            fused = total
            order = sorted(total, key=lambda s: (-total[s], ix.keys[s] or ""))
        out = []
        for s in order[:top_k]:
            item = {"key": ix.keys[s] or ""}
            if want_dist and s in distance:
                item["distance"] = distance[s]
            if want_md:
                item["metadata"] = ix.metadata[s] or {}
            if want_scores:
                scores_out: dict[str, Any] = {
                    "bm25Scores": [{"metadataKey": k, "score": v[s]} for k, v in per_key.items() if s in v]
                }
                if hybrid:
                    scores_out["fused"] = fused[s]
                    if s in distance:
                        scores_out["vectorDistance"] = distance[s]
                item["scores"] = scores_out
            out.append(item)
        return out

    def _session_token(self, token: str | None, fingerprint: str, results: list[dict[str, Any]], offset: int) -> str:
        now = time.time()
        with self._sessions_lock:
            for sid in [s for s, v in self._sessions.items() if now - v.created > QUERY_SESSION_TTL_S]:
                del self._sessions[sid]
            sid = decode_token(token)["q"] if token is not None else secrets.token_hex(12)
            self._sessions.setdefault(sid, _QuerySession(fingerprint, now, results))
        return encode_token({"q": sid, "o": offset})

    def _resume(self, token: str, fingerprint: str) -> tuple[list[dict[str, Any]], int]:
        try:
            state = decode_token(token)
        except TokenError as exc:
            raise errors.field_error("/nextToken", str(exc)) from exc
        with self._sessions_lock:
            session = self._sessions.get(str(state.get("q")))
        offset = state.get("o")
        if session is None or not isinstance(offset, int) or time.time() - session.created > QUERY_SESSION_TTL_S:
            raise errors.field_error(
                "/nextToken", "The pagination token has expired or is invalid. Re-issue the original query."
            )
        if session.fingerprint != fingerprint:
            raise errors.field_error(
                "/nextToken",
                "The pagination token does not match the query. Use the same parameters as the original query.",
            )
        return session.results, offset

    def limits_json(self) -> dict[str, Any]:
        return asdict(self.limits)
