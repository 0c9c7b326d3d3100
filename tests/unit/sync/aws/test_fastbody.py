"""Fast S3 Vectors bodies, proved against stock botocore as the reference (no network).

Requests: the bytes sent are botocore's JSON, byte for byte outside the float lists, whose
values are bit-equal after rounding to float32; Content-Length, headers and an independently
recomputed SigV4 signature cover them; retries resend them; validation errors are botocore's.
Responses: GetVectors/ListVectors come out ``repr``-identical to botocore's parse, and whatever
is unusual is left to botocore.
"""

from __future__ import annotations

import copy
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import orjson
import pytest
from botocore.exceptions import ParamValidationError

from sync.aws import fastbody
from tests.support.aws_wire import ARN, Capture, as_lists, make_client, random_vectors, sigv4_valid

FLOAT_LIST = re.compile(rb'\{"float32": \[[^\]]*\]\}')


def _pair(**config: Any) -> tuple[tuple[Any, Capture], tuple[Any, Capture]]:
    stock = make_client(**config)
    fast = fastbody.install(make_client(**config))
    return (stock, Capture(stock)), (fast, Capture(fast))


def _f32(values: Any) -> np.ndarray:
    """A service's reading of a JSON float list: as doubles, narrowed to float32."""
    return np.asarray(values, dtype=np.float64).astype(np.float32)


def assert_same_put_body(fast_body: bytes, stock_body: bytes, originals: list[dict[str, Any]]) -> None:
    assert FLOAT_LIST.split(fast_body) == FLOAT_LIST.split(stock_body)  # every other byte is botocore's
    fast_doc, stock_doc = json.loads(fast_body), json.loads(stock_body)
    assert len(fast_doc["vectors"]) == len(stock_doc["vectors"]) == len(originals)
    for fv, sv, orig in zip(fast_doc["vectors"], stock_doc["vectors"], originals, strict=True):
        want = np.asarray(orig["data"]["float32"], dtype=np.float32).view(np.uint32)
        assert np.array_equal(_f32(fv["data"]["float32"]).view(np.uint32), want)  # bits: -0.0, subnormals
        assert np.array_equal(_f32(sv["data"]["float32"]).view(np.uint32), want)
        fv["data"] = sv["data"] = None
    assert fast_doc == stock_doc


# --- requests ---------------------------------------------------------------------------------
def test_put_vectors_body_is_botocores_smaller_and_signed() -> None:
    (stock, sc), (fast, fc) = _pair()
    vectors = random_vectors(500, 1024)
    stock.put_vectors(indexArn=ARN, vectors=as_lists(vectors))
    fast.put_vectors(indexArn=ARN, vectors=vectors)
    s, f = sc.last, fc.last
    assert_same_put_body(f["body"], s["body"], vectors)
    assert len(f["body"]) < 0.6 * len(s["body"])  # float32 text, not botocore's doubles
    assert int(f["headers"]["Content-Length"]) == len(f["body"])
    assert sorted(k.lower() for k in f["headers"]) == sorted(k.lower() for k in s["headers"])
    assert not [h for h in f["headers"] if "checksum" in h.lower() or h.lower() == "content-md5"]
    assert f["headers"]["User-Agent"] == s["headers"]["User-Agent"]
    assert sigv4_valid(f["method"], f["url"], f["headers"], f["body"])
    assert not sigv4_valid(f["method"], f["url"], f["headers"], f["body"][:-2] + b" }")  # the verifier can fail
    assert not sigv4_valid(f["method"], f["url"], f["headers"], s["body"])


def test_the_double_rounding_values_are_written_as_doubles() -> None:
    """The two float32 values whose shortest text, read as a double, narrows to a neighbour."""
    (_, _), (fast, fc) = _pair()
    tricky = np.array([7.038530691851209e-26, -7.038530691851209e-26, 0.1], dtype=np.float32)
    plain = np.array([0.1, 0.2], dtype=np.float32)
    fast.put_vectors(indexArn=ARN, vectors=[{"key": "a", "data": {"float32": tricky}},
                                            {"key": "b", "data": {"float32": plain}}])
    doc = json.loads(fc.last["body"])
    assert np.array_equal(_f32(doc["vectors"][0]["data"]["float32"]).view(np.uint32), tricky.view(np.uint32))
    assert doc["vectors"][1]["data"]["float32"] == [0.1, 0.2]  # float32's shortest text
    assert b"7.038530691851209e-26" in fc.last["body"]


