"""Routes and request handling for local Lambda ``Invoke`` (the ``responses.py`` of moto's layout).

``POST /2015-03-31/functions/{FunctionName}/invocations`` with the headers of botocore's
``lambda`` model: ``X-Amz-Invocation-Type`` (RequestResponse -> 200 with the handler's result;
Event -> 202, run in the background; DryRun -> 204, nothing run), ``X-Amz-Log-Type: Tail``
(``X-Amz-Log-Result`` = base64 of the last 4 KB of the log, RequestResponse only),
``X-Amz-Client-Context`` (base64 JSON -> ``context.client_context``) and ``?Qualifier=``
(only ``$LATEST`` exists locally). A function that raises answers 200 with
``X-Amz-Function-Error: Unhandled`` and the runtime's error payload
(``errorMessage``, ``errorType``, ``requestId``, ``stackTrace``).

Fault injection and counters come from the app (service ``lambda``, operation ``Invoke``:
429 TooManyRequestsException / 500 ServiceException); this service adds per-function counters
``invocations:<name>`` and ``function_errors:<name>``.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
from collections.abc import Sequence
from typing import Any

import structlog
from werkzeug.wrappers import Response

from s3vl_local.endpoint.app import ADMIN_PREFIX, Call, EndpointContext, Route, json_response
from s3vl_local.endpoint.lambda_ import runtime
from s3vl_local.endpoint.lambda_.registry import Registry, parse_function_name, user_error

log = structlog.get_logger(__name__)

#: Request payload limits: 6 MB synchronous, 1 MB asynchronous (Event).
MAX_SYNC_PAYLOAD = 6 * 1024 * 1024
MAX_ASYNC_PAYLOAD = 1024 * 1024
INVOCATION_TYPES = ("RequestResponse", "Event", "DryRun")


class LambdaService:
    name = "lambda"
    throttle_error = (429, "TooManyRequestsException")
    unavailable_error = (500, "ServiceException")

    def __init__(self, ctx: EndpointContext) -> None:
        self.ctx = ctx
        self.registry = Registry()
        self.log_dir = ctx.service_dir("lambda")

    def routes(self) -> Sequence[Route]:
        return [
            Route("/2015-03-31/functions/<path:function_name>/invocations", ("POST",), "Invoke", self._invoke),
            Route(f"{ADMIN_PREFIX}/lambda/functions", ("GET",), "AdminListFunctions", self._list),
            Route(f"{ADMIN_PREFIX}/lambda/functions/<name>", ("PUT", "DELETE"), "AdminFunction", self._function),
        ]

    # -- Invoke ---------------------------------------------------------------------------------
    def _invoke(self, call: Call) -> Response:
        request = call.request
        name, qualifier = parse_function_name(call.args["function_name"], request.args.get("Qualifier"))
        config = self.registry.get(name)
        arn = f"arn:aws:lambda:{self.ctx.region}:{self.ctx.account_id}:function:{name}"
        if config is None or qualifier not in (None, "$LATEST"):
            raise user_error(
                404, "ResourceNotFoundException", f"Function not found: {arn}" + (f":{qualifier}" if qualifier else "")
            )
        invocation_type = request.headers.get("X-Amz-Invocation-Type") or "RequestResponse"
        if invocation_type not in INVOCATION_TYPES:
            raise user_error(
                400,
                "ValidationException",
                f"1 validation error detected: Value '{invocation_type}' at 'invocationType' failed to satisfy "
                "constraint: Member must satisfy enum value set: [Event, RequestResponse, DryRun]",
            )
        log_type = request.headers.get("X-Amz-Log-Type") or "None"
        if log_type not in ("None", "Tail"):
            raise user_error(
                400,
                "ValidationException",
                f"1 validation error detected: Value '{log_type}' at 'logType' failed to satisfy constraint: "
                "Member must satisfy enum value set: [Tail, None]",
            )
        raw = request.get_data()
        limit, operation = (
            (MAX_ASYNC_PAYLOAD, "InvokeAsync") if invocation_type == "Event" else (MAX_SYNC_PAYLOAD, "InvokeFunction")
        )
        if len(raw) > limit:
            raise user_error(
                413,
                "RequestTooLargeException",
                f"Request must be smaller than {limit} bytes for the {operation} operation",
            )
        event = self._event(raw)
        client_context = self._client_context(request.headers.get("X-Amz-Client-Context"))
        headers = {"X-Amz-Executed-Version": "$LATEST"}
        if invocation_type == "DryRun":
            return Response(status=204, headers=headers)
        call.count(f"invocations:{name}")
        kwargs: dict[str, Any] = {
            "base_url": self.ctx.base_url,
            "region": self.ctx.region,
            "account_id": self.ctx.account_id,
            "log_dir": self.log_dir,
            "client_context": client_context,
        }
        if invocation_type == "Event":

            def run_async() -> None:
                outcome = runtime.invoke(config, event, **kwargs)
                if outcome.function_error:
                    call.count(f"function_errors:{name}")
                    log.warning("lambda.async_failed", function=name, request_id=outcome.request_id)

            threading.Thread(target=run_async, name=f"lambda-event:{name}", daemon=True).start()
            return Response(status=202, headers=headers)
        outcome = runtime.invoke(config, event, **kwargs)
        if outcome.function_error:
            headers["X-Amz-Function-Error"] = outcome.function_error
            call.count(f"function_errors:{name}")
        if log_type == "Tail":
            headers["X-Amz-Log-Result"] = base64.b64encode(runtime.log_tail(outcome.log)).decode("ascii")
        headers["x-amzn-RequestId"] = outcome.request_id
        return Response(outcome.payload, status=200, headers=headers, mimetype="application/json")

    @staticmethod
    def _event(raw: bytes) -> Any:
        if not raw.strip():
            return {}
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise user_error(
                400,
                "InvalidRequestContentException",
                f"Could not parse request body into json: Could not parse payload into json: {exc}",
            ) from None

    @staticmethod
    def _client_context(header: str | None) -> runtime.ClientContext | None:
        if not header:
            return None
        try:
            obj = json.loads(base64.b64decode(header, validate=True))
            if not isinstance(obj, dict):
                raise ValueError("not an object")
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raise user_error(
                400, "InvalidRequestContentException", "Client context must be a valid Base64-encoded JSON object."
            ) from None
        return runtime.ClientContext(client=obj.get("client"), custom=obj.get("custom"), env=obj.get("env"))

    # -- admin ----------------------------------------------------------------------------------
    def _list(self, call: Call) -> Response:
        return json_response(self.registry.describe())

    def _function(self, call: Call) -> Response:
        name = call.args["name"]
        if call.request.method == "DELETE":
            if not self.registry.delete(name):
                raise user_error(404, "ResourceNotFoundException", f"Function not found: {name}")
            return json_response({"deleted": name})
        self.registry.put(name, call.json())
        return json_response(self.registry.describe()[name])

    def close(self) -> None:
        """Nothing to flush: function logs are appended as they are written."""
