"""Run a Python Lambda handler in-process, the way the Lambda Python runtime would.

- **Loading.** The handler file is loaded *by path* (``lambda/handler.py``: the folder ``lambda``
  is a Python keyword and need not be importable), its folder put on ``sys.path`` like
  ``LAMBDA_TASK_ROOT``. The module is kept between invocations (a warm container: clients built
  at module level are reused) and reloaded when the file's mtime changes (a redeploy; sibling
  modules it imports are not reloaded). Import failures answer like the runtime:
  ``Runtime.ImportModuleError`` / ``Runtime.HandlerNotFound``.
- **Environment.** Before loading and before every invocation the function's environment is
  written to ``os.environ`` (Lambda's reserved variables, ``AWS_ENDPOINT_URL`` pointing back at
  this endpoint, region, dummy credentials, then the function's own variables). ``os.environ`` is
  process-wide, so every function in this endpoint process sees the last values written; the
  values are the same for every invocation of a function, which is all a handler can observe.
- **Context.** A :class:`LambdaContext` dataclass (``aws_request_id``, ``function_name``,
  ``invoked_function_arn``, ``memory_limit_in_mb``, ``get_remaining_time_in_millis()``, ...).
- **Timeout.** The handler runs in its own thread; past the function's timeout the invocation
  answers ``Sandbox.Timedout`` like Lambda. The thread cannot be killed and finishes in the
  background (its output is then no longer captured).
- **Logs.** What the handler's thread prints to stdout/stderr and logs through :mod:`logging`
  (root-logger format of the Python runtime: ``[LEVEL]\\t<time>Z\\t<request id>\\t<message>``) is
  captured between ``START``/``END``/``REPORT`` lines, appended to
  ``<data_dir>/lambda/<function>.log`` (our CloudWatch), and its last 4 KB are returned for
  ``LogType: Tail``. Output of threads the handler starts itself is not captured.
"""

from __future__ import annotations

import importlib.util
import io
import json
import logging
import os
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any, TextIO

#: What ``LogType: Tail`` returns: the last 4 KB of the invocation's log.
LOG_TAIL_BYTES = 4096
#: Lambda's synchronous response limit (6 MB).
MAX_RESPONSE_BYTES = 6 * 1024 * 1024


@dataclass
class ClientContext:
    """``context.client_context``: the decoded ``X-Amz-Client-Context`` header."""

    client: Any = None
    custom: Any = None
    env: Any = None


@dataclass
class LambdaContext:
    """The ``context`` argument of a handler (the fields of the Python runtime's ``LambdaContext``)."""

    function_name: str
    function_version: str
    invoked_function_arn: str
    memory_limit_in_mb: int
    aws_request_id: str
    log_group_name: str
    log_stream_name: str
    deadline_monotonic: float
    identity: Any = None
    client_context: ClientContext | None = None
    tenant_id: str | None = None

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline_monotonic - time.monotonic()) * 1000))


@dataclass(frozen=True)
class FunctionConfig:
    """One registered function: where its handler is and how it runs."""

    name: str
    handler_file: Path
    handler_name: str = "lambda_handler"
    timeout_s: float = 30.0
    memory_mb: int = 512
    environment: Mapping[str, str] = field(default_factory=dict)

    def arn(self, region: str, account_id: str) -> str:
        return f"arn:aws:lambda:{region}:{account_id}:function:{self.name}"


@dataclass(frozen=True)
class Outcome:
    """What one invocation produced: the response payload, whether it is a function error, logs."""

    payload: bytes
    function_error: str | None
    log: str
    duration_ms: float
    request_id: str


# --- output capture, per thread -----------------------------------------------------------------


class _Capture:
    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        self.parts: list[str] = []
        self.lock = threading.Lock()

    def write(self, text: str) -> None:
        with self.lock:
            self.parts.append(text)

    def text(self) -> str:
        with self.lock:
            return "".join(self.parts)


_captures: dict[int, _Capture] = {}
_install_lock = threading.Lock()
_installed = False


class _ThreadRoutedStream(io.TextIOBase):
    """stdout/stderr replacement: writes from a capturing thread go to its capture."""

    def __init__(self, original: TextIO) -> None:
        self._original = original

    def write(self, text: str) -> int:
        capture = _captures.get(threading.get_ident())
        if capture is not None:
            capture.write(text)
        else:
            self._original.write(text)
        return len(text)

    def flush(self) -> None:
        self._original.flush()

    def isatty(self) -> bool:
        return False

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._original, "encoding", "utf-8")


