"""Local Lambda ``Invoke`` through the unmodified boto3 ``lambda`` client.

Fixture handlers are written to a temp folder and registered under unique names through the
endpoint's admin route; the built-in ``s3vl-query`` runs the repository's ``lambda/handler.py``.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.support.endpoint import EndpointHandle

HANDLER_SOURCE = """
import json, logging, os, sys, time
log = logging.getLogger("fixture")
log.setLevel(logging.INFO)
CONTAINER = {"calls": 0}

def echo(event, context):
    CONTAINER["calls"] += 1
    print("printed to stdout")
    print("printed to stderr", file=sys.stderr)
    log.info("logged %s", event.get("x") if isinstance(event, dict) else None)
    cc = context.client_context
    return {
        "event": event,
        "function_name": context.function_name,
        "function_version": context.function_version,
        "invoked_function_arn": context.invoked_function_arn,
        "memory_limit_in_mb": context.memory_limit_in_mb,
        "aws_request_id": context.aws_request_id,
        "log_group_name": context.log_group_name,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "client_custom": cc.custom if cc else None,
        "env": {k: os.environ.get(k) for k in ("AWS_ENDPOINT_URL", "AWS_REGION", "AWS_DEFAULT_REGION",
                "AWS_ACCESS_KEY_ID", "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "GREETING")},
        "container_calls": CONTAINER["calls"],
    }

def fail(event, context):
    def inner():
        raise ValueError("something broke: " + str(event.get("why")))
    inner()

def chatty(event, context):
    for i in range(400):
        print(f"line {i:04d} " + "x" * 40)
    return "done"

def slow(event, context):
    time.sleep(event.get("sleep", 5))
    return "late"

def unserializable(event, context):
    return {"when": object()}

def touch(event, context):
    with open(event["path"], "w") as f:
        f.write(context.aws_request_id)
    return None
"""


@pytest.fixture(scope="module")
def handler_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("lambda_fixture") / "fixture_handler.py"
    path.write_text(HANDLER_SOURCE)
    return path


def admin(endpoint: EndpointHandle, method: str, path: str, body: Any = None) -> Any:
    req = urllib.request.Request(
        f"{endpoint.url}/_s3vl/lambda/{path}",
        data=None if body is None else json.dumps(body).encode(),
        method=method,
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


@pytest.fixture
def register(endpoint: EndpointHandle, handler_file: Path) -> Iterator[Any]:
    names: list[str] = []

    def _register(function: str, file: Path | None = None, **spec: Any) -> str:
        name = f"fx-{function}-{uuid.uuid4().hex[:8]}"
        admin(endpoint, "PUT", f"functions/{name}", {"handler": f"{file or handler_file}:{function}", **spec})
        names.append(name)
        return name

    yield _register
    for name in names:
        admin(endpoint, "DELETE", f"functions/{name}")


@pytest.fixture
def lam(endpoint: EndpointHandle) -> Any:
    return endpoint.client("lambda", retries=1)


def error_of(client: Any, **kwargs: Any) -> tuple[int, str, str]:
    with pytest.raises(ClientError) as info:
        client.invoke(**kwargs)
    err = info.value.response
    return err["ResponseMetadata"]["HTTPStatusCode"], err["Error"]["Code"], err["Error"]["Message"]


# --- RequestResponse -------------------------------------------------------------------------------


def test_invoke_returns_the_handler_result_with_context_and_environment(
    lam: Any, register: Any, endpoint: EndpointHandle
) -> None:
    name = register("echo", memory_mb=256, environment={"GREETING": "hi"})
    resp = lam.invoke(FunctionName=name, Payload=json.dumps({"x": 42}))
    assert resp["StatusCode"] == 200
    assert resp["ExecutedVersion"] == "$LATEST"
    assert "FunctionError" not in resp
    assert "LogResult" not in resp
    out = json.loads(resp["Payload"].read())
    arn = f"arn:aws:lambda:us-west-2:000000000000:function:{name}"
    assert out["event"] == {"x": 42}
    assert (out["function_name"], out["function_version"], out["invoked_function_arn"]) == (name, "$LATEST", arn)
    assert out["memory_limit_in_mb"] == 256
    assert out["log_group_name"] == f"/aws/lambda/{name}"
    assert 25_000 < out["remaining_ms"] <= 30_000
    uuid.UUID(out["aws_request_id"])
    assert out["env"] == {
        "AWS_ENDPOINT_URL": endpoint.url,
        "AWS_REGION": "us-west-2",
        "AWS_DEFAULT_REGION": "us-west-2",
        "AWS_ACCESS_KEY_ID": "s3vl-local",
        "AWS_LAMBDA_FUNCTION_NAME": name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "GREETING": "hi",
    }


def test_module_state_survives_between_invocations(lam: Any, register: Any) -> None:
    name = register("echo")
    calls = [json.loads(lam.invoke(FunctionName=name)["Payload"].read())["container_calls"] for _ in range(3)]
    assert calls == [1, 2, 3]


@pytest.mark.parametrize(
    "form",
    [
        "{name}",
        "arn:aws:lambda:us-west-2:000000000000:function:{name}",
        "arn:aws:lambda:us-west-2:000000000000:function:{name}:$LATEST",
        "000000000000:function:{name}",
        "{name}:$LATEST",
    ],
)
def test_function_name_forms(lam: Any, register: Any, form: str) -> None:
    name = register("echo")
    resp = lam.invoke(FunctionName=form.format(name=name), Payload=b'{"x": 1}')
    assert json.loads(resp["Payload"].read())["function_name"] == name


def test_empty_payload_is_an_empty_event(lam: Any, register: Any) -> None:
    name = register("echo")
    assert json.loads(lam.invoke(FunctionName=name)["Payload"].read())["event"] == {}


def test_client_context_reaches_the_handler(lam: Any, register: Any) -> None:
    name = register("echo")
    cc = base64.b64encode(json.dumps({"custom": {"tenant": "t1"}}).encode()).decode()
    out = json.loads(lam.invoke(FunctionName=name, ClientContext=cc)["Payload"].read())
    assert out["client_custom"] == {"tenant": "t1"}


def test_log_tail(lam: Any, register: Any) -> None:
    name = register("echo")
    resp = lam.invoke(FunctionName=name, Payload=b'{"x": "seven"}', LogType="Tail")
    log = base64.b64decode(resp["LogResult"]).decode()
    request_id = json.loads(resp["Payload"].read())["aws_request_id"]
    lines = log.splitlines()
    assert lines[0] == f"START RequestId: {request_id} Version: $LATEST"
    assert "printed to stdout" in lines
    assert "printed to stderr" in lines
    assert any(line.startswith("[INFO]\t") and line.endswith(f"\t{request_id}\tlogged seven") for line in lines)
    assert lines[-2] == f"END RequestId: {request_id}"
    assert lines[-1].startswith(f"REPORT RequestId: {request_id}\tDuration: ")


def test_log_tail_is_the_last_4_kb(lam: Any, register: Any, endpoint: EndpointHandle) -> None:
    name = register("chatty")
    resp = lam.invoke(FunctionName=name, LogType="Tail")
    tail = base64.b64decode(resp["LogResult"])
    assert len(tail) == 4096
    assert b"line 0399" in tail
    assert b"line 0000" not in tail
    assert tail.decode().splitlines()[-1].startswith("REPORT RequestId:")
    # The whole log is kept in the function's log file (our CloudWatch).
    assert "line 0000" in (endpoint.data_dir / "lambda" / f"{name}.log").read_text()


# --- function errors -------------------------------------------------------------------------------


def test_unhandled_error_payload(lam: Any, register: Any) -> None:
    name = register("fail")
    resp = lam.invoke(FunctionName=name, Payload=b'{"why": "disk"}', LogType="Tail")
    assert resp["StatusCode"] == 200
    assert resp["FunctionError"] == "Unhandled"
    err = json.loads(resp["Payload"].read())
    assert set(err) == {"errorMessage", "errorType", "requestId", "stackTrace"}
    assert (err["errorType"], err["errorMessage"]) == ("ValueError", "something broke: disk")
    assert any("in inner" in frame for frame in err["stackTrace"])
    assert not any("runtime.py" in frame for frame in err["stackTrace"])
    assert "ValueError: something broke: disk" in base64.b64decode(resp["LogResult"]).decode()


def test_timeout(lam: Any, register: Any) -> None:
    name = register("slow", timeout_s=1)
    started = time.monotonic()
    resp = lam.invoke(FunctionName=name, Payload=b'{"sleep": 3}')
    assert time.monotonic() - started < 2.5
    assert resp["FunctionError"] == "Unhandled"
    err = json.loads(resp["Payload"].read())
    assert err["errorType"] == "Sandbox.Timedout"
    assert err["errorMessage"].endswith("Task timed out after 1.00 seconds")


def test_unserializable_result(lam: Any, register: Any) -> None:
    resp = lam.invoke(FunctionName=register("unserializable"))
    assert resp["FunctionError"] == "Unhandled"
    err = json.loads(resp["Payload"].read())
    assert err["errorType"] == "Runtime.MarshalError"
    assert err["errorMessage"].startswith("Unable to marshal response:")


def test_import_errors(lam: Any, register: Any, tmp_path: Path) -> None:
    broken = tmp_path / "broken_handler.py"
    broken.write_text("import not_a_module_anywhere\n")
    resp = lam.invoke(FunctionName=register("handler", file=broken))
    assert resp["FunctionError"] == "Unhandled"
    err = json.loads(resp["Payload"].read())
    assert err["errorType"] == "Runtime.ImportModuleError"
    assert err["errorMessage"].startswith("Unable to import module 'broken_handler':")

    resp = lam.invoke(FunctionName=register("no_such_function"))
    err = json.loads(resp["Payload"].read())
    assert err["errorType"] == "Runtime.HandlerNotFound"
    assert err["errorMessage"] == "Handler 'no_such_function' missing on module 'fixture_handler'"


# --- invocation types ------------------------------------------------------------------------------


def test_event_runs_in_the_background(lam: Any, register: Any, tmp_path: Path) -> None:
    marker = tmp_path / "event-ran"
    resp = lam.invoke(FunctionName=register("touch"), InvocationType="Event", Payload=json.dumps({"path": str(marker)}))
    assert resp["StatusCode"] == 202
    assert resp["Payload"].read() == b""
    deadline = time.monotonic() + 10
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.exists()


def test_dry_run_does_not_run_the_handler(lam: Any, register: Any, tmp_path: Path) -> None:
    marker = tmp_path / "dry-run"
    resp = lam.invoke(
        FunctionName=register("touch"), InvocationType="DryRun", Payload=json.dumps({"path": str(marker)})
    )
    assert resp["StatusCode"] == 204
    time.sleep(0.2)
    assert not marker.exists()


# --- API errors --------------------------------------------------------------------------------------


def test_unknown_function(lam: Any) -> None:
    assert error_of(lam, FunctionName="no-such-function") == (
        404,
        "ResourceNotFoundException",
        "Function not found: arn:aws:lambda:us-west-2:000000000000:function:no-such-function",
    )
    status, code, _ = error_of(lam, InvocationType="DryRun", FunctionName="no-such-function")
    assert (status, code) == (404, "ResourceNotFoundException")


def test_unknown_qualifier(lam: Any, register: Any) -> None:
    name = register("echo")
    assert error_of(lam, FunctionName=name, Qualifier="7") == (
        404,
        "ResourceNotFoundException",
        f"Function not found: arn:aws:lambda:us-west-2:000000000000:function:{name}:7",
    )
    status, code, _ = error_of(lam, FunctionName=f"{name}:prod", Qualifier="dev")
    assert (status, code) == (400, "InvalidParameterValueException")


def test_invalid_payload_and_client_context(lam: Any, register: Any) -> None:
    name = register("echo")
    status, code, message = error_of(lam, FunctionName=name, Payload=b"{not json")
    assert (status, code) == (400, "InvalidRequestContentException")
    assert message.startswith("Could not parse request body into json:")
    status, code, _ = error_of(lam, FunctionName=name, ClientContext="%%%not-base64")
    assert (status, code) == (400, "InvalidRequestContentException")


def test_payload_too_large(lam: Any, register: Any) -> None:
    name = register("echo")
    big = json.dumps({"x": "a" * (6 * 1024 * 1024)})
    assert error_of(lam, FunctionName=name, Payload=big) == (
        413,
        "RequestTooLargeException",
        "Request must be smaller than 6291456 bytes for the InvokeFunction operation",
    )


def test_invalid_invocation_type(lam: Any, register: Any) -> None:
    status, code, _ = error_of(lam, FunctionName=register("echo"), InvocationType="Later")
    assert (status, code) == (400, "ValidationException")


# --- faults and counters -------------------------------------------------------------------------


def test_injected_throttling(lam: Any, register: Any, endpoint: EndpointHandle) -> None:
    name = register("echo")
    endpoint.admin.set_faults({"rules": [{"service": "lambda", "operation": "Invoke", "throttle_fraction": 1.0}]})
    try:
        status, code, _ = error_of(lam, FunctionName=name)
        assert (status, code) == (429, "TooManyRequestsException")
    finally:
        endpoint.admin.clear_faults()
    assert lam.invoke(FunctionName=name)["StatusCode"] == 200


def test_counters(lam: Any, register: Any, endpoint: EndpointHandle) -> None:
    ok, bad = register("echo"), register("fail")
    lam.invoke(FunctionName=ok)
    lam.invoke(FunctionName=ok)
    lam.invoke(FunctionName=bad)
    counts = endpoint.admin.counters()["lambda"]["Invoke"]
    assert counts[f"invocations:{ok}"] == 2
    assert f"function_errors:{ok}" not in counts
    assert (counts[f"invocations:{bad}"], counts[f"function_errors:{bad}"]) == (1, 1)


def test_registration_is_validated(endpoint: EndpointHandle) -> None:
    with pytest.raises(urllib.error.HTTPError) as info:
        admin(endpoint, "PUT", "functions/bad-spec", {"handler": "no-colon"})
    assert info.value.code == 400
    assert "s3vl-query" in admin(endpoint, "GET", "functions")


# --- the real query Lambda -----------------------------------------------------------------------


def test_builtin_query_function_runs_lambda_handler(lam: Any) -> None:
    """``lambda/handler.py`` is loaded by path and calls S3 Vectors back through this endpoint."""
    arn = "arn:aws:lambda:us-west-2:000000000000:function:s3vl-query"
    event = {
        "operation": "get_index",
        "index_arn": "arn:aws:s3vectors:us-west-2:000000000000:bucket/no-such-bucket/index/no-such-index",
    }
    resp = lam.invoke(FunctionName=arn, Payload=json.dumps(event), LogType="Tail")
    assert resp["StatusCode"] == 200
    assert "FunctionError" not in resp
    out = json.loads(resp["Payload"].read())
    assert out["ok"] is False
    # A not-found answer (not a connection or internal error) proves the S3 Vectors round trip.
    assert out["error"]["code"] == "index_not_found"
