"""Fixture Lambda handlers for the SQL query tests (registered on the local endpoint by path).

Not a test module and not imported by tests: the local Lambda service loads this file itself.
"""

from __future__ import annotations

import os
import time
from typing import Any


def answer_error(event: Any, context: Any) -> dict[str, Any]:
    """Answers every request with the error code in S3VL_FAKE_CODE, as the query Lambda would."""
    code = os.environ.get("S3VL_FAKE_CODE", "internal")
    return {"ok": False, "error": {"code": code, "message": f"fake {code}", "retryable": False},
            "request_id": getattr(context, "aws_request_id", "fake"), "elapsed_ms": 0}


def crash(event: Any, context: Any) -> dict[str, Any]:
    """Raises: the Lambda service answers FunctionError Unhandled."""
    raise ValueError("fake crash")


def not_s3vl(event: Any, context: Any) -> dict[str, Any]:
    """Some other function: answers JSON that is not an s3vl answer."""
    return {"statusCode": 200, "body": "hello"}


def echo(event: Any, context: Any) -> dict[str, Any]:
    """Returns the event and the client context it received (shim tests)."""
    print("echo called")
    client_context = getattr(context, "client_context", None)
    return {"event": event, "client_context": None if client_context is None else str(client_context)}


def sleep(event: Any, context: Any) -> dict[str, Any]:
    """Sleeps event["seconds"] (default 2): for request timeouts."""
    time.sleep(float(event.get("seconds", 2)) if isinstance(event, dict) else 2.0)
    return {"slept": True}
