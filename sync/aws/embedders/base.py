"""The interface every embedder implements, and its pure batching helper.

An embedder returns one result per input text, in order: a vector (a 1-D float32 numpy array,
what S3 Vectors stores), or the :class:`~sync.errors.RowError` that text caused (too long,
refused by the model), so that one bad text fails its own row only. Transient trouble
(throttling, 5xx that outlast the retries) raises :class:`~sync.errors.TransientAwsError` for
the whole call instead.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from sync.aws.retry import RetryPolicy
from sync.errors import Abandoned, RowError


@dataclass
class Embedded:
    """Per-text results of one :meth:`Embedder.embed` call, plus what it cost."""

    vectors: list[np.ndarray | RowError]
    calls: int = 0
    texts: int = 0
    seconds: float = 0.0
    errors: dict[str, int] = field(default_factory=dict)


def batch_indices(sizes: Sequence[int], max_items: int, max_total: int | None = None) -> list[tuple[int, int]]:
    """Split texts into consecutive [start, end) ranges of at most ``max_items`` texts and, when
    given, ``max_total`` in total of their ``sizes`` (characters, tokens); a text larger than
    that gets a range of its own."""
    if max_items < 1:
        raise ValueError("max_items must be at least 1")
    ranges: list[tuple[int, int]] = []
    start = 0
    total = 0
    for i, size in enumerate(sizes):
        full = i - start >= max_items or (max_total is not None and i > start and total + size > max_total)
        if full:
            ranges.append((start, i))
            start = i
            total = 0
        total += size
    if start < len(sizes):
        ranges.append((start, len(sizes)))
    return ranges


def check_stop(stop: threading.Event | None) -> None:
    """Raise :class:`Abandoned` once ``stop`` is set (between calls: a call in flight finishes)."""
    if stop is not None and stop.is_set():
        raise Abandoned()


class Embedder(ABC):
    """Texts -> vectors for one model and dimension."""

    model: str
    dimensions: int
    #: Texts per API call (Titan and Nova 1, Cohere 96) and characters accepted per text.
    max_batch: int = 1
    max_chars: int = 50_000

    @abstractmethod
    def embed(self, texts: Sequence[str], *, policy: RetryPolicy | None = None,
              stop: threading.Event | None = None) -> Embedded:
        """One result per text, in order (vector or RowError); ``policy`` overrides the retries;
        once ``stop`` is set, no further call is made and :class:`~sync.errors.Abandoned` is raised."""

    def reachable(self) -> bool:
        """Does the model answer now? One short text, briefly retried; any answer counts."""
        from sync.errors import S3vlError, TransientAwsError

        try:
            self.embed(["s3vl"], policy=RetryPolicy(attempts=2, max_seconds=5.0))
        except TransientAwsError:
            return False
        except S3vlError:
            return True
        return True
