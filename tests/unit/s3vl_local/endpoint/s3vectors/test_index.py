"""The in-memory vector index: slots, replacement, deletion, exact top-K with key tie-break."""

from __future__ import annotations

import numpy as np

from s3vl_local.endpoint.s3vectors.index import VectorIndex
from s3vl_local.endpoint.s3vectors.store import IndexRow


def make(metric: str = "euclidean", dim: int = 2, capacity: int = 2) -> VectorIndex:
    text = [{"metadataKey": "secret"}]
    row = IndexRow(1, "b", "i", 0.0, "float32", dim, metric, ["secret"], text, None, "ENHANCED", {})
    return VectorIndex(row, capacity=capacity)


def keys(ix: VectorIndex, q: list[float], k: int, flt: dict | None = None) -> list[str]:  # type: ignore[type-arg]
    return [h.key for h in ix.nearest(np.asarray(q, dtype=np.float32), k, ix.filter_mask(flt))]


def test_replace_clears_old_metadata_and_reuses_slots() -> None:
    ix = make()
    ix.put(["a", "b", "c"], np.asarray([[0, 0], [1, 0], [2, 0]], dtype=np.float32), [{"t": "x"}, {"t": "y"}, None])
    assert ix.capacity >= 3
    assert keys(ix, [0, 0], 10, {"t": "x"}) == ["a"]
    ix.put(["a"], np.asarray([[5, 5]], dtype=np.float32), [{"u": 1}])  # replaces vector and metadata
    assert keys(ix, [0, 0], 10, {"t": "x"}) == []
    assert keys(ix, [0, 0], 10, {"u": 1}) == ["a"]
    assert keys(ix, [0, 0], 10) == ["b", "c", "a"]
    slot_b = ix.slots["b"]
    assert ix.delete(["b", "nope"]) == 1
    assert keys(ix, [0, 0], 10, {"t": {"$exists": True}}) == []
    ix.put(["d"], np.asarray([[0.5, 0]], dtype=np.float32), [None])
    assert ix.slots["d"] == slot_b
    assert keys(ix, [0, 0], 2) == ["d", "c"]
    assert len(ix) == 3


def test_non_filterable_keys_are_not_columns_but_are_searchable() -> None:
    ix = make()
    ix.put(["a"], np.asarray([[1, 1]], dtype=np.float32), [{"secret": "hello world", "pub": 1}])
    assert "secret" not in ix.columns
    assert set(ix.text["secret"].score("hello")) == {ix.slots["a"]}
    ix.delete(["a"])
    assert ix.text["secret"].score("hello") == {}


def test_ties_and_subset_path_agree_with_full_scan() -> None:
    rng = np.random.default_rng(0)
    ix = make("cosine", dim=8, capacity=4)
    data = rng.standard_normal((300, 8)).astype(np.float32)
    data[10:20] = data[5]  # ties
    names = [f"k{i:03d}" for i in range(300)]
    ix.put(names, data, [{"g": i % 10} for i in range(300)])
    q = data[5]
    assert keys(ix, q.tolist(), 11)[:11] == ["k005", *[f"k{i:03d}" for i in range(10, 20)]]
    # a selective filter (subset path) gives the same hits as the full scan restricted by hand
    sub = keys(ix, q.tolist(), 7, {"g": 3})
    full = [h.key for h in ix.nearest(q, 300, ix.filter_mask(None)) if int(h.key[1:]) % 10 == 3][:7]
    assert sub == full
