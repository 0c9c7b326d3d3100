"""Fault injection for the local endpoint: added latency and a fraction of 429 / 503 answers.

Off by default. Set at start (``--faults JSON``) or at run time (``PUT /_s3vl/faults``). The
configuration is a list of rules; the first rule whose ``service`` and ``operation`` match a
request decides for it (``null``/absent matches any)::

    {
      "seed": 7,                                   # optional: reproducible draws
      "rules": [
        {"service": "s3vectors", "operation": "PutVectors",
         "latency_ms": 50, "throttle_fraction": 0.2, "unavailable_fraction": 0.1},
        {"service": "bedrock", "throttle_fraction": 0.5}
      ]
    }

A top-level ``latency_ms`` / ``throttle_fraction`` / ``unavailable_fraction`` is shorthand for a
last catch-all rule. For each request one uniform draw ``u`` picks: ``u < throttle_fraction`` ->
throttled (the service's 429 error), else ``u < throttle_fraction + unavailable_fraction`` ->
unavailable (its 503 error), else served normally. Latency is added before either. Admin routes
(``/_s3vl/...``) are never faulted.
"""

from __future__ import annotations

import random
import threading
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

_RULE_FIELDS = {"service", "operation", "latency_ms", "throttle_fraction", "unavailable_fraction"}


@dataclass(frozen=True)
class FaultRule:
    """Faults for requests matching ``service`` / ``operation`` (``None`` = any)."""

    service: str | None = None
    operation: str | None = None
    latency_ms: float = 0.0
    throttle_fraction: float = 0.0
    unavailable_fraction: float = 0.0

    def __post_init__(self) -> None:
        if self.latency_ms < 0:
            raise ValueError("latency_ms must be >= 0")
        for name in ("throttle_fraction", "unavailable_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        if self.throttle_fraction + self.unavailable_fraction > 1.0:
            raise ValueError("throttle_fraction + unavailable_fraction must be <= 1")

    def matches(self, service: str, operation: str) -> bool:
        return (self.service in (None, service)) and (self.operation in (None, operation))

    @classmethod
    def from_json(cls, obj: Any) -> FaultRule:
        if not isinstance(obj, dict):
            raise ValueError("a fault rule must be a JSON object")
        unknown = set(obj) - _RULE_FIELDS
        if unknown:
            raise ValueError(f"unknown fault rule fields: {sorted(unknown)}")
        for name in ("service", "operation"):
            if obj.get(name) is not None and not isinstance(obj[name], str):
                raise ValueError(f"{name} must be a string or null")
        numbers: dict[str, float] = {}
        for name in ("latency_ms", "throttle_fraction", "unavailable_fraction"):
            value = obj.get(name, 0.0)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{name} must be a number")
            numbers[name] = float(value)
        return cls(service=obj.get("service"), operation=obj.get("operation"), **numbers)


@dataclass(frozen=True)
class FaultConfig:
    """The whole fault configuration: ordered rules and an optional seed."""

    rules: tuple[FaultRule, ...] = ()
    seed: int | None = None

    @classmethod
    def from_json(cls, obj: Any) -> FaultConfig:
        if obj is None:
            return cls()
        if not isinstance(obj, dict):
            raise ValueError("the fault configuration must be a JSON object")
        unknown = set(obj) - {"rules", "seed", "latency_ms", "throttle_fraction", "unavailable_fraction"}
        if unknown:
            raise ValueError(f"unknown fault configuration fields: {sorted(unknown)}")
        raw_rules = obj.get("rules", [])
        if not isinstance(raw_rules, list):
            raise ValueError("rules must be a list")
        rules = [FaultRule.from_json(r) for r in raw_rules]
        shorthand = {k: obj[k] for k in ("latency_ms", "throttle_fraction", "unavailable_fraction") if k in obj}
        if shorthand:
            rules.append(FaultRule.from_json(shorthand))
        seed = obj.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError("seed must be an integer")
        return cls(rules=tuple(rules), seed=seed)

    def to_json(self) -> dict[str, Any]:
        return {"seed": self.seed, "rules": [asdict(r) for r in self.rules]}


@dataclass(frozen=True)
class FaultDecision:
    latency_s: float = 0.0
    error: Literal["throttle", "unavailable"] | None = None


@dataclass
class Faults:
    """Thread-safe holder of the current configuration; draws one decision per request."""

    config: FaultConfig = field(default_factory=FaultConfig)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(self.config.seed)  # noqa: S311 - fault draws, not cryptography

    def set(self, config: FaultConfig) -> None:
        with self._lock:
            self.config = config
            self._rng = random.Random(config.seed)  # noqa: S311

    def get(self) -> FaultConfig:
        with self._lock:
            return self.config

    def decide(self, service: str, operation: str) -> FaultDecision:
        with self._lock:
            rule = next((r for r in self.config.rules if r.matches(service, operation)), None)
            if rule is None:
                return FaultDecision()
            draw = self._rng.random()
        error: Literal["throttle", "unavailable"] | None = None
        if draw < rule.throttle_fraction:
            error = "throttle"
        elif draw < rule.throttle_fraction + rule.unavailable_fraction:
            error = "unavailable"
        return FaultDecision(latency_s=rule.latency_ms / 1000.0, error=error)
