"""The S3 Vectors filter language: validation, the reference evaluator, and the vectorised
column evaluator checked against it with hypothesis."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from s3vl_local.endpoint.s3vectors.columns import Column, evaluate
from s3vl_local.endpoint.s3vectors.filters import FilterError, matches, referenced_keys, validate_filter

DOC = {"genre": "drama", "year": 2020, "tags": ["a", "b"], "live": True, "score": 1.5}


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        ({"genre": "drama"}, True),
        ({"genre": "comedy"}, False),
        ({"genre": {"$eq": "drama"}}, True),
        ({"genre": {"$ne": "drama"}}, False),
        ({"genre": {"$ne": "comedy"}}, True),
        ({"year": {"$gt": 2019}}, True),
        ({"year": {"$gt": 2020}}, False),
        ({"year": {"$gte": 2020, "$lt": 2021}}, True),
        ({"year": {"$lte": 2019.5}}, False),
        ({"year": 2020.0}, True),
        ({"tags": "a"}, True),
        ({"tags": {"$eq": "c"}}, False),
        ({"tags": {"$in": ["x", "b"]}}, True),
        ({"tags": {"$nin": ["a"]}}, False),
        ({"tags": {"$ne": "c"}}, True),
        ({"genre": {"$in": ["comedy", "drama"]}}, True),
        ({"genre": {"$nin": ["comedy", "drama"]}}, False),
        ({"missing": {"$exists": False}}, True),
        ({"genre": {"$exists": True}}, True),
        ({"missing": {"$ne": "x"}}, False),
        ({"missing": {"$nin": ["x"]}}, False),
        ({"live": True}, True),
        ({"live": 1}, False),
        ({"year": "2020"}, False),
        ({"genre": {"$gt": 1}}, False),
        ({"$and": [{"genre": "drama"}, {"year": 2020}]}, True),
        ({"$and": [{"genre": "drama"}, {"year": 2021}]}, False),
        ({"$or": [{"genre": "comedy"}, {"year": 2020}]}, True),
        ({"$or": [{"genre": "comedy"}, {"year": 2021}]}, False),
        ({"genre": "drama", "year": 2021}, False),
        ({"$or": [{"$and": [{"live": True}, {"score": {"$gt": 1}}]}, {"genre": "x"}]}, True),
    ],
)
def test_reference_evaluator(flt: dict[str, Any], expected: bool) -> None:
    validate_filter(flt)
    assert matches(flt, DOC) is expected


@pytest.mark.parametrize(
    ("flt", "message"),
    [
        ([], "Invalid filter: the filter must be a JSON object"),
        ({}, "Invalid filter: the filter must not be empty"),
        ({"$and": []}, "Invalid filter: $and requires a non-empty array of filters"),
        ({"$or": {"a": 1}}, "Invalid filter: $or requires a non-empty array of filters"),
        ({"$not": [{"a": 1}]}, "Invalid filter: unsupported operator $not"),
        ({"a": {"$regex": "x"}}, "Invalid filter: unsupported operator $regex for metadata key 'a'"),
        ({"a": {"$gt": "x"}}, "Invalid filter: $gt requires a number"),
        ({"a": {"$lte": True}}, "Invalid filter: $lte requires a number"),
        ({"a": {"$in": []}}, "Invalid filter: $in requires a non-empty array of primitives"),
        ({"a": {"$nin": [{"x": 1}]}}, "Invalid filter: $nin requires a non-empty array of primitives"),
        ({"a": {"$exists": 1}}, "Invalid filter: $exists requires a boolean"),
        ({"a": {"$eq": [1]}}, "Invalid filter: $eq requires a string, number or boolean"),
        ({"a": {}}, "Invalid filter: invalid condition for metadata key 'a'"),
        ({"a": [1, 2]}, "Invalid filter: invalid condition for metadata key 'a'"),
        ({"a": None}, "Invalid filter: invalid condition for metadata key 'a'"),
        ({"$and": [{}]}, "Invalid filter: each element of $and must be a non-empty object"),
        ({"secret": "x"}, "Invalid filter: metadata key 'secret' is not filterable"),
        (
            {"$or": [{"ok": 1}, {"secret": {"$exists": True}}]},
            "Invalid filter: metadata key 'secret' is not filterable",
        ),
    ],
)
def test_invalid_filters(flt: Any, message: str) -> None:
    with pytest.raises(FilterError) as exc:
        validate_filter(flt, non_filterable={"secret"})
    assert str(exc.value) == message


def test_referenced_keys() -> None:
    assert referenced_keys({"a": 1, "$or": [{"b": 2}, {"$and": [{"c": 3}]}]}) == {"a", "b", "c"}


# -- differential: vectorised columns vs the reference evaluator ------------------------------

KEYS = ["a", "b", "c"]
scalars = st.one_of(
    st.sampled_from(["x", "y", "z"]),
    st.integers(-3, 3),
    st.sampled_from([0.5, -1.5, 2.0]),
    st.booleans(),
)
values = st.one_of(scalars, st.lists(scalars, max_size=3))
docs = st.dictionaries(st.sampled_from(KEYS), values, max_size=3)
numbers = st.one_of(st.integers(-3, 3), st.sampled_from([0.5, -1.5, 2.0]))


def conditions() -> st.SearchStrategy[Any]:
    op = st.one_of(
        st.tuples(st.sampled_from(["$eq", "$ne"]), scalars),
        st.tuples(st.sampled_from(["$gt", "$gte", "$lt", "$lte"]), numbers),
        st.tuples(st.sampled_from(["$in", "$nin"]), st.lists(scalars, min_size=1, max_size=3)),
        st.tuples(st.just("$exists"), st.booleans()),
    )
    return st.one_of(scalars, st.dictionaries(st.just("k"), op, min_size=1).map(lambda d: dict([d["k"]])))


leaf = st.dictionaries(st.sampled_from([*KEYS, "nokey"]), conditions(), min_size=1, max_size=2)
filters = st.recursive(
    leaf,
    lambda inner: st.one_of(
        st.builds(lambda xs: {"$and": xs}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda xs: {"$or": xs}, st.lists(inner, min_size=1, max_size=3)),
    ),
    max_leaves=6,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(docs, min_size=1, max_size=25), flt=filters)
def test_columns_match_reference(rows: list[dict[str, Any]], flt: dict[str, Any]) -> None:
    validate_filter(flt)
    cap = len(rows) + 3  # spare slots never set: they must match like an empty document
    cols: dict[str, Column] = {}
    for slot, doc in enumerate(rows):
        for key, value in doc.items():
            cols.setdefault(key, Column(cap)).set(slot, value)
    mask = evaluate(flt, cols, cap)
    expected = [matches(flt, doc) for doc in rows] + [matches(flt, {})] * 3
    assert mask.tolist() == expected


def test_column_clear_and_grow() -> None:
    col = Column(2)
    col.set(0, "x")
    col.set(1, ["x", 3])
    col.grow(4)
    col.set(3, 3)
    assert evaluate({"k": "x"}, {"k": col}, 4).tolist() == [True, True, False, False]
    assert evaluate({"k": {"$gte": 3}}, {"k": col}, 4).tolist() == [False, True, False, True]
    col.clear(1)
    assert evaluate({"k": {"$exists": True}}, {"k": col}, 4).tolist() == [True, False, False, True]
    assert np.all(evaluate({"k": {"$exists": False}}, {}, 4))
