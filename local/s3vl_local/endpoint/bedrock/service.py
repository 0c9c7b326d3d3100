"""Routes and request handling for local Bedrock Runtime ``InvokeModel`` (embedding models), and
the control plane's batch inference jobs (:mod:`.jobs`).

``POST /model/{modelId}/invoke``: ``modelId`` is a model id, a foundation-model ARN or an
inference-profile id/ARN, URL-encoded by the client (the server hands us the decoded path).
Which local embedder computes vectors is chosen per process: ``S3VL_LOCAL_EMBEDDER`` = ``hash``
(default: instant, for tests) or ``minilm`` (semantic, for the demo), set by
``python -m s3vl_local.endpoint --embedder NAME``; it can be switched at run time.

Fault injection and counters come from the app (service ``bedrock``, operation ``InvokeModel``:
429 ThrottlingException / 503 ServiceUnavailableException). This service adds per-model counters
(``calls:<model>``, ``texts:<model>``, ``input_tokens:<model>``, plus totals ``texts`` and
``input_tokens``), and a Bedrock-only fault, ModelTimeoutException (408), set through its admin
route::

    GET /_s3vl/bedrock/config   {"embedder": "hash", "model_timeout_fraction": 0.0, "models": [...]}
    PUT /_s3vl/bedrock/config   {"embedder": "minilm"} and/or {"model_timeout_fraction": 0.5, "seed": 1}
                                and/or {"job_start_delay": 2.0} (batch jobs wait that long in Submitted)
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any

import structlog
from werkzeug.wrappers import Response

from s3vl_local.embedding import EMBEDDERS, LocalEmbedder, get_embedder
from s3vl_local.endpoint.app import ADMIN_PREFIX, Call, EndpointContext, Route, json_response
from s3vl_local.endpoint.bedrock import errors, models
from s3vl_local.endpoint.bedrock.jobs import BatchJobs
from s3vl_local.errors import LocalModelMissingError

log = structlog.get_logger(__name__)

#: Environment variable choosing the embedder of this endpoint process.
EMBEDDER_ENV = "S3VL_LOCAL_EMBEDDER"
DEFAULT_EMBEDDER = "hash"


class BedrockService:
    name = "bedrock"
    throttle_error = (429, "ThrottlingException")
    unavailable_error = (503, "ServiceUnavailableException")

    def __init__(self, ctx: EndpointContext, embedder: str | None = None) -> None:
        self.ctx = ctx
        self._lock = threading.Lock()
        self._timeout_fraction = 0.0
        self._rng = random.Random()  # noqa: S311 - fault draws, not cryptography
        self._embedder = self._make_embedder(embedder or os.environ.get(EMBEDDER_ENV) or DEFAULT_EMBEDDER)
        self.jobs = BatchJobs(ctx, lambda: self._embedder)

    @staticmethod
    def _make_embedder(name: str) -> LocalEmbedder:
        embedder = get_embedder(name)  # ValueError names the choices
        embedder.warm()  # minilm: load the weights now (fails here, clearly, if not installed)
        log.info("bedrock.embedder", embedder=name)
        return embedder

    def routes(self) -> Sequence[Route]:
        return [
            Route("/model/<path:model_id>/invoke", ("POST",), "InvokeModel", self._invoke_model),
            Route("/model-invocation-job", ("POST",), "CreateModelInvocationJob", self.jobs.create_job),
            Route("/model-invocation-job/<path:job_id>", ("GET",), "GetModelInvocationJob", self.jobs.get_job),
            Route("/model-invocation-jobs", ("GET",), "ListModelInvocationJobs", self.jobs.list_jobs),
            Route("/model-invocation-job/<path:job_id>/stop", ("POST",), "StopModelInvocationJob", self.jobs.stop_job),
            Route(f"{ADMIN_PREFIX}/bedrock/config", ("GET", "PUT"), "AdminConfig", self._config),
        ]

    def _invoke_model(self, call: Call) -> Response:
        started = time.perf_counter()
        spec = models.resolve_model(call.args["model_id"])
        content_type = (call.request.content_type or "application/json").split(";")[0].strip().lower()
        if content_type not in ("application/json", "*/*"):
            raise errors.validation(f"The provided content type {content_type} is not supported")  # local wording
        try:
            body = json.loads(call.request.get_data() or b"")
        except (ValueError, UnicodeDecodeError):
            raise errors.malformed("#: the request body is not valid JSON") from None
        with self._lock:
            embedder = self._embedder
            timed_out = self._timeout_fraction > 0 and self._rng.random() < self._timeout_fraction
        if timed_out:
            raise errors.model_timeout()
        try:
            result = models.invoke(spec, body, embedder)
        except LocalModelMissingError as exc:
            raise models.error_for(exc) from exc
        call.count(f"calls:{spec.model_id}")
        call.count(f"texts:{spec.model_id}", result.texts)
        call.count(f"input_tokens:{spec.model_id}", result.input_tokens)
        call.count("texts", result.texts)
        call.count("input_tokens", result.input_tokens)
        return json_response(
            result.body,
            headers={
                "X-Amzn-Bedrock-Input-Token-Count": str(result.input_tokens),
                "X-Amzn-Bedrock-Invocation-Latency": str(int((time.perf_counter() - started) * 1000)),
                "x-amzn-RequestId": str(uuid.uuid4()),
            },
        )

    def _config(self, call: Call) -> Response:
        if call.request.method == "PUT":
            body = call.json()
            allowed = {"embedder", "model_timeout_fraction", "seed", "job_start_delay"}
            if not isinstance(body, dict) or set(body) - allowed:
                raise errors.validation(f"bedrock config: a JSON object with members among {sorted(allowed)}")
            self._apply(body)
        with self._lock:
            return json_response(
                {
                    "embedder": self._embedder.name,
                    "embedders": sorted(EMBEDDERS),
                    "model_timeout_fraction": self._timeout_fraction,
                    "job_start_delay": self.jobs.start_delay,
                    "models": sorted(models.MODELS),
                }
            )

    def _apply(self, body: dict[str, Any]) -> None:
        embedder = None
        if "embedder" in body:
            name = body["embedder"]
            if name not in EMBEDDERS:
                raise errors.validation(f"bedrock config: embedder must be one of {sorted(EMBEDDERS)}")
            try:
                embedder = self._make_embedder(name)
            except LocalModelMissingError as exc:
                raise errors.validation(str(exc)) from exc
        fraction = body.get("model_timeout_fraction")
        if fraction is not None and (
            isinstance(fraction, bool) or not isinstance(fraction, int | float) or not 0 <= fraction <= 1
        ):
            raise errors.validation("bedrock config: model_timeout_fraction must be a number in [0, 1]")
        delay = body.get("job_start_delay")
        if delay is not None and (
            isinstance(delay, bool) or not isinstance(delay, int | float) or not 0 <= delay <= 600
        ):
            raise errors.validation("bedrock config: job_start_delay must be a number of seconds in [0, 600]")
        seed = body.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise errors.validation("bedrock config: seed must be an integer")
        with self._lock:
            if embedder is not None:
                self._embedder = embedder
            if fraction is not None:
                self._timeout_fraction = float(fraction)
            if delay is not None:
                self.jobs.start_delay = float(delay)
            if "seed" in body:
                self._rng = random.Random(seed)  # noqa: S311

    def close(self) -> None:
        """Nothing to flush: batch jobs live in memory, on daemon threads that end with the process."""
