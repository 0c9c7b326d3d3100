"""The one boundary where botocore errors are classified, and how s3vl retries and paces AWS calls.

* Throttling, 5xx and connection errors are *transient*: retried here with exponential backoff
  and full jitter (tenacity); when the retries run out they become :class:`TransientAwsError`,
  and the worker gives the batch back without counting an attempt against its rows.
* Anything else (a 4xx such as ValidationException) is about the request: it becomes the
  caller's error class (:class:`EmbeddingError`, :class:`VectorStoreError`) and, at the
  pipeline's level, a failure of the rows concerned only.

botocore's own retries are turned off (``max_attempts=1``) so that this module is the one place
that decides how often and how long to retry.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from importlib import resources
from typing import TypeVar

import structlog
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, stop_after_delay
from tenacity.wait import wait_random_exponential

from sync.errors import TransientAwsError

log = structlog.get_logger(__name__)
T = TypeVar("T")

# One list with the query Lambda's (retryable_codes.json is a link to the Lambda's file). Any 429
# or 5xx is retried whatever its code; the lists name what arrives with another status.
_CODES = json.loads((resources.files("sync.aws") / "retryable_codes.json").read_text(encoding="utf-8"))
THROTTLING_CODES = frozenset(_CODES["throttling"])
TRANSIENT_CODES = THROTTLING_CODES | frozenset(_CODES["transient"])


def error_code(exc: BaseException) -> str:
    """AWS's error code of a botocore error ('' for others)."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return type(exc).__name__ if isinstance(exc, BotoCoreError) else ""


def is_transient(exc: BaseException) -> bool:
    """Throttling, 5xx, timeouts and connection failures: worth retrying."""
    if isinstance(exc, ClientError):
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        return error_code(exc) in TRANSIENT_CODES or status == 429 or status >= 500
    # botocore's own classes of transient errors (as its standard retry mode): failing to connect
    # (EndpointConnectionError, ConnectTimeoutError, ...) and a connection that breaks during the
    # exchange (ConnectionClosedError, ReadTimeoutError, and ResponseStreamingError when the
    # server dies while the response body is read)
    return isinstance(exc, (BotoConnectionError, HTTPClientError))


def is_throttling(exc: BaseException) -> bool:
    if isinstance(exc, ClientError):
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        return error_code(exc) in THROTTLING_CODES or status == 429
    return False


class RetryPolicy:
    """How transient errors are retried: attempts, total time, backoff base and cap."""

    def __init__(self, attempts: int = 8, max_seconds: float = 60.0, base: float = 0.05, cap: float = 5.0) -> None:
        self.attempts = attempts
        self.max_seconds = max_seconds
        self.base = base
        self.cap = cap

    def call(self, what: str, fn: Callable[[], T], on_retry: Callable[[BaseException], None] | None = None) -> T:
        """Run ``fn``; retry transient errors; raise :class:`TransientAwsError` when they persist."""

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            if exc is not None:
                if on_retry is not None:
                    on_retry(exc)
                log.debug("aws.retry", call=what, attempt=state.attempt_number, code=error_code(exc))

        retrying = Retrying(
            retry=retry_if_exception(is_transient),
            wait=wait_random_exponential(multiplier=self.base, max=self.cap),
            stop=stop_after_attempt(self.attempts) | stop_after_delay(self.max_seconds),
            before_sleep=before_sleep,
            reraise=True,
        )
        try:
            return retrying(fn)
        except (ClientError, BotoCoreError) as exc:
            if is_transient(exc):
                raise TransientAwsError(f"{what}: {error_code(exc) or type(exc).__name__} after "
                                        f"{self.attempts} attempts: {exc}", throttled=is_throttling(exc)) from exc
            raise


class RateLimiter:
    """A token bucket: at most ``rate`` units per second, bursts up to ``burst``. Thread-safe.

    Used per index for S3 Vectors' write limits (requests/s and vectors/s).
    """

    def __init__(self, rate: float, burst: float | None = None, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.rate = rate
        self.capacity = burst if burst is not None else rate
        self._tokens = self.capacity
        self._clock = clock
        self._sleep = sleep
        self._last = clock()
        self._lock = threading.Lock()

    def slow_down(self, floor: float = 1.0) -> None:
        """Halve the rate (the service throttled us), not below ``floor``."""
        with self._lock:
            self.rate = max(floor, self.rate / 2)

    def speed_up(self, ceiling: float, step: float = 0.05) -> None:
        """Grow the rate back by ``step`` (a share of ``ceiling``) after a success."""
        with self._lock:
            self.rate = min(ceiling, self.rate + ceiling * step)

    def acquire(self, amount: float = 1.0) -> float:
        """Take ``amount`` tokens, sleeping until they are available; returns the time slept."""
        amount = min(amount, self.capacity)
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
                self._last = now
                if self._tokens >= amount:
                    self._tokens -= amount
                    return waited
                need = (amount - self._tokens) / self.rate
            self._sleep(need)
            waited += need


class AdaptiveLimit:
    """Calls in flight that grow while the service keeps up and halve when it throttles (AIMD).

    Starts at ``initial``. While every slot is in use, each ``limit`` successes (one round of
    calls at the current limit) add one slot, up to ``maximum``: a worker finds the concurrency
    its account's quota allows instead of a fixed number. A throttle halves the limit (not below
    one), at most once per ``cooldown`` seconds: the calls already in flight when the service
    started throttling answer with throttles too, and a quota refills by the second, so one cut
    a second converges on it without collapsing to one call under scattered throttles. Thread-safe.
    """

    def __init__(self, initial: int, maximum: int | None = None, cooldown: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = max(1, initial)
        self.maximum = max(self.limit, maximum if maximum is not None else self.limit)
        self.cooldown = cooldown
        self._clock = clock
        self._cut_at = -cooldown
        self._ok = 0
        self._active = 0
        self._saturated = False
        self._cond = threading.Condition()

    def throttled(self) -> None:
        with self._cond:
            now = self._clock()
            if now - self._cut_at >= self.cooldown:
                self.limit = max(1, self.limit // 2)
                self._cut_at = now
            self._ok = 0

    def succeeded(self) -> None:
        with self._cond:
            if not self._saturated:
                return  # demand is below the limit: nothing says more would be served
            self._ok += 1
            if self._ok >= self.limit and self.limit < self.maximum:
                self.limit += 1
                self._ok = 0
                self._saturated = False
                self._cond.notify()

    def __enter__(self) -> AdaptiveLimit:
        with self._cond:
            while self._active >= self.limit:
                self._saturated = True
                self._cond.wait()
            self._active += 1
            if self._active >= self.limit:
                self._saturated = True
        return self

    def __exit__(self, *exc: object) -> None:
        with self._cond:
            self._active -= 1
            self._cond.notify()
