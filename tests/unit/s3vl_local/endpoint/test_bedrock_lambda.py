"""Pure parts of the local Bedrock and Lambda services: model ids, bodies, function names, runtime."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from s3vl_local.embedding import HashedEmbedder
from s3vl_local.endpoint.app import AwsError, json_response
from s3vl_local.endpoint.bedrock import models
from s3vl_local.endpoint.lambda_ import runtime
from s3vl_local.endpoint.lambda_.registry import QUERY_HANDLER, Registry, parse_function_name
from tests.support.paths import REPO

# --- Bedrock model ids and bodies -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model_id", "expected"),
    [
        ("amazon.titan-embed-text-v2:0", "amazon.titan-embed-text-v2:0"),
        ("amazon.titan-embed-text-v1", "amazon.titan-embed-text-v1"),
        ("arn:aws:bedrock:us-west-2::foundation-model/cohere.embed-english-v3", "cohere.embed-english-v3"),
        ("eu.cohere.embed-multilingual-v3", "cohere.embed-multilingual-v3"),
        (
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/global.amazon.titan-embed-text-v2:0",
            "amazon.titan-embed-text-v2:0",
        ),
    ],
)
def test_resolve_model(model_id: str, expected: str) -> None:
    assert models.resolve_model(model_id).model_id == expected


@pytest.mark.parametrize(
    "model_id", ["", "amazon.titan-embed-text-v2", "xx.amazon.titan-embed-text-v1", "arn:aws:s3:::b"]
)
def test_resolve_unknown_model(model_id: str) -> None:
    with pytest.raises(AwsError) as info:
        models.resolve_model(model_id)
    assert (info.value.status, info.value.code) == (404, "ResourceNotFoundException")


def test_titan_v2_body() -> None:
    result = models.invoke(
        models.MODELS["amazon.titan-embed-text-v2:0"], {"inputText": "hello world", "dimensions": 512}, HashedEmbedder()
    )
    assert (result.texts, result.input_tokens) == (1, 2)
    assert len(result.body["embedding"]) == 512
    assert result.body["inputTextTokenCount"] == 2
    wire = json.loads(json_response(result.body).get_data())  # what the response carries
    sent = np.asarray(result.body["embedding"], dtype=np.float32)
    assert np.array_equal(np.asarray(wire["embedding"], dtype=np.float32), sent)  # float32 text reads back exactly


def test_cohere_quantisation() -> None:
    v = np.array([[0.5, -0.25, 0.0, 0.1, -0.5, 0.2, 0.3, -0.1, 0.4]], dtype=np.float32)
    assert models._quantized(v, "int8")[0][:3] == [127, -64, 0]
    assert models._quantized(v, "uint8")[0][:3] == [255, 64, 128]
    # sign bits 1,0,0,1,0,1,1,0 | 1 -> 0b10010110, 0b10000000
    assert models._quantized(v, "ubinary") == [[150, 128]]
    assert models._quantized(v, "binary") == [[22, 0]]


def test_cohere_batch_is_counted() -> None:
    result = models.invoke(
        models.MODELS["cohere.embed-english-v3"],
        {"texts": ["a b", "c"], "input_type": "search_document"},
        HashedEmbedder(),
    )
    assert (result.texts, result.input_tokens) == (2, 3)
    assert result.body["response_type"] == "embeddings_floats"


# --- Lambda function names ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "qualifier", "expected"),
    [
        ("f", None, ("f", None)),
        ("f:$LATEST", None, ("f", "$LATEST")),
        ("f", "prod", ("f", "prod")),
        ("123456789012:function:f", None, ("f", None)),
        ("arn:aws:lambda:us-west-2:000000000000:function:my_fn-1", None, ("my_fn-1", None)),
        ("arn:aws:lambda:us-west-2:000000000000:function:f:7", "7", ("f", "7")),
    ],
)
def test_parse_function_name(raw: str, qualifier: str | None, expected: tuple[str, str | None]) -> None:
    assert parse_function_name(raw, qualifier) == expected


@pytest.mark.parametrize(
    ("raw", "qualifier", "code"),
    [
        ("f:1", "2", "InvalidParameterValueException"),
        ("arn:aws:lambda:us-west-2:function:f", None, "ValidationException"),
        ("bad name", None, "ValidationException"),
    ],
)
def test_parse_function_name_errors(raw: str, qualifier: str | None, code: str) -> None:
    with pytest.raises(AwsError) as info:
        parse_function_name(raw, qualifier)
    assert info.value.code == code
    assert info.value.extra == {"Type": "User"}




def test_registry_has_the_query_function() -> None:
    config = Registry().get("s3vl-query")
    assert config is not None
    assert config.handler_file == QUERY_HANDLER
    assert QUERY_HANDLER.name == "handler.py"
    # the packaged link resolves to the repository's lambda/ folder, the deployed code itself
    assert QUERY_HANDLER.resolve() == (REPO / "lambda" / "handler.py").resolve()


@pytest.mark.parametrize(
    "spec",
    [
        {"handler": "x.py"},
        {"handler": "x.py:f", "timeout_s": 0},
        {"handler": "x.py:f", "memory_mb": 64},
        {"handler": "x.py:f", "environment": {"A": 1}},
        {"handler": "x.py:f", "role": "r"},
        "x.py:f",
    ],
)
def test_registry_rejects_bad_specs(spec: Any) -> None:
    with pytest.raises(AwsError) as info:
        Registry().put("f", spec)
    assert info.value.code == "ValidationException"


# --- runtime ------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def isolated_process_state() -> Iterator[None]:
    """The runtime writes os.environ and wraps sys.stdout/stderr + the root logger, process-wide
    (right for the endpoint process, wrong for the test process): put everything back."""
    environ, stdout, stderr = os.environ.copy(), sys.stdout, sys.stderr
    handlers = list(logging.getLogger().handlers)
    yield
    os.environ.clear()
    os.environ.update(environ)
    sys.stdout, sys.stderr = stdout, stderr
    logging.getLogger().handlers[:] = handlers
    runtime._installed = False


def test_runtime_invokes_a_handler_in_process(tmp_path: Path) -> None:
    handler = tmp_path / "h.py"
    handler.write_text(
        "import os\n"
        "def main(event, context):\n"
        "    print('hi')\n"
        "    return {'n': event['n'] + 1, 'fn': context.function_name, 'url': os.environ['AWS_ENDPOINT_URL']}\n"
    )
    config = runtime.FunctionConfig(name="unit-fn", handler_file=handler, handler_name="main", timeout_s=5)
    outcome = runtime.invoke(
        config,
        {"n": 1},
        base_url="http://127.0.0.1:1",
        region="us-west-2",
        account_id="000000000000",
        log_dir=tmp_path / "logs",
    )
    assert outcome.function_error is None
    assert json.loads(outcome.payload) == {"n": 2, "fn": "unit-fn", "url": "http://127.0.0.1:1"}
    assert "\nhi\n" in outcome.log
    assert (tmp_path / "logs" / "unit-fn.log").read_text() == outcome.log


def test_runtime_reloads_a_changed_handler(tmp_path: Path) -> None:
    handler = tmp_path / "h2.py"
    handler.write_text("def main(event, context):\n    return 1\n")
    config = runtime.FunctionConfig(name="unit-reload", handler_file=handler, handler_name="main", timeout_s=5)
    kwargs: dict[str, Any] = {"base_url": "x", "region": "us-west-2", "account_id": "0", "log_dir": tmp_path}
    assert runtime.invoke(config, {}, **kwargs).payload == b"1"
    handler.write_text("def main(event, context):\n    return 2\n")
    os.utime(handler, (1, 1))  # a different mtime, whatever the clock resolution
    assert runtime.invoke(config, {}, **kwargs).payload == b"2"


def test_log_tail_keeps_the_last_bytes() -> None:
    assert runtime.log_tail("abcdef", limit=4) == b"cdef"
    assert runtime.log_tail("é" * 3000) == ("é" * 3000).encode()[-4096:]


def test_context_remaining_time() -> None:
    ctx = runtime.LambdaContext(
        function_name="f",
        function_version="$LATEST",
        invoked_function_arn="arn",
        memory_limit_in_mb=128,
        aws_request_id="r",
        log_group_name="g",
        log_stream_name="s",
        deadline_monotonic=time.monotonic() + 2,
    )
    assert 1500 < ctx.get_remaining_time_in_millis() <= 2000
    ctx.deadline_monotonic = time.monotonic() - 1
    assert ctx.get_remaining_time_in_millis() == 0
