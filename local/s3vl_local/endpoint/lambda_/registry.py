"""Which functions the local Lambda knows, and how a ``FunctionName`` resolves to one.

Built in: ``s3vl-query`` -> ``lambda/handler.py:lambda_handler``, the query Lambda, which this
package carries as ``s3vl_local/query_lambda`` (a link to the repository's ``lambda/`` folder).
More can be registered at run time (tests register fixture handlers)::

    PUT /_s3vl/lambda/functions/<name>
        {"handler": "/abs/path/file.py:function", "timeout_s": 3, "memory_mb": 128,
         "environment": {"KEY": "value"}}
    GET /_s3vl/lambda/functions          -> {"<name>": {...}, ...}
    DELETE /_s3vl/lambda/functions/<name>

Registrations live in memory (a restart keeps only the built-in functions).
"""

from __future__ import annotations

import re
import threading
from importlib import resources
from pathlib import Path
from typing import Any

from s3vl_local.endpoint.app import AwsError
from s3vl_local.endpoint.lambda_.runtime import FunctionConfig

#: The query Lambda's handler (package data: ``s3vl_local/query_lambda`` is the repo's ``lambda/``).
QUERY_HANDLER = Path(str(resources.files("s3vl_local") / "query_lambda" / "handler.py"))
QUERY_FUNCTION = "s3vl-query"

_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
# FunctionName forms: name, name:qualifier, account:function:name[:qualifier], full ARN.
_ARN = re.compile(
    r"^(?:arn:aws[a-zA-Z-]*:lambda:(?P<region>[a-z0-9-]+):)?(?:(?P<account>\d{12}):function:)?"
    r"(?P<name>[a-zA-Z0-9_-]+)(?::(?P<qualifier>\$LATEST|[a-zA-Z0-9_-]+))?$"
)


def user_error(status: int, code: str, message: str) -> AwsError:
    """A Lambda client error: its body carries ``"Type": "User"`` like the real service."""
    return AwsError(status, code, message, Type="User")


def parse_function_name(raw: str, qualifier: str | None) -> tuple[str, str | None]:
    """``(name, qualifier)`` from a URL's FunctionName and the ``Qualifier`` query parameter."""
    match = _ARN.match(raw)
    if match is None or (raw.startswith("arn:") and match.group("account") is None):
        raise user_error(
            400,
            "ValidationException",
            f"1 validation error detected: Value '{raw}' at 'functionName' failed to satisfy constraint: "
            "Member must satisfy regular expression pattern: (arn:(aws[a-zA-Z-]*)?:lambda:)?"
            r"([a-z]{2}(-gov)?-[a-z]+-\d{1}:)?(\d{12}:)?(function:)?([a-zA-Z0-9-_\.]+)(:(\$LATEST|[a-zA-Z0-9-_]+))?",
        )
    derived = match.group("qualifier")
    if derived and qualifier and derived != qualifier:
        raise user_error(
            400,
            "InvalidParameterValueException",
            "The derived qualifier from the function name does not match the specified qualifier.",
        )
    return match.group("name"), derived or qualifier


class Registry:
    """Thread-safe name -> :class:`FunctionConfig`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._functions: dict[str, FunctionConfig] = {
            QUERY_FUNCTION: FunctionConfig(name=QUERY_FUNCTION, handler_file=QUERY_HANDLER, timeout_s=30.0),
        }

    def get(self, name: str) -> FunctionConfig | None:
        with self._lock:
            return self._functions.get(name)

    def put(self, name: str, spec: Any) -> FunctionConfig:
        """Register (or replace) ``name`` from a JSON spec; 400 ValidationException when invalid."""
        if not _NAME.match(name):
            raise user_error(400, "ValidationException", f"invalid function name {name!r}")
        if not isinstance(spec, dict) or set(spec) - {"handler", "timeout_s", "memory_mb", "environment"}:
            raise user_error(
                400, "ValidationException", "function spec: an object with handler, timeout_s, memory_mb, environment"
            )
        handler = spec.get("handler")
        if not isinstance(handler, str) or ":" not in handler:
            raise user_error(400, "ValidationException", "function spec: handler must be '/path/to/file.py:function'")
        file_part, _, function = handler.rpartition(":")
        timeout = spec.get("timeout_s", 30.0)
        memory = spec.get("memory_mb", 512)
        env = spec.get("environment", {})
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout <= 900:
            raise user_error(400, "ValidationException", "function spec: timeout_s must be in (0, 900]")
        if isinstance(memory, bool) or not isinstance(memory, int) or not 128 <= memory <= 10240:
            raise user_error(400, "ValidationException", "function spec: memory_mb must be in [128, 10240]")
        if not isinstance(env, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
            raise user_error(400, "ValidationException", "function spec: environment must map strings to strings")
        config = FunctionConfig(
            name=name,
            handler_file=Path(file_part),
            handler_name=function,
            timeout_s=float(timeout),
            memory_mb=memory,
            environment=dict(env),
        )
        with self._lock:
            self._functions[name] = config
        return config

    def delete(self, name: str) -> bool:
        with self._lock:
            return self._functions.pop(name, None) is not None

    def describe(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {
                name: {
                    "handler": f"{c.handler_file}:{c.handler_name}",
                    "timeout_s": c.timeout_s,
                    "memory_mb": c.memory_mb,
                    "environment": dict(c.environment),
                }
                for name, c in sorted(self._functions.items())
            }


__all__ = ["QUERY_FUNCTION", "QUERY_HANDLER", "Registry", "parse_function_name"]
