"""The walkthrough example's data (sync/examples/walkthrough.py): what the published SQL relies on."""

from __future__ import annotations

import math

from s3vl_local.examples import walkthrough


def test_fifty_five_dimension_vectors_with_the_sample_categories() -> None:
    assert [k for k, _, _ in walkthrough.VECTORS] == [f"vec_{i:03d}" for i in range(1, 51)]
    assert all(len(v) == 5 for _, v, _ in walkthrough.VECTORS)
    assert {c for _, _, c in walkthrough.VECTORS} == {"example", "demo", "sample", "test", "identical"}


def test_the_identical_units() -> None:
    identical = [(k, v) for k, v, c in walkthrough.VECTORS if c == "identical"]
    assert [k for k, _ in identical] == ["vec_048", "vec_049", "vec_050"]
    assert {v for _, v in identical} == {(-0.116703, 0.325043, 0.578032, 0.739321, -0.003246)}


def test_the_walkthrough_query_vectors_are_sample_vectors() -> None:
    values = dict((k, v) for k, v, _ in walkthrough.VECTORS)
    assert values["vec_003"] == (-0.392024, 0.229378, 0.582031, 0.382919, -0.555263)  # the join query
    first = (0.23, -0.41, 0.88, 0.0, 0.03)  # the first query: vec_001 rounded

    def cos(a: tuple[float, ...], b: tuple[float, ...]) -> float:
        return sum(x * y for x, y in zip(a, b, strict=True)) / math.hypot(*a) / math.hypot(*b)

    assert max(values, key=lambda k: cos(values[k], first)) == "vec_001"


def test_records_carry_the_sample_metadata_and_s3vl_id() -> None:
    records = walkthrough.vector_records()
    assert records[0] == {"key": "vec_001", "data": {"float32": list(walkthrough.VECTORS[0][1])},
                          "metadata": {"category": "example", "id": "1", "s3vl_id": "1"}}
    assert len(records) == 50


def test_products_are_deterministic_and_make_the_join_return_rows() -> None:
    products = walkthrough.products()
    assert products == walkthrough.products()
    assert [p.vector_key for p in products] == [k for k, _, _ in walkthrough.VECTORS]
    assert [p.category for p in products] == [c for _, _, c in walkthrough.VECTORS]
    by_key = {p.vector_key: p for p in products}
    assert by_key["vec_003"].in_stock
    assert by_key["vec_003"].price < 500
    assert any(not p.in_stock for p in products)
    assert any(p.price >= 500 for p in products)


def test_export_lines() -> None:
    arn = "arn:aws:s3vectors:us-west-2:000000000000:bucket/b/index/test-index-5d"
    result = walkthrough.WalkthroughResult(arn, walkthrough.lambda_arn_for(arn), 50, 50)
    assert result.export_lines() == (
        f"export S3VL_S3_INDEX_ARN={arn}\n"
        "export S3VL_LAMBDA_FUNCTION_ARN=arn:aws:lambda:us-west-2:000000000000:function:s3vl-query"
    )