@pytest.mark.parametrize("mode", ["when_supported", "when_required"])
def test_no_checksum_headers_in_either_checksum_mode(mode: str) -> None:
    (stock, sc), (fast, fc) = _pair(request_checksum_calculation=mode)
    vectors = random_vectors(3, 8)
    stock.put_vectors(indexArn=ARN, vectors=as_lists(vectors))
    fast.put_vectors(indexArn=ARN, vectors=vectors)
    assert sorted(fc.last["headers"]) == sorted(sc.last["headers"])


def test_input_is_untouched_and_a_repeat_call_sends_the_same_bytes() -> None:
    (_, _), (fast, fc) = _pair()
    vectors = random_vectors(20, 16)
    before = copy.deepcopy(vectors)
    fast.put_vectors(indexArn=ARN, vectors=vectors)
    fast.put_vectors(indexArn=ARN, vectors=vectors)  # what s3vl's own retry does
    assert fc.requests[0]["body"] == fc.requests[1]["body"]
    for a, b in zip(vectors, before, strict=True):
        assert a["key"] == b["key"]
        assert a["metadata"] == b["metadata"]
        assert np.array_equal(a["data"]["float32"], b["data"]["float32"])


def test_a_botocore_retry_resends_the_body_resigned() -> None:
    fast = fastbody.install(make_client())
    err = (500, b'{"__type":"InternalServerException","message":"boom"}')
    fc = Capture(fast, responses=[err, err])
    vectors = random_vectors(10, 32)
    resp = fast.put_vectors(indexArn=ARN, vectors=vectors)
    assert resp["ResponseMetadata"]["RetryAttempts"] == 2
    assert len({r["body"] for r in fc.requests}) == 1
    for i, r in enumerate(fc.requests, 1):
        assert r["headers"]["amz-sdk-request"].decode().startswith(f"attempt={i};")
        assert sigv4_valid(r["method"], r["url"], r["headers"], r["body"])


def test_arrays_the_fast_path_does_not_take_are_botocores() -> None:
    variants: list[Any] = [
        np.random.default_rng(1).standard_normal(64),            # float64 array: narrowed, fast
        np.arange(64, dtype=np.int64),                           # integers: fast
        np.arange(128, dtype=np.float32)[::2],                   # a strided view: fast
        np.array([1.0, np.nan], dtype=np.float32),               # NaN: botocore's ("NaN" string)
        np.array([1e39, 1.0]),                                   # beyond float32: botocore's
        [0.5, 0.25],                                             # Python floats: botocore's
    ]
    vectors = [{"key": f"k{i}", "data": {"float32": v}, "metadata": {"n": i}} for i, v in enumerate(variants)]
    (stock, sc), (fast, fc) = _pair()
    stock.put_vectors(indexArn=ARN, vectors=as_lists(vectors))
    fast.put_vectors(indexArn=ARN, vectors=vectors)
    assert FLOAT_LIST.split(fc.last["body"]) == FLOAT_LIST.split(sc.last["body"])
    fd, sd = json.loads(fc.last["body"]), json.loads(sc.last["body"])
    for i in range(3):
        assert np.array_equal(_f32(fd["vectors"][i]["data"]["float32"]), _f32(sd["vectors"][i]["data"]["float32"]))
    assert fd["vectors"][3:] == sd["vectors"][3:]
    assert sd["vectors"][3]["data"]["float32"] == [1.0, "NaN"]


