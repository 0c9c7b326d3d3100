"""The pipeline's pure decisions (diff with state) and the AWS helpers (classification, limits)."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from sync.aws import AdaptiveLimit, RateLimiter, RetryPolicy, is_throttling, is_transient
from sync.errors import TransientAwsError
from sync.outbox import LeasedKey, Loaded, Row, State, SyncDef
from sync.pipeline import diff, result_of
from sync.render import content_hash, metadata_hash


def _sync(**kw: object) -> SyncDef:
    base: dict[str, object] = dict(
        name="p", source="public.p", key_columns=["id"], index_name="i",
        index_arn="arn:aws:s3vectors:us-west-2:000000000000:bucket/b/index/i", text_expression="t",
        metadata_columns=["c"], embedding_model="amazon.titan-embed-text-v2:0", dimensions=256,
        embedding_version="ev1")
    base.update(kw)
    return SyncDef.model_validate(base)


def _row(text: str, md: dict[str, object] | None = None) -> Row:
    return Row(text, dict(md or {}), content_hash(text))


def _state(text: str, md: dict[str, object] | None = None, *, ev: str = "ev1", count: int = 1,
           chunked: bool = False) -> State:
    return State(content_hash(text), metadata_hash(dict(md or {}), False), ev, count, chunked)


def _kinds(sync: SyncDef, loaded: Loaded, keys: list[str]) -> dict[str, str]:
    return {w.key: w.kind for w in diff(sync, [LeasedKey(k, 1, 0) for k in keys], loaded)}


def test_diff_decides_each_case() -> None:
    sync = _sync()
    loaded = Loaded(
        rows={"new": _row("a"), "same": _row("b", {"c": 1}), "meta": _row("c", {"c": 2}),
              "text": _row("d2"), "ev": _row("e"), "blank": _row("  "), "unknown": _row("f")},
        states={"same": _state("b", {"c": 1}), "meta": _state("c", {"c": 1}), "text": _state("d1"),
                "ev": _state("e", ev="old"), "gone": _state("x"), "blank": _state("y"),
                "unknown": State(None, None, "ev1", 1, False)},
        errors={"bad": "division by zero"},
    )
    kinds = _kinds(sync, loaded, ["new", "same", "meta", "text", "ev", "gone", "blank", "unknown", "bad", "none"])
    assert kinds == {"new": "embed", "same": "unchanged", "meta": "metadata", "text": "embed", "ev": "embed",
                     "gone": "delete", "blank": "delete", "unknown": "embed", "bad": "failed", "none": "delete"}


def test_diff_deletes_vanished_chunks_and_old_unchunked_key() -> None:
    sync = _sync(chunk_size=100, chunk_overlap=0)
    long_text = " ".join(["word"] * 60)  # about 300 characters -> several chunks
    loaded = Loaded(rows={"k": _row("short text")}, states={"k": _state(long_text, count=4, chunked=True)})
    (w,) = diff(sync, [LeasedKey("k", 3, 0)], loaded)
    assert w.kind == "embed"
    assert w.new_keys == ["k#0"]
    assert w.delete_keys == ["k#1", "k#2", "k#3"]
    # switching chunking on: the unchunked vector goes
    loaded = Loaded(rows={"k": _row("short text")}, states={"k": _state("short text")})
    (w,) = diff(sync, [LeasedKey("k", 1, 0)], loaded)
    assert (w.kind, w.new_keys, w.delete_keys) == ("embed", ["k#0"], ["k"])


def test_diff_delete_without_state_touches_nothing() -> None:
    (w,) = diff(_sync(), [LeasedKey("k", 1, 0)], Loaded())
    assert (w.kind, w.delete_keys) == ("delete", [])
    r = result_of(_sync(), w)
    assert r.deleted


def test_result_records_state() -> None:
    sync = _sync()
    (w,) = diff(sync, [LeasedKey("k", 5, 0)], Loaded(rows={"k": _row("hello", {"c": 1})}))
    r = result_of(sync, w)
    assert (r.key, r.version, r.deleted, r.content_hash, r.embedding_version, r.chunk_count, r.chunked) == (
        "k", 5, False, content_hash("hello"), "ev1", 1, False)


def _client_error(code: str, status: int) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}},
                       "Op")


def test_transient_classification() -> None:
    assert is_transient(_client_error("ThrottlingException", 429))
    assert is_throttling(_client_error("ThrottlingException", 429))
    assert is_transient(_client_error("ServiceUnavailableException", 503))
    assert is_transient(EndpointConnectionError(endpoint_url="http://x"))
    assert not is_transient(_client_error("ValidationException", 400))
    assert not is_throttling(_client_error("ServiceUnavailableException", 503))


def test_retry_policy_retries_transient_then_gives_up() -> None:
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise _client_error("ThrottlingException", 429)
        return "ok"

    assert RetryPolicy(attempts=5, base=0.001, cap=0.002).call("x", flaky) == "ok"
    assert len(calls) == 3

    def always() -> str:
        raise _client_error("ServiceUnavailableException", 503)

    with pytest.raises(TransientAwsError, match="ServiceUnavailableException"):
        RetryPolicy(attempts=2, base=0.001, cap=0.002).call("x", always)

    def invalid() -> str:
        raise _client_error("ValidationException", 400)

    with pytest.raises(ClientError):
        RetryPolicy(attempts=5, base=0.001).call("x", invalid)


def test_rate_limiter_waits_for_tokens() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    limiter = RateLimiter(rate=100, clock=lambda: now[0], sleep=sleep)
    assert limiter.acquire(100) == 0.0       # the initial burst
    waited = limiter.acquire(50)             # then 50 tokens take half a second
    assert waited == pytest.approx(0.5)


def test_adaptive_limit_halves_and_grows_back() -> None:
    limit = AdaptiveLimit(8, grow_after=2)
    limit.throttled()
    assert limit.limit == 4
    limit.throttled()
    limit.throttled()
    limit.throttled()
    assert limit.limit == 1
    for _ in range(4):
        limit.succeeded()
    assert limit.limit == 3


def test_rate_limiter_slows_down_and_recovers() -> None:
    limiter = RateLimiter(rate=1000)
    limiter.slow_down(floor=50)
    assert limiter.rate == 500
    for _ in range(10):
        limiter.slow_down(floor=50)
    assert limiter.rate == 50
    for _ in range(100):
        limiter.speed_up(1000)
    assert limiter.rate == 1000
