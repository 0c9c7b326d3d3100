"""Pure helpers of the sync pipeline: chunking, hashing, keys, batching, metadata limits."""

from __future__ import annotations

import hashlib
import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sync.aws.embedders.base import batch_indices
from sync.aws.s3vectors import batched
from sync.datapath.contract import (
    MAX_FILTERABLE_METADATA_BYTES,
    check_metadata,
    chunk_text,
    content_hash,
    metadata_hash,
    vector_keys,
    vector_metadata,
)
from sync.errors import RowError


def test_content_hash_is_truncated_sha256_of_utf8() -> None:
    text = "Trail shoes — grip"
    assert content_hash(text) == hashlib.sha256(text.encode()).hexdigest()[:32]
    assert len(content_hash("")) == 32


def test_metadata_hash_ignores_key_order_and_sees_store_text() -> None:
    assert metadata_hash({"a": 1, "b": 2}, False) == metadata_hash({"b": 2, "a": 1}, False)
    assert metadata_hash({"a": 1}, False) != metadata_hash({"a": 1}, True)
    assert metadata_hash({"a": 1}, False) != metadata_hash({"a": 2}, False)


@pytest.mark.parametrize(
    ("key", "count", "chunked", "expected"),
    [("7", 1, False, ["7"]), ("7", 0, False, []), ("a/b", 3, True, ["a/b#0", "a/b#1", "a/b#2"]), ("x", 0, True, [])],
)
def test_vector_keys(key: str, count: int, chunked: bool, expected: list[str]) -> None:
    assert vector_keys(key, count, chunked) == expected


def test_chunk_text_without_chunking_and_blank() -> None:
    assert chunk_text("hello world", None) == ["hello world"]
    assert chunk_text("   ", None) == []
    assert chunk_text("short", 100, 10) == ["short"]


def test_chunk_text_cuts_at_whitespace_with_overlap() -> None:
    text = " ".join(f"word{i}" for i in range(100))
    chunks = chunk_text(text, 100, 20)
    assert len(chunks) > 1
    assert all(len(c) <= 100 for c in chunks)
    assert all(not c.startswith(" ") and not c.endswith(" ") for c in chunks)
    # every word survives, and neighbours share some text (the overlap)
    assert set(text.split()) <= set(" ".join(chunks).split())
    assert any(set(a.split()) & set(b.split()) for a, b in itertools.pairwise(chunks))


def test_chunk_text_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="invalid chunking"):
        chunk_text("x" * 300, 100, 100)


@given(st.text(min_size=1, max_size=2000), st.integers(100, 400), st.integers(0, 49))
def test_chunk_text_properties(text: str, size: int, overlap: int) -> None:
    chunks = chunk_text(text, size, overlap)
    assert all(0 < len(c) <= size for c in chunks)
    if text.strip():
        assert chunks
        # no character of the text is lost: the chunks cover it in order
        assert "".join(text.split())[:10] == "".join(chunks[0].split())[:10]
    else:
        assert chunks == []


def test_batched() -> None:
    assert list(batched(range(7), 3)) == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(batched([], 3)) == []
    with pytest.raises(ValueError, match="at least 1"):
        list(batched([1], 0))


@pytest.mark.parametrize(
    ("lengths", "max_items", "max_chars", "expected"),
    [
        ([], 96, None, []),
        ([1] * 5, 2, None, [(0, 2), (2, 4), (4, 5)]),
        ([10, 10, 10], 96, 25, [(0, 2), (2, 3)]),
        ([50, 1], 96, 25, [(0, 1), (1, 2)]),
        ([1] * 200, 96, None, [(0, 96), (96, 192), (192, 200)]),
    ],
)
def test_batch_indices(lengths: list[int], max_items: int, max_chars: int | None,
                       expected: list[tuple[int, int]]) -> None:
    assert batch_indices(lengths, max_items, max_chars) == expected


def test_vector_metadata_adds_reserved_keys() -> None:
    md = vector_metadata(key="7", metadata={"category": "shoes"}, embedding_version="ev1", hash_="h", chunk=2,
                         text="t")
    assert md == {"category": "shoes", "s3vl_id": "7", "s3vl_ev": "ev1", "s3vl_hash": "h", "s3vl_chunk": 2,
                  "s3vl_text": "t"}
    assert "s3vl_text" not in vector_metadata(key="7", metadata={}, embedding_version="e", hash_="h", chunk=0,
                                              text=None)


def test_check_metadata_limits() -> None:
    check_metadata({"a": "x" * 100, "s3vl_text": "y" * 30_000})
    with pytest.raises(RowError, match="filterable metadata is"):
        check_metadata({"a": "x" * (MAX_FILTERABLE_METADATA_BYTES + 1)})
    with pytest.raises(RowError, match="metadata is"):
        check_metadata({"s3vl_text": "x" * 50_000})
    with pytest.raises(RowError, match="is an object"):
        check_metadata({"a": {"b": 1}})
    with pytest.raises(RowError, match="keys"):
        check_metadata({f"k{i}": i for i in range(51)})
