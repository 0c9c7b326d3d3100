"""The AWS edge's classification of errors (transient, throttling), its retry policy and its limiters."""

from __future__ import annotations

import threading
import time

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


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _round(limit: AdaptiveLimit) -> None:
    """One round of calls that fills every slot, each succeeding."""
    slots = [limit.__enter__() for _ in range(limit.limit)]
    for s in slots:
        s.__exit__(None, None, None)
        limit.succeeded()


def test_adaptive_limit_grows_by_one_a_round_while_saturated_up_to_its_maximum() -> None:
    limit = AdaptiveLimit(2, maximum=5)
    for expected in (3, 4, 5, 5):
        _round(limit)
        assert limit.limit == expected


def test_adaptive_limit_does_not_grow_while_demand_is_below_it() -> None:
    limit = AdaptiveLimit(4, maximum=64)
    for _ in range(100):
        with limit:
            pass
        limit.succeeded()
    assert limit.limit == 4


def test_adaptive_limit_halves_once_per_cooldown_on_throttling() -> None:
    clock = _Clock()
    limit = AdaptiveLimit(16, maximum=16, cooldown=1.0, clock=clock)
    for _ in range(8):  # the calls in flight when throttling began all answer with throttles
        limit.throttled()
    assert limit.limit == 8
    clock.now = 1.1
    limit.throttled()
    assert limit.limit == 4
    for _ in range(10):
        clock.now += 1
        limit.throttled()
    assert limit.limit == 1


def test_adaptive_limit_blocks_callers_beyond_the_limit() -> None:
    limit = AdaptiveLimit(2, maximum=2)
    inside = []
    gate = threading.Event()

    def call() -> None:
        with limit:
            inside.append(1)
            gate.wait(5)

    threads = [threading.Thread(target=call) for _ in range(3)]
    for t in threads:
        t.start()
    time.sleep(0.2)
    assert len(inside) == 2
    gate.set()
    for t in threads:
        t.join()
    assert len(inside) == 3


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
