"""The interface every local embedder implements, and the result it returns.

A local embedder turns texts into float32 vectors of a *requested* dimension, in one call, with a
token count per text (what Bedrock reports as ``inputTextTokenCount``). It is pure: no network, no
process-global state that changes results, and the same texts give the same vectors in every
process.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatMatrix = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Embeddings:
    """Vectors for a batch of texts, in input order.

    ``vectors`` has shape ``(len(texts), dimensions)``; ``token_counts[i]`` is the number of model
    tokens in ``texts[i]`` *before* any truncation (what a bill would count).
    """

    vectors: FloatMatrix
    token_counts: list[int]


class LocalEmbedder(ABC):
    """Texts -> vectors, computed in-process."""

    #: Short name used on the command line (``--embedder NAME``) and in logs.
    name: str = ""

    @abstractmethod
    def embed(self, texts: Sequence[str], dimensions: int, *, normalize: bool = True) -> Embeddings:
        """Embed ``texts`` into ``dimensions``-sized vectors.

        With ``normalize`` every vector has unit L2 norm (the all-zero vector of an empty
        feature set excepted, which no embedder here produces). Without it, the embedder's raw
        output is returned, mapped to ``dimensions`` the same way.
        """

    @abstractmethod
    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Model tokens per text, without embedding (cheap; used for input-size validation)."""

    def warm(self) -> None:  # noqa: B027 - optional hook, a no-op unless overridden
        """Load whatever the first ``embed`` call would load (model weights), so it is fast."""


def l2_normalize(vectors: FloatMatrix) -> FloatMatrix:
    """Rows scaled to unit length; all-zero rows stay zero."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    safe = np.where(norms > 0.0, norms, np.float32(1.0)).astype(np.float32)
    return (vectors / safe).astype(np.float32, copy=False)
