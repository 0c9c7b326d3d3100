"""The s3vl query Lambda: SQL (``s3vl.*`` -> ``aws_lambda.invoke``) -> S3 Vectors / Bedrock.

Entry point ``handler.lambda_handler`` (``handler.handler`` is an alias). Every invocation:

1. validates the event (:func:`s3vl_query.requests.parse`): types, sizes, NaN/Inf, topK, filter;
2. runs the operation with clients built once per container (:func:`s3vl_query.aws.client`),
   retrying throttling with backoff inside the invocation's remaining time;
3. answers, always with a JSON object and never with a stack trace::

       {"ok": true,  "result": {...},                                   "request_id", "elapsed_ms"}
       {"ok": false, "error": {"code", "message", "retryable"},         "request_id", "elapsed_ms"}

Known failures are answered, not raised, so ``aws_lambda.invoke`` returns them as a payload and
the SQL side raises them with their own SQLSTATE and hint. An unexpected exception is logged
with its traceback (CloudWatch only) and answered as ``internal``.

This file and ``s3vl_query/`` are the whole deployment package; it must not import ``sync``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import Any

# The Lambda runtime puts the package root on sys.path; the local endpoint may load this file by
# path, so make the sibling package importable either way.
_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from s3vl_query import aws, operations  # noqa: E402
from s3vl_query.errors import InternalError, InvalidArgumentError, QueryError  # noqa: E402
from s3vl_query.requests import parse  # noqa: E402

#: Lambda returns at most 6 MB (synchronous invocation); keep room for the envelope.
MAX_ANSWER_BYTES = 6_000_000 - 16_384

logger = logging.getLogger("s3vl_query")
logger.setLevel(os.environ.get("S3VL_QUERY_LOG_LEVEL", "INFO").upper())


def _prewarm() -> None:
    """Build the clients for the function's own region during init, not in the first request's budget."""
    region = os.environ.get("AWS_REGION")
    if not region:
        return
    try:
        aws.client("s3vectors", region)
        aws.client("bedrock-runtime", region)
    except Exception:  # a failure here resurfaces, answered properly, on first use
        logger.warning("clients.prewarm_failed", exc_info=True)


_prewarm()


def _log(level: int, event: str, **fields: Any) -> None:
    """One JSON log line: an event name plus key-values (Powertools' structured style)."""
    if logger.isEnabledFor(level):
        logger.log(level, json.dumps({"event": event, **fields}, default=str))


def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    started = time.monotonic()
    request_id = str(getattr(context, "aws_request_id", None) or "local")
    operation = event.get("operation") if isinstance(event, dict) else None
    budget = aws.Budget.from_context(context)
    try:
        request = parse(event)
        result = operations.run(request, budget, context)
        answer: dict[str, Any] = {"ok": True, "result": result}
        size = len(json.dumps(answer, default=str))
        if size > MAX_ANSWER_BYTES:
            raise InvalidArgumentError(
                f"the result is {size} bytes, more than Lambda can return ({MAX_ANSWER_BYTES}); "
                "lower top_k / max_results, or ask without metadata or vector data"
            )
        _log(logging.INFO, "request.done", request_id=request_id, operation=operation,
             elapsed_ms=_ms(started))
    except QueryError as exc:
        answer = {"ok": False, "error": exc.to_payload()}
        _log(logging.WARNING, "request.failed", request_id=request_id, operation=operation,
             code=exc.code, message=exc.message, elapsed_ms=_ms(started))
    except Exception:
        logger.exception("request.crashed request_id=%s operation=%s", request_id, operation)
        error = InternalError(f"internal error in the query Lambda (request id {request_id})")
        answer = {"ok": False, "error": error.to_payload()}
    answer["request_id"] = request_id
    answer["elapsed_ms"] = _ms(started)
    return answer


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


handler = lambda_handler