class _LambdaLogHandler(logging.Handler):
    """Root handler: records of capturing threads in the Lambda runtime's format."""

    def emit(self, record: logging.LogRecord) -> None:
        capture = _captures.get(record.thread or 0)
        if capture is None:
            if record.levelno >= logging.WARNING and sys.__stderr__ is not None:
                sys.__stderr__.write(self.format(record) + "\n")  # what logging's lastResort would print
            return
        try:
            message = record.getMessage()
            if record.exc_info:
                message += "\n" + "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        except Exception:  # a broken log call must not break the invocation
            message = str(record.msg)
        stamp = datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        capture.write(f"[{record.levelname}]\t{stamp}\t{capture.request_id}\t{message}\n")


def _install_capture() -> None:
    global _installed
    with _install_lock:
        if _installed:
            return
        sys.stdout = _ThreadRoutedStream(sys.stdout)
        sys.stderr = _ThreadRoutedStream(sys.stderr)
        logging.getLogger().addHandler(_LambdaLogHandler())
        _installed = True


# --- loading ------------------------------------------------------------------------------------


class HandlerLoadError(Exception):
    """The handler could not be imported or found: ``error_type`` is the runtime's name for it."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message


_modules: dict[str, tuple[float, ModuleType]] = {}
_load_lock = threading.Lock()


def load_handler(config: FunctionConfig) -> Callable[[Any, LambdaContext], Any]:
    """The handler function, loaded by path (cached; reloaded when the file changes)."""
    path = config.handler_file.resolve()
    module_label = path.stem
    with _load_lock:
        try:
            mtime = path.stat().st_mtime
        except OSError:
            raise HandlerLoadError(
                "Runtime.ImportModuleError", f"Unable to import module '{module_label}': No such file: {path}"
            ) from None
        cached = _modules.get(config.name)
        if cached is None or cached[0] != mtime:
            folder = str(path.parent)
            if folder not in sys.path:
                sys.path.insert(0, folder)
            module_name = f"_s3vl_lambda_{config.name.replace('-', '_')}"
            spec = importlib.util.spec_from_file_location(module_name, path)
            if spec is None or spec.loader is None:
                raise HandlerLoadError("Runtime.ImportModuleError", f"Unable to import module '{module_label}'")
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module
            try:
                spec.loader.exec_module(module)
            except SyntaxError as exc:
                sys.modules.pop(module_name, None)
                raise HandlerLoadError(
                    "Runtime.UserCodeSyntaxError", f"Syntax error in module '{module_label}': {exc}"
                ) from exc
            except Exception as exc:
                sys.modules.pop(module_name, None)
                raise HandlerLoadError(
                    "Runtime.ImportModuleError", f"Unable to import module '{module_label}': {exc}"
                ) from exc
            cached = (mtime, module)
            _modules[config.name] = cached
    handler = getattr(cached[1], config.handler_name, None)
    if not callable(handler):
        raise HandlerLoadError(
            "Runtime.HandlerNotFound", f"Handler '{config.handler_name}' missing on module '{module_label}'"
        )
    result: Callable[[Any, LambdaContext], Any] = handler
    return result


# --- invoking -----------------------------------------------------------------------------------


def lambda_environment(config: FunctionConfig, base_url: str, region: str) -> dict[str, str]:
    """The variables Lambda sets for a function, pointed at this endpoint, plus the function's own."""
    env = {
        "AWS_ENDPOINT_URL": base_url,
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "AWS_ACCESS_KEY_ID": "s3vl-local",
        "AWS_SECRET_ACCESS_KEY": "s3vl-local",
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.11",
        "AWS_LAMBDA_FUNCTION_NAME": config.name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(config.memory_mb),
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{config.name}",
        "LAMBDA_TASK_ROOT": str(config.handler_file.resolve().parent),
        "_HANDLER": f"{config.handler_file.stem}.{config.handler_name}",
    }
    env.update(config.environment)
    return env


def _error_payload(error_type: str, message: str, request_id: str, stack: list[str] | None = None) -> bytes:
    return json.dumps(
        {"errorMessage": message, "errorType": error_type, "requestId": request_id, "stackTrace": stack or []}
    ).encode()


