"""Full-text search for ``queryTexts``: a tokenizer, BM25 and Reciprocal Rank Fusion (pure).

AWS documents that full-text search ranks by BM25 and hybrid search fuses the vector and text
rankings with RRF, but not the constants or analyzers. Local choices, documented here:

* Analyzer: Unicode word tokens (``\\w+``), lower-cased; the per-key ``language`` is accepted and
  stored but no stemming or stop words are applied (the "standard analyzer" for every language).
* BM25 with ``k1 = 1.2``, ``b = 0.75``, idf ``ln(1 + (N - n + 0.5) / (n + 0.5))`` over the
  vectors that have the key (N) and contain the term (n).
* A metadata value that is an array of strings is indexed as the strings joined by spaces.
* RRF score ``sum(1 / (60 + rank))`` over the vector ranking and each text ranking (rank from 1);
  each ranking contributes its best ``topK`` candidates.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

K1 = 1.2
B = 0.75
RRF_K = 60

_TOKEN = re.compile(r"\w+", re.UNICODE)


def tokenize(text: str) -> list[str]:
    return [t.lower() for t in _TOKEN.findall(text)]


def text_of(value: Any) -> str | None:
    """The searchable text of a metadata value (string or array of strings), else None."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return " ".join(value)
    return None


class TextIndex:
    """An inverted index for one searchable metadata key: slot -> term counts."""

    def __init__(self) -> None:
        self.postings: dict[str, dict[int, int]] = {}
        self.lengths: dict[int, int] = {}
        self.total_length = 0

    def remove(self, slot: int) -> None:
        length = self.lengths.pop(slot, None)
        if length is None:
            return
        self.total_length -= length
        for term in list(self.postings):
            docs = self.postings[term]
            if docs.pop(slot, None) is not None and not docs:
                del self.postings[term]

    def add(self, slot: int, text: str) -> None:
        self.remove(slot)
        tokens = tokenize(text)
        self.lengths[slot] = len(tokens)
        self.total_length += len(tokens)
        for term, tf in Counter(tokens).items():
            self.postings.setdefault(term, {})[slot] = tf

    def score(self, query: str, allowed: Any = None) -> dict[int, float]:
        """BM25 score per slot with a positive score; ``allowed(slot) -> bool`` filters."""
        n_docs = len(self.lengths)
        if n_docs == 0:
            return {}
        avg = self.total_length / n_docs or 1.0
        scores: dict[int, float] = {}
        for term in set(tokenize(query)):
            docs = self.postings.get(term)
            if not docs:
                continue
            idf = math.log(1.0 + (n_docs - len(docs) + 0.5) / (len(docs) + 0.5))
            for slot, tf in docs.items():
                if allowed is not None and not allowed(slot):
                    continue
                norm = tf + K1 * (1.0 - B + B * self.lengths[slot] / avg)
                scores[slot] = scores.get(slot, 0.0) + idf * tf * (K1 + 1.0) / norm
        return scores


def rrf(rankings: Iterable[Sequence[int]], k: int = RRF_K) -> dict[int, float]:
    """Reciprocal Rank Fusion of several rankings (best first)."""
    fused: dict[int, float] = {}
    for ranking in rankings:
        for rank, slot in enumerate(ranking, start=1):
            fused[slot] = fused.get(slot, 0.0) + 1.0 / (k + rank)
    return fused
