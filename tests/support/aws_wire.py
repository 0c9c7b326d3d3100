"""What a boto3 client puts on the wire, without a network: capture in ``before-send``, canned
answers, and an independent SigV4 verifier (hashlib/hmac only, no botocore code)."""

from __future__ import annotations

import copy
import hashlib
import hmac
import re
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import boto3
import numpy as np
from botocore.awsrequest import AWSResponse
from botocore.config import Config

ACCESS_KEY = "AKIDEXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
REGION = "us-east-1"
ARN = "arn:aws:s3vectors:us-east-1:123456789012:bucket/my-bucket/index/my-index"


def make_client(service: str = "s3vectors", endpoint_url: str | None = None, **config: Any) -> Any:
    """A client with dummy credentials and botocore's standard retries (3 attempts)."""
    cfg: dict[str, Any] = {"retries": {"mode": "standard", "total_max_attempts": 3}}
    cfg.update(config)
    return boto3.session.Session().client(service, region_name=REGION, aws_access_key_id=ACCESS_KEY,
                                          aws_secret_access_key=SECRET_KEY, endpoint_url=endpoint_url,
                                          config=Config(**cfg))


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body

    def read(self, *_: Any, **__: Any) -> bytes:
        body, self._body = self._body, b""
        return body


def canned_response(url: str, status: int, body: bytes) -> AWSResponse:
    headers = {"content-type": "application/json", "x-amzn-requestid": "req-1", "content-length": str(len(body))}
    if status >= 300:
        headers["x-amzn-errortype"] = "InternalServerException"
    return AWSResponse(url, status, headers, _Raw(body))


class Capture:
    """Answers every request of ``client`` in ``before-send`` and records what would have been sent."""

    def __init__(self, client: Any, responses: list[tuple[int, bytes]] | None = None,
                 default: tuple[int, bytes] = (200, b"{}")) -> None:
        self.requests: list[dict[str, Any]] = []
        self.responses = list(responses or [])
        self.default = default
        self.lock = threading.Lock()
        sid = client.meta.service_model.service_id.hyphenize()
        client.meta.events.register(f"before-send.{sid}", self)

    def __call__(self, request: Any, **_: Any) -> AWSResponse:
        body = request.body.read() if hasattr(request.body, "read") else request.body
        with self.lock:
            self.requests.append({"method": request.method, "url": request.url,
                                  "headers": copy.copy(request.headers), "body": body or b""})
            status, payload = self.responses.pop(0) if self.responses else self.default
        return canned_response(request.url, status, payload)

    @property
    def last(self) -> dict[str, Any]:
        return self.requests[-1]


_AUTH = re.compile(r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, "
                   r"SignedHeaders=([^,]+), Signature=([0-9a-f]{64})$")


def sigv4_valid(method: str, url: str, headers: Any, body: bytes, secret_key: str = SECRET_KEY) -> bool:
    """Whether a request's SigV4 signature covers exactly these bytes (recomputed from scratch)."""
    def get(name: str) -> str | None:
        value = headers.get(name)
        return value.decode() if isinstance(value, bytes) else value

    match = _AUTH.match(get("Authorization") or "")
    if not match:
        return False
    _, day, region, service, signed, signature = match.groups()
    parts = urlsplit(url)
    query = "&".join(f"{k}={v}" for k, v in sorted(
        (quote(k, safe="-_.~"), quote(v, safe="-_.~")) for k, v in parse_qsl(parts.query, keep_blank_values=True)))
    lines = []
    for name in signed.split(";"):
        value = get(name) or (parts.netloc if name == "host" else "")
        lines.append(f"{name}:{' '.join(value.split())}\n")
    canonical = "\n".join([method.upper(), quote(parts.path or "/", safe="/~"), query, "".join(lines), signed,
                           hashlib.sha256(body or b"").hexdigest()])
    scope = f"{day}/{region}/{service}/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", get("X-Amz-Date") or "", scope,
                         hashlib.sha256(canonical.encode()).hexdigest()])
    key = ("AWS4" + secret_key).encode()
    for part in (day, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.compare_digest(hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest(), signature)


def random_vectors(n: int = 500, dim: int = 1024, seed: int = 0) -> list[dict[str, Any]]:
    """PutVectors items with float32 ndarray data (zero, -0, a subnormal, the maximum) and varied metadata."""
    rng = np.random.default_rng(seed)
    data = rng.standard_normal((n, dim)).astype(np.float32)
    data[0, :4] = [0.0, -0.0, 1e-45, 3.4028235e38]
    return [{"key": f"doc-{seed}-{i}", "data": {"float32": data[i]},
             "metadata": {"id": i, "title": f"caf\u00e9 \u2615 \"{i}\"", "price": i / 7, "tags": ["a", "b"],
                          "ok": bool(i % 2)}} for i in range(n)]


def as_lists(vectors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The same items with lists of Python floats: what stock botocore takes."""
    return [{**v, "data": {"float32": np.asarray(v["data"]["float32"]).tolist()}} for v in vectors]
