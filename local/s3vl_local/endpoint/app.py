"""The local AWS endpoint's WSGI application, and the API every service plugs into.

One process on 127.0.0.1 serves S3 Vectors, Bedrock (runtime and batch jobs), Lambda and S3,
routed by path (S3 by its signature), plus the admin routes under ``/_s3vl/``. Each AWS service
lives in its own sub-package (moto's layout): ``s3vl_local.endpoint.s3vectors``,
``s3vl_local.endpoint.bedrock``, ``s3vl_local.endpoint.lambda_``, ``s3vl_local.endpoint.s3``.

Registration API (how a service joins the endpoint)
--------------------------------------------------
A service sub-package listed in :data:`SERVICE_MODULES` exposes, in its ``__init__.py``::

    def create_service(ctx: EndpointContext) -> Service: ...

:func:`build_app` imports each listed module (a module that does not exist yet is skipped, so
services can land independently), calls ``create_service`` once at start, and builds one werkzeug
``Map`` from every service's :meth:`Service.routes`. A :class:`Service` is any object with:

``name: str``
    Short service id used in counters and fault rules: ``"s3vectors"``, ``"bedrock"``, ``"lambda"``.
``throttle_error: tuple[int, str]`` / ``unavailable_error: tuple[int, str]``
    The (HTTP status, error code) fault injection answers with, e.g. ``(429,
    "TooManyRequestsException")`` and ``(503, "ServiceUnavailableException")``.
``routes() -> Sequence[Route]``
    ``Route(rule, methods, operation, handler)``: ``rule`` is a werkzeug rule string
    (``"/model/<path:model_id>/invoke"``), ``operation`` the AWS operation name used for counters
    and fault rules (``"InvokeModel"``), ``handler(call: Call) -> Response``.
``close() -> None``
    Called once at shutdown (flush/close stores).

A handler receives a :class:`Call`: ``call.request`` (werkzeug ``Request``), ``call.args`` (URL
variables), ``call.json()`` (the parsed JSON body, ``{}`` when empty; a malformed body raises a 400
``SerializationException`` :class:`AwsError`), ``call.count(name, n)`` (add to this
operation's counters, e.g. ``call.count("vectors", 500)``), and ``call.ctx`` (the
:class:`EndpointContext`: ``data_dir`` for the service's persistent files, ``base_url`` of this
server so a handler may call back into it, e.g. the Lambda handler calling S3 Vectors: the server
is threaded, so that does not deadlock).

Errors: raise :class:`AwsError` ``(status, code, message, **extra)`` anywhere in a handler. The app
serialises it as AWS rest-json does: HTTP ``status``, header ``x-amzn-ErrorType: <code>``, body
``{"message": ..., **extra}`` (e.g. ``fieldList`` for S3 Vectors validation errors). botocore then
raises ``ClientError`` with ``Error.Code == code`` and ``Error.Message == message``. Any other
exception becomes a 500 ``InternalServerException`` and is logged. Success: return
:func:`json_response` ``(obj)`` or any werkzeug ``Response``.

A service may instead be a whole WSGI application (``wsgi(environ, start_response)`` and
``signing_name``): every request signed for that service (SigV4 credential scope) goes to it
unrouted. The local S3 (moto's) is one; it gets request counters (by HTTP method) but no faults.

Cross-cutting work the app does for every route, so services never do it themselves:
fault injection (:mod:`.faults`: added latency, a fraction answered 429 or 503, per service and
operation, off by default) and counters (:mod:`.counters`: requests, errors by code, and whatever
the handler counts), both readable and settable through the admin routes:

``GET /_s3vl/health``     200 ``{"status": "ok", "services": [...], "pid": ...}`` when ready
``GET /_s3vl/faults``     the fault configuration; ``PUT`` replaces it (JSON, see :mod:`.faults`)
``GET /_s3vl/counters``   ``{"<service>": {"<Operation>": {"requests": n, "errors": n, ...}}}``
``POST /_s3vl/reset``     zero the counters (data is untouched)

A service may also add admin routes of its own under ``/_s3vl/<service>/...`` (counted, never
faulted). Every AWS response carries ``x-amzn-RequestId`` (botocore's ``RequestId``) and
``x-s3vl-server-ms`` (server-side handling time, for benchmarks).
"""

