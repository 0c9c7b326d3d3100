"""Local AWS Lambda: ``Invoke`` runs Python handlers in-process (the query Lambda in ``lambda/``).

:mod:`.registry` knows the functions (``s3vl-query`` built in, more registrable at run time),
:mod:`.runtime` runs a handler like the Lambda Python runtime, :mod:`.service` speaks the API.
"""

from __future__ import annotations

from s3vl_local.endpoint.app import EndpointContext
from s3vl_local.endpoint.lambda_.runtime import LambdaContext
from s3vl_local.endpoint.lambda_.service import LambdaService


def create_service(ctx: EndpointContext) -> LambdaService:
    return LambdaService(ctx)


__all__ = ["LambdaContext", "LambdaService", "create_service"]
