"""A fast, deterministic embedder from hashed token features (the default for tests).

Features of a text: its lower-cased words (``\\w+``, Unicode-aware) with weight 1 and its word
bigrams with weight 1/2, each term weighted ``1 + ln(tf)``. Every feature is hashed with BLAKE2b
(8 bytes; *not* Python's per-process salted ``hash()``) to a bucket ``h mod dimensions`` and a sign
(top bit), the "signed hashing trick": the expected dot product of two hashed vectors equals the
dot product of their feature vectors, so texts that share words are closer than texts that do
not. The vector is computed directly at the requested size (no projection) and L2-normalised.

It knows nothing of meaning ("car" and "automobile" are unrelated); that is what the MiniLM
embedder is for. A text without any word gets the single feature ``<empty>`` so that its vector
is still a unit vector (cosine is undefined for the zero vector).
"""

from __future__ import annotations

import hashlib
import itertools
import math
import re
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from s3vl_local.embedding.base import Embeddings, LocalEmbedder, l2_normalize

_WORD = re.compile(r"\w+")
#: Token count approximation: words and single punctuation marks, like a sub-word tokenizer
#: would count for plain prose (within ~20 %).
_TOKEN = re.compile(r"\w+|[^\w\s]")
_BIGRAM_WEIGHT = 0.5
_EMPTY_FEATURE = "<empty>"


@lru_cache(maxsize=1 << 17)
def _feature_hash(feature: str) -> int:
    return int.from_bytes(hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest(), "big")


def _features(text: str) -> Counter[str]:
    words = _WORD.findall(text.lower())
    feats: Counter[str] = Counter(words)
    for first, second in itertools.pairwise(words):
        feats[f"{first} {second}"] += 1
    if not feats:
        feats[_EMPTY_FEATURE] = 1
    return feats


class HashedEmbedder(LocalEmbedder):
    """Signed feature hashing of words and word bigrams; no model, microseconds per text."""

    name = "hash"

    def embed(self, texts: Sequence[str], dimensions: int, *, normalize: bool = True) -> Embeddings:
        if dimensions <= 0:
            raise ValueError(f"dimensions must be positive, got {dimensions}")
        # every (text, bucket, signed weight) of the batch, summed in one bincount
        cells: list[int] = []
        weights: list[float] = []
        for row, text in enumerate(texts):
            base = row * dimensions
            for feature, tf in _features(text).items():
                h = _feature_hash(feature)
                weight = (1.0 + math.log(tf)) * (_BIGRAM_WEIGHT if " " in feature else 1.0)
                cells.append(base + h % dimensions)
                weights.append(weight if h >> 63 else -weight)
        sums = np.bincount(np.asarray(cells, dtype=np.int64), weights=np.asarray(weights, dtype=np.float32),
                           minlength=len(texts) * dimensions)
        out = sums.reshape(len(texts), dimensions).astype(np.float32)
        vectors = l2_normalize(out) if normalize else out
        return Embeddings(vectors=vectors, token_counts=self.count_tokens(texts))

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(_TOKEN.findall(text)) for text in texts]