from __future__ import annotations

import importlib
import json
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import orjson
import structlog
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from s3vl_local.endpoint.counters import Counters
from s3vl_local.endpoint.faults import FaultConfig, FaultDecision, Faults

log = structlog.get_logger(__name__)

#: The service sub-packages the endpoint loads, in routing order. Each must expose
#: ``create_service(ctx: EndpointContext) -> Service``; a missing module is skipped.
SERVICE_MODULES: tuple[str, ...] = (
    "s3vl_local.endpoint.s3",
    "s3vl_local.endpoint.s3vectors",
    "s3vl_local.endpoint.bedrock",
    "s3vl_local.endpoint.lambda_",
)

ADMIN_PREFIX = "/_s3vl"

_SCOPE = re.compile(r"Credential=[^/,\s]+/\d{8}/[a-z0-9-]+/([a-z0-9-]+)/aws4_request")
_QUERY_SCOPE = re.compile(r"X-Amz-Credential=[^&]*?%2F[a-z0-9-]+%2F([a-z0-9-]+)%2Faws4_request", re.IGNORECASE)


def signing_service(environ: dict[str, Any]) -> str | None:
    """The service a request is signed for (SigV4 credential scope, in the ``Authorization``
    header or, presigned, the ``X-Amz-Credential`` query parameter), or None if unsigned."""
    match = _SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
    if match is None:
        match = _QUERY_SCOPE.search(environ.get("QUERY_STRING", ""))
    return match.group(1) if match else None


class AwsError(Exception):
    """An AWS error response: HTTP status, error code (``x-amzn-ErrorType``) and message.

    ``extra`` members are added to the JSON body next to ``message`` (``fieldList`` for
    S3 Vectors' ValidationException, ``Type`` for Lambda, ...).
    """

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra

    def response(self) -> Response:
        body: dict[str, Any] = {"message": self.message, **self.extra}
        return Response(
            json.dumps(body),
            status=self.status,
            headers={"x-amzn-ErrorType": self.code, "Content-Type": "application/json"},
        )


def _loads(raw: bytes) -> Any:
    """Parse JSON fast (orjson); fall back to :mod:`json` for what orjson refuses (NaN/Infinity
    literals, integers beyond 64 bits) so the service can answer with its own validation error."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw)


def json_response(obj: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    """A JSON success response (rest-json: ``application/json`` body)."""
    body = orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)
    resp = Response(body, status=status, mimetype="application/json")
    for name, value in (headers or {}).items():
        resp.headers[name] = value
    return resp


@dataclass(frozen=True)
class EndpointContext:
    """What a service gets at creation: where to keep data, and how to reach this server."""

    data_dir: Path
    base_url: str
    region: str = "us-west-2"
    account_id: str = "000000000000"

    def service_dir(self, name: str) -> Path:
        """``<data_dir>/<name>``, created: the folder a service keeps its files in."""
        path = self.data_dir / name
        path.mkdir(parents=True, exist_ok=True)
        return path


@dataclass
class Call:
    """One request as a handler sees it."""

    request: Request
    args: dict[str, Any]
    ctx: EndpointContext
    service: str
    operation: str
    counters: Counters
    _json: Any = field(default=None, repr=False)
    _parsed: bool = field(default=False, repr=False)

    def json(self) -> Any:
        """The JSON body (``{}`` when empty). Malformed JSON: 400 SerializationException."""
        if not self._parsed:
            raw = self.request.get_data(cache=True)
            try:
                self._json = _loads(raw) if raw.strip() else {}
            except (ValueError, UnicodeDecodeError) as exc:
                raise AwsError(400, "SerializationException", f"Malformed request body: {exc}") from exc
            self._parsed = True
        return self._json

    def count(self, name: str, n: int = 1) -> None:
        """Add ``n`` to this operation's counter ``name`` (e.g. ``vectors``)."""
        self.counters.add(self.service, self.operation, name, n)


