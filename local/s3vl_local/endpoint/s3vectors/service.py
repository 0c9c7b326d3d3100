"""Routes and request handling for local S3 Vectors (the ``responses.py`` of moto's layout)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import fields

from botocore import xform_name
from werkzeug.wrappers import Response

from s3vl_local.endpoint.app import ADMIN_PREFIX, AwsError, Call, EndpointContext, Route, json_response
from s3vl_local.endpoint.s3vectors import errors, model
from s3vl_local.endpoint.s3vectors.backend import MAX_PAYLOAD_BYTES, Limits, S3VectorsBackend


class S3VectorsService:
    name = "s3vectors"
    throttle_error = (429, "TooManyRequestsException")
    unavailable_error = (503, "ServiceUnavailableException")

    def __init__(self, ctx: EndpointContext) -> None:
        self.ctx = ctx
        self.backend = S3VectorsBackend(ctx.service_dir(self.name), ctx.region, ctx.account_id)

    def routes(self) -> Sequence[Route]:
        routes = []
        for op_name in model.operation_names():
            http = model.operation(op_name).http
            rule = http["requestUri"].replace("{resourceArn}", "<path:resourceArn>")
            routes.append(Route(rule, (http["method"],), op_name, self._handler(op_name)))
        routes.append(Route(f"{ADMIN_PREFIX}/s3vectors/limits", ("GET", "PUT"), "AdminLimits", self._limits))
        return routes

    def _handler(self, op_name: str) -> Callable[[Call], Response]:
        method = getattr(self.backend, xform_name(op_name))

        def handle(call: Call) -> Response:
            if (call.request.content_length or 0) > MAX_PAYLOAD_BYTES:
                raise errors.validation("Request payload size exceeds the limit of 20 MiB")
            params = call.json() if call.request.method == "POST" else {}
            if not isinstance(params, dict):
                raise AwsError(400, "SerializationException", "The request body must be a JSON object")
            params = dict(params)
            params.update(call.args)
            if "tagKeys" in call.request.args:
                params["tagKeys"] = call.request.args.getlist("tagKeys")
            problems = model.check_input(op_name, params)
            if problems:
                raise errors.constraint_errors(problems)
            result = method(params)
            if isinstance(result, tuple):
                result, n = result
                call.count("vectors", n)
            return json_response(result)

        return handle

    def _limits(self, call: Call) -> Response:
        if call.request.method == "PUT":
            body = call.json()
            allowed = {f.name for f in fields(Limits)}
            if (
                not isinstance(body, dict)
                or set(body) - allowed
                or not all(isinstance(v, int) and v >= 0 for v in body.values())
            ):
                raise errors.validation(f"limits: a JSON object with integer members among {sorted(allowed)}")
            for k, v in body.items():
                setattr(self.backend.limits, k, v)
        return json_response(self.backend.limits_json())

    def close(self) -> None:
        self.backend.close()
