"""Per-service, per-operation counters: requests, errors (total and by code), and whatever a
handler counts itself (``call.count("vectors", n)``). Read through ``GET /_s3vl/counters``,
zeroed by ``POST /_s3vl/reset``. In memory: they describe this process's run, not the data.
"""

from __future__ import annotations

import threading
from collections import defaultdict


class Counters:
    """Thread-safe nested counters ``service -> operation -> name -> int``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, dict[str, dict[str, int]]] = defaultdict(lambda: defaultdict(dict))

    def add(self, service: str, operation: str, name: str, n: int = 1) -> None:
        with self._lock:
            op = self._values[service][operation]
            op[name] = op.get(name, 0) + n

    def snapshot(self) -> dict[str, dict[str, dict[str, int]]]:
        with self._lock:
            return {s: {o: dict(c) for o, c in ops.items()} for s, ops in self._values.items()}

    def reset(self) -> None:
        with self._lock:
            self._values.clear()