Handler = Callable[[Call], Response]


@dataclass(frozen=True)
class Route:
    """One operation: werkzeug ``rule``, HTTP ``methods``, AWS ``operation`` name, ``handler``."""

    rule: str
    methods: tuple[str, ...]
    operation: str
    handler: Handler


class Service(Protocol):
    """What a service sub-package's ``create_service`` returns (see the module docstring)."""

    name: str
    throttle_error: tuple[int, str]
    unavailable_error: tuple[int, str]

    def routes(self) -> Sequence[Route]: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class _Bound:
    service: Service
    route: Route


class EndpointApp:
    """The WSGI application: admin routes + every registered service's routes."""

    def __init__(self, ctx: EndpointContext, services: Iterable[Service], faults: Faults) -> None:
        self.ctx = ctx
        self.services = list(services)
        self.faults = faults
        self.counters = Counters()
        self.started_at = time.time()
        self._lock = threading.Lock()
        rules: list[Rule] = [
            Rule(f"{ADMIN_PREFIX}/health", methods=["GET"], endpoint="admin:health"),
            Rule(f"{ADMIN_PREFIX}/faults", methods=["GET", "PUT"], endpoint="admin:faults"),
            Rule(f"{ADMIN_PREFIX}/counters", methods=["GET"], endpoint="admin:counters"),
            Rule(f"{ADMIN_PREFIX}/reset", methods=["POST"], endpoint="admin:reset"),
        ]
        self._bound: dict[str, _Bound] = {}
        #: services that are a WSGI application of their own, by the SigV4 service they sign for
        self._wsgi: dict[str, Any] = {
            getattr(s, "signing_name", s.name): s for s in self.services if hasattr(s, "wsgi")
        }
        for service in self.services:
            for route in service.routes():
                key = f"{service.name}:{route.operation}:{route.rule}:{','.join(route.methods)}"
                self._bound[key] = _Bound(service, route)
                rules.append(Rule(route.rule, methods=list(route.methods), endpoint=key))
        # merge_slashes=False: S3 Vectors ARNs in /tags/{resourceArn} contain "//"-free but
        # percent-encoded slashes; keep the path exactly as sent.
        self.url_map = Map(rules, merge_slashes=False, strict_slashes=False)

    # -- WSGI ---------------------------------------------------------------------------------
    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        wsgi_service = self._wsgi.get(signing_service(environ) or "")
        if wsgi_service is not None:  # a whole WSGI application (moto's S3), routed by signature
            self.counters.add(wsgi_service.name, environ.get("REQUEST_METHOD", "GET"), "requests", 1)
            result: Iterable[bytes] = wsgi_service.wsgi(environ, start_response)
            return result
        request = Request(environ)
        response = self.dispatch(request)
        return response(environ, start_response)

    def dispatch(self, request: Request) -> Response:
        adapter = self.url_map.bind_to_environ(request.environ)
        try:
            endpoint, args = adapter.match()
        except NotFound:
            return AwsError(
                404, "UnknownOperationException", f"No route for {request.method} {request.path}"
            ).response()
        except MethodNotAllowed:
            return AwsError(405, "UnknownOperationException", f"Method {request.method} not allowed").response()
        except HTTPException as exc:  # pragma: no cover - werkzeug redirects etc.
            return AwsError(exc.code or 400, "UnknownOperationException", str(exc)).response()
        if endpoint.startswith("admin:"):
            return self._admin(endpoint.removeprefix("admin:"), request)
        bound = self._bound[endpoint]
        response = self._call(bound, request, dict(args))
        if "x-amzn-RequestId" not in response.headers:
            response.headers["x-amzn-RequestId"] = str(uuid.uuid4())
        return response

    def _call(self, bound: _Bound, request: Request, args: dict[str, Any]) -> Response:
        service, route = bound.service, bound.route
        self.counters.add(service.name, route.operation, "requests", 1)
        try:
            fault = (
                FaultDecision()
                if route.rule.startswith(ADMIN_PREFIX)
                else self.faults.decide(service.name, route.operation)
            )
            if fault.latency_s > 0:
                time.sleep(fault.latency_s)
            if fault.error == "throttle":
                status, code = service.throttle_error
                raise AwsError(status, code, "Injected fault: request throttled (s3vl local endpoint).")
            if fault.error == "unavailable":
                status, code = service.unavailable_error
                raise AwsError(status, code, "Injected fault: service unavailable (s3vl local endpoint).")
            call = Call(request, args, self.ctx, service.name, route.operation, self.counters)
            started = time.perf_counter()
            response = route.handler(call)
            # Server-side handling time, for benchmarks that separate client from server cost.
            response.headers["x-s3vl-server-ms"] = f"{(time.perf_counter() - started) * 1000:.3f}"
            return response
        except AwsError as err:
            self.counters.add(service.name, route.operation, "errors", 1)
            self.counters.add(service.name, route.operation, f"error:{err.code}", 1)
            return err.response()
        except Exception:
            log.exception("endpoint.handler_failed", service=service.name, operation=route.operation)
            self.counters.add(service.name, route.operation, "errors", 1)
            self.counters.add(service.name, route.operation, "error:InternalServerException", 1)
            return AwsError(500, "InternalServerException", "Internal server error").response()

    # -- admin --------------------------------------------------------------------------------
    def _admin(self, name: str, request: Request) -> Response:
        if name == "health":
            return json_response(
                {
                    "status": "ok",
                    "pid": os.getpid(),
                    "services": [s.name for s in self.services],
                    "data_dir": str(self.ctx.data_dir),
                    "uptime_s": round(time.time() - self.started_at, 3),
                }
            )
        if name == "faults":
            if request.method == "PUT":
                try:
                    config = FaultConfig.from_json(json.loads(request.get_data() or b"{}"))
                except (ValueError, TypeError) as exc:
                    return AwsError(400, "ValidationException", f"Invalid fault configuration: {exc}").response()
                self.faults.set(config)
            return json_response(self.faults.get().to_json())
        if name == "counters":
            return json_response(self.counters.snapshot())
        if name == "reset":
            self.counters.reset()
            return json_response({"status": "reset"})
        raise AssertionError(name)  # pragma: no cover

    def close(self) -> None:
        for service in self.services:
            try:
                service.close()
            except Exception:
                log.exception("endpoint.service_close_failed", service=service.name)


def load_services(ctx: EndpointContext, modules: Sequence[str] = SERVICE_MODULES) -> list[Service]:
    """Import each service module and call its ``create_service``; skip modules that don't exist."""
    services: list[Service] = []
    for name in modules:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and name.startswith(exc.name):
                log.info("endpoint.service_missing", module=name)
                continue
            raise
        factory = getattr(module, "create_service", None)
        if factory is None:
            log.info("endpoint.service_without_factory", module=name)
            continue
        services.append(factory(ctx))
    return services


def build_app(
    data_dir: Path,
    base_url: str,
    faults: FaultConfig | None = None,
    modules: Sequence[str] = SERVICE_MODULES,
) -> EndpointApp:
    """The application with every available service, storing data under ``data_dir``."""
    data_dir.mkdir(parents=True, exist_ok=True)
    ctx = EndpointContext(data_dir=data_dir, base_url=base_url)
    return EndpointApp(ctx, load_services(ctx, modules), Faults(faults or FaultConfig()))