@pytest.mark.parametrize("bad", [
    [{"key": "k", "data": {"float32": np.zeros((2, 2), dtype=np.float32)}}],  # 2-D
    [{"key": "", "data": {"float32": np.zeros(4, dtype=np.float32)}}],        # key too short
    [{"data": {"float32": np.zeros(4, dtype=np.float32)}}],                   # key missing
    [{"key": "k", "data": {"float32": np.zeros(4, dtype=np.float32)}, "x": 1}],  # unknown field
    [{"key": "k", "data": {"float32": np.zeros(4, dtype=np.float32), "float16": [1.0]}}],  # two union members
    [],                                                                       # empty (min 1)
])
def test_validation_errors_are_botocores(bad: list[dict[str, Any]]) -> None:
    (stock, _), (fast, _) = _pair()
    plain = [{**v, "data": {k: x.tolist() if isinstance(x, np.ndarray) else x for k, x in v["data"].items()}}
             for v in bad]
    with pytest.raises(ParamValidationError) as s:
        stock.put_vectors(indexArn=ARN, vectors=plain)
    with pytest.raises(ParamValidationError) as f:
        fast.put_vectors(indexArn=ARN, vectors=bad)
    assert str(f.value) == str(s.value)


def test_metadata_edge_cases_are_byte_identical() -> None:
    """NaN and huge integers inside metadata go through the stdlib, as with botocore."""
    md = {"nan": float("nan"), "big": 2**70, "neg": -(2**65), "u": "\u2028\ud7ff", "nested": {"l": [1, None, 2.5]}}
    vectors = [{"key": "k", "data": {"float32": np.ones(4, dtype=np.float32)}, "metadata": md}]
    (stock, sc), (fast, fc) = _pair()
    stock.put_vectors(indexArn=ARN, vectors=as_lists(vectors))
    fast.put_vectors(indexArn=ARN, vectors=vectors)
    assert FLOAT_LIST.split(fc.last["body"]) == FLOAT_LIST.split(sc.last["body"])
    assert b"1180591620717411303424" in fc.last["body"]


def test_threads_share_one_client() -> None:
    fast = fastbody.install(make_client(max_pool_connections=16))
    fc = Capture(fast)
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            for j in range(10):
                fast.put_vectors(indexArn=ARN, vectors=random_vectors(20, 64, seed=t * 100 + j))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(fc.requests) == 80
    for r in fc.requests:
        doc = json.loads(r["body"])
        want = random_vectors(20, 64, seed=int(doc["vectors"][0]["key"].split("-")[1]))
        for got, exp in zip(doc["vectors"], want, strict=True):
            assert got["key"] == exp["key"]
            assert np.array_equal(_f32(got["data"]["float32"]), exp["data"]["float32"])
        assert sigv4_valid(r["method"], r["url"], r["headers"], r["body"])


class _Server:
    """A real local HTTP server that records what it receives and answers from a script."""

    def __init__(self, script: list[tuple[int, bytes]]) -> None:
        self.received: list[dict[str, Any]] = []
        outer, queue = self, list(script)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.received.append({"path": self.path, "headers": self.headers, "body": body})
                status, payload = queue.pop(0) if queue else (200, b"{}")
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                if status >= 300:
                    self.send_header("x-amzn-ErrorType", "InternalServerException")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_the_wire_over_a_socket_with_aws_endpoint_url(monkeypatch: pytest.MonkeyPatch) -> None:
    srv = _Server([(500, b'{"__type":"InternalServerException","message":"x"}')])
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3VECTORS", srv.url)
        fast = fastbody.install(make_client())
        assert fast.meta.endpoint_url == srv.url
        vectors = random_vectors(500, 1024, seed=7)
        fast.put_vectors(indexArn=ARN, vectors=vectors)
        assert len(srv.received) == 2  # botocore's retry after the 500
        assert srv.received[0]["body"] == srv.received[1]["body"]
        for r in srv.received:
            assert r["path"] == "/PutVectors"
            assert int(r["headers"]["Content-Length"]) == len(r["body"])
            assert sigv4_valid("POST", srv.url + r["path"], r["headers"], r["body"])
        stock = make_client()
        sc = Capture(stock)
        stock.put_vectors(indexArn=ARN, vectors=as_lists(vectors))
        assert_same_put_body(srv.received[-1]["body"], sc.last["body"], vectors)
    finally:
        srv.close()


