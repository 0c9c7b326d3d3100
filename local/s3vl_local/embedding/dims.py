"""Map a model's native vectors (MiniLM: 384 dimensions) to the size a caller asked for.

- **Larger** (e.g. 384 -> 512, 1024, 1536): zero-padding. Dot products and norms are unchanged,
  so cosine similarity between any two vectors is *exactly* preserved.
- **Smaller** (e.g. 384 -> 256): projection onto a fixed ``target``-dimensional subspace, spanned
  by the orthonormal columns ``Q`` of the QR factorisation of a Gaussian matrix drawn from a
  seeded generator (``numpy.random.default_rng(seed)``; the sign of each column is fixed by
  making ``diag(R)`` positive, so ``Q`` is unique and identical in every process). A random
  orthogonal projection keeps cosine similarities approximately (Johnson-Lindenstrauss: from
  384 to 256 dimensions the typical error is a few hundredths), and it keeps rankings of clearly
  different scores. Vectors are re-normalised afterwards when the caller asked for unit vectors.
"""

from __future__ import annotations

import threading
from functools import lru_cache

import numpy as np

from s3vl_local.embedding.base import FloatMatrix

#: Seed of the projection matrix. Changing it changes every reduced vector: never change it
#: without a new embedding version.
PROJECTION_SEED = 20240611

_lock = threading.Lock()


@lru_cache(maxsize=16)
def _projection_cached(native: int, target: int, seed: int) -> FloatMatrix:
    rng = np.random.default_rng(seed)
    gaussian = rng.standard_normal((native, target))
    q, r = np.linalg.qr(gaussian)
    signs = np.sign(np.diag(r))
    signs[signs == 0] = 1.0
    q = q * signs
    result: FloatMatrix = np.ascontiguousarray(q, dtype=np.float32)
    result.setflags(write=False)
    return result


def projection_matrix(native: int, target: int, seed: int = PROJECTION_SEED) -> FloatMatrix:
    """The ``(native, target)`` matrix with orthonormal columns used to reduce dimensions."""
    if not 0 < target < native:
        raise ValueError(f"projection needs 0 < target < native, got native={native} target={target}")
    with _lock:
        return _projection_cached(native, target, seed)


def fit_dimensions(vectors: FloatMatrix, target: int, seed: int = PROJECTION_SEED) -> FloatMatrix:
    """``vectors`` (n, native) mapped to (n, target): zero-padded if larger, projected if smaller.

    Does not normalise; callers re-normalise after projecting when they want unit vectors.
    """
    if target <= 0:
        raise ValueError(f"dimensions must be positive, got {target}")
    n, native = vectors.shape
    if target == native:
        return vectors
    if target > native:
        padded = np.zeros((n, target), dtype=np.float32)
        padded[:, :native] = vectors
        return padded
    return (vectors @ projection_matrix(native, target, seed)).astype(np.float32, copy=False)
