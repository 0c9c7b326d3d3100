"""A sync definition as the worker uses it: one row of ``s3vl.syncs`` with its index's ARN.

Definitions are declared and validated in SQL (``s3vl.create_sync``); the worker only reads them.
"""

from __future__ import annotations

from pydantic import BaseModel


class SyncDef(BaseModel):
    """One row of ``s3vl.syncs`` with its index's ARN, as the worker uses it."""

    name: str
    source: str
    key_columns: list[str]
    index_name: str
    index_arn: str
    text_expression: str
    metadata_columns: list[str]
    embedding_model: str
    dimensions: int
    normalize_vectors: bool = True
    chunk_size: int | None = None
    chunk_overlap: int = 0
    store_text: bool = False
    embedding_version: str
    max_attempts: int = 5

    @property
    def chunked(self) -> bool:
        return self.chunk_size is not None