# --- responses --------------------------------------------------------------------------------
def _vectors_json(n: int, dim: int) -> bytes:
    data = np.random.default_rng(0).standard_normal((n, dim)).astype(np.float32)
    return orjson.dumps({"vectors": [{"key": f"k{i}", "data": {"float32": data[i]}, "metadata": {"id": i, "t": "é"}}
                                     for i in range(n)]}, option=orjson.OPT_SERIALIZE_NUMPY)


def _both(op: str, params: dict[str, Any], status: int, body: bytes) -> list[tuple[str, Any, list[bool]]]:
    out = []
    for install in (False, True):
        c = make_client(retries={"mode": "standard", "total_max_attempts": 1})
        if install:
            fastbody.install(c)
        took: list[bool] = []
        c.meta.events.register(f"before-parse.s3vectors.{op}",
                               lambda response_dict, took=took, **_: took.append(response_dict["body"] == b"{}"))
        Capture(c, default=(status, body))
        method = re.sub(r"(?<!^)(?=[A-Z])", "_", op).lower()
        try:
            out.append(("ok", getattr(c, method)(**params), took))
        except Exception as exc:
            out.append(("error", (type(exc).__name__, str(exc), getattr(exc, "response", None)), took))
    return out


GET = {"indexArn": ARN, "keys": ["k0"], "returnData": True, "returnMetadata": True}
LIST = {"indexArn": ARN, "returnData": True, "returnMetadata": True}


@pytest.mark.parametrize(("op", "params", "status", "body", "fast"), [
    ("GetVectors", GET, 200, _vectors_json(100, 1024), True),
    ("GetVectors", GET, 200, b'{"vectors":[{"key":"a","data":{"float32":[1,2,0,-3]}}]}', True),  # ints -> floats
    ("GetVectors", GET, 200, b'{"vectors":[{"key":"a","data":{"float32":[1.0,null,"NaN","-Infinity"]}}]}', True),
    ("GetVectors", GET, 200, b'{"vectors":[{"key":"a","data":null,"metadata":null},{"key":"b"}],"extra":1}', True),
    ("GetVectors", GET, 200, b'{"vectors":[{"key":"a","metadata":{"n":18446744073709551615,"m":-5}}]}', True),
    ("GetVectors", GET, 200, b'{"vectors":[{"key":"a","data":{"float32":[NaN]}}]}', False),  # a literal
    ("GetVectors", GET, 200, b'{"vectors":[{"key":"a","data":{"float16":[1.0]}}]}', False),  # unknown member
    ("GetVectors", GET, 200, b'{"vectors":[{"key":"a","data":{"float32":[1.0],"x":[2.0]}}]}', False),
    ("GetVectors", GET, 200, b'{"vectors":[{"key":"a","metadata":{"big":123456789012345678901234567890}}]}', False),
    ("GetVectors", GET, 200, b"", False),
    ("GetVectors", GET, 200, b"not json", False),
    ("GetVectors", GET, 404, b'{"__type":"NotFoundException","message":"no index"}', False),
    ("GetVectors", GET, 500, b'{"__type":"InternalServerException","message":"boom"}', False),
    ("ListVectors", LIST, 200, b'{"vectors":[{"key":"a","data":{"float32":[0.5]},"metadata":{"s3vl_ev":"x"}}],'
                               b'"nextToken":"t"}', True),
])
def test_responses_parse_like_botocore(op: str, params: dict[str, Any], status: int, body: bytes,
                                       fast: bool) -> None:
    (skind, sres, stook), (fkind, fres, ftook) = _both(op, params, status, body)
    assert skind == fkind
    assert repr(fres) == repr(sres)  # NaN-safe deep equality, types included (1.0 is not 1)
    assert stook == [False]
    assert ftook == [fast]


def test_install_is_idempotent_scoped_to_its_client_and_for_s3vectors_only() -> None:
    c = fastbody.install(fastbody.install(make_client()))
    cap = Capture(c)
    c.put_vectors(indexArn=ARN, vectors=random_vectors(2, 4))
    assert len(cap.requests) == 1
    with pytest.raises(ParamValidationError):  # another client is stock: arrays are refused
        make_client().put_vectors(indexArn=ARN, vectors=random_vectors(2, 4))
    with pytest.raises(ValueError, match="not bedrock"):
        fastbody.install(make_client("bedrock-runtime"))
