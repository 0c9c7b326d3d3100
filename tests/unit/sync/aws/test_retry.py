"""The AWS edge's classification of errors (transient, throttling), its retry policy and its limiters."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from sync.aws.retry import AdaptiveLimit, RateLimiter, RetryPolicy, is_throttling, is_transient
from sync.errors import TransientAwsError


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