def _user_frames(exc: BaseException) -> list[str]:
    """The traceback without this module's frames, as the runtime's ``stackTrace`` strings."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename != __file__]
    return traceback.format_list(frames)


_env_lock = threading.Lock()


def invoke(
    config: FunctionConfig,
    event: Any,
    *,
    base_url: str,
    region: str,
    account_id: str,
    log_dir: Path,
    client_context: ClientContext | None = None,
) -> Outcome:
    """Run the function once; never raises for anything the function does."""
    _install_capture()
    request_id = str(uuid.uuid4())
    started = time.monotonic()
    stream = f"{datetime.now(UTC):%Y/%m/%d}/[$LATEST]{uuid.uuid4().hex}"
    context = LambdaContext(
        function_name=config.name,
        function_version="$LATEST",
        invoked_function_arn=config.arn(region, account_id),
        memory_limit_in_mb=config.memory_mb,
        aws_request_id=request_id,
        log_group_name=f"/aws/lambda/{config.name}",
        log_stream_name=stream,
        deadline_monotonic=started + config.timeout_s,
        client_context=client_context,
    )
    capture = _Capture(request_id)
    capture.write(f"START RequestId: {request_id} Version: $LATEST\n")
    result: dict[str, Any] = {}

    def run() -> None:
        _captures[threading.get_ident()] = capture
        try:
            with _env_lock:
                os.environ.update(lambda_environment(config, base_url, region))
            handler = load_handler(config)
            result["value"] = handler(event, context)
        except HandlerLoadError as exc:
            result["error"] = (exc.error_type, exc.message, [])
            capture.write(f"[ERROR] {exc.error_type}: {exc.message}\n")
        except BaseException as exc:  # everything the function raises is its error (SystemExit too)
            stack = _user_frames(exc)
            result["error"] = (type(exc).__name__, str(exc), stack)
            capture.write(f"[ERROR] {type(exc).__name__}: {exc}\nTraceback (most recent call last):\n{''.join(stack)}")
        finally:
            _captures.pop(threading.get_ident(), None)

    worker = threading.Thread(target=run, name=f"lambda:{config.name}:{request_id}", daemon=True)
    worker.start()
    worker.join(config.timeout_s)
    duration_ms = (time.monotonic() - started) * 1000
    function_error: str | None = None
    if worker.is_alive():
        function_error = "Unhandled"
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        message = f"{stamp} {request_id} Task timed out after {config.timeout_s:.2f} seconds"
        capture.write(message + "\n")
        payload = json.dumps({"errorMessage": message, "errorType": "Sandbox.Timedout"}).encode()
    elif "error" in result:
        function_error = "Unhandled"
        error_type, message, stack = result["error"]
        payload = _error_payload(error_type, message, request_id, stack)
    else:
        try:
            payload = json.dumps(result.get("value")).encode()
        except (TypeError, ValueError) as exc:
            function_error = "Unhandled"
            payload = _error_payload("Runtime.MarshalError", f"Unable to marshal response: {exc}", request_id)
        else:
            if len(payload) > MAX_RESPONSE_BYTES:
                function_error = "Unhandled"
                payload = json.dumps(
                    {
                        "errorMessage": "Response payload size exceeded maximum allowed payload size "
                        f"({MAX_RESPONSE_BYTES} bytes).",
                        "errorType": "Function.ResponseSizeTooLarge",
                    }
                ).encode()
    capture.write(f"END RequestId: {request_id}\n")
    capture.write(
        f"REPORT RequestId: {request_id}\tDuration: {duration_ms:.2f} ms\t"
        f"Billed Duration: {max(1, int(duration_ms + 0.999))} ms\tMemory Size: {config.memory_mb} MB\t\n"
    )
    log = capture.text()
    _append_log(log_dir / f"{config.name}.log", log)
    return Outcome(
        payload=payload, function_error=function_error, log=log, duration_ms=duration_ms, request_id=request_id
    )


def log_tail(log: str, limit: int = LOG_TAIL_BYTES) -> bytes:
    """The last ``limit`` bytes of ``log`` (what ``X-Amz-Log-Result`` carries, before base64)."""
    return log.encode("utf-8")[-limit:]


def _append_log(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as f:
            f.write(text)
    except OSError:  # logging is best effort; the invocation's answer matters more
        pass
