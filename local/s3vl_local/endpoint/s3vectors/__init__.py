"""Local Amazon S3 Vectors: every operation of botocore's ``s3vectors`` model, rest-json.

Routes are generated from the model (``POST /<Operation>``, ``/tags/{resourceArn}``); each
request is checked against the operation's input shape (:mod:`.model`), then handed to the
backend method of the same name (:mod:`.backend`). Persistent data lives under
``<data_dir>/s3vectors/``. Extra admin route: ``GET/PUT /_s3vl/s3vectors/limits`` (quotas).
"""

from __future__ import annotations

from s3vl_local.endpoint.app import EndpointContext
from s3vl_local.endpoint.s3vectors.service import S3VectorsService


def create_service(ctx: EndpointContext) -> S3VectorsService:
    return S3VectorsService(ctx)


__all__ = ["S3VectorsService", "create_service"]
