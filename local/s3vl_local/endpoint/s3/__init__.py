"""Local Amazon S3: moto's S3 (faithful for buckets and objects), served on the endpoint's port.

S3 requests are told apart from the other services by their SigV4 signature: the credential
scope names the service (``Credential=<key>/<date>/<region>/s3/aws4_request``; the app's
:func:`~s3vl_local.endpoint.app.signing_service`). Every such request goes to moto's S3 WSGI
application unchanged; clients use path-style addressing
(``http://127.0.0.1:<port>/<bucket>/<key>``, what botocore does for an IP endpoint). Batch
inference jobs (:mod:`s3vl_local.endpoint.bedrock.jobs`) read and write their files here.

Local simplifications: moto keeps objects in this process's memory, so they do not survive an
endpoint restart (S3 Vectors' SQLite store does); no fault injection.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from s3vl_local.endpoint.app import EndpointContext, Route


class S3Service:
    name = "s3"
    signing_name = "s3"
    throttle_error = (503, "SlowDown")
    unavailable_error = (503, "ServiceUnavailable")

    def __init__(self, ctx: EndpointContext) -> None:
        from moto.moto_server.werkzeug_app import create_backend_app

        self.ctx = ctx
        self._app = create_backend_app("s3")

    def routes(self) -> Sequence[Route]:
        return []

    def wsgi(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        result: Iterable[bytes] = self._app(environ, start_response)
        return result

    def close(self) -> None:
        """Nothing to flush: moto keeps the objects in memory."""


def create_service(ctx: EndpointContext) -> S3Service:
    return S3Service(ctx)


__all__ = ["S3Service", "create_service"]
