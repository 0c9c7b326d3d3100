"""Fast bodies against the local S3 Vectors endpoint over real HTTP: what is stored is what was sent,
and the endpoint's own validation still sees every field (its answers equal a stock client's)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from botocore.exceptions import ClientError

from sync.aws import clients
from tests.support.endpoint import REGION, EndpointHandle
from tests.support.syncenv import make_index


def _stock(endpoint: EndpointHandle) -> Any:
    return endpoint.client("s3vectors")


def _fast(endpoint: EndpointHandle) -> Any:
    return clients.client("s3vectors", REGION, endpoint.url)


def test_vectors_come_back_bit_for_bit(endpoint: EndpointHandle, aws_env: None) -> None:
    arn = make_index(endpoint, 1024)
    data = np.random.default_rng(3).standard_normal((300, 1024)).astype(np.float32)
    data[0, :3] = [1e-45, -0.0, 3.4028235e38]
    data[1, :2] = [7.038530691851209e-26, -7.038530691851209e-26]  # the double-rounding values
    fast = _fast(endpoint)
    fast.put_vectors(indexArn=arn, vectors=[{"key": f"k{i}", "data": {"float32": data[i]},
                                             "metadata": {"n": i, "t": "é"}} for i in range(300)])
    stock = _stock(endpoint)
    by_key = {v["key"]: v for start in range(0, 300, 100) for v in stock.get_vectors(
        indexArn=arn, keys=[f"k{i}" for i in range(start, start + 100)], returnData=True,
        returnMetadata=True)["vectors"]}
    for i in range(300):
        stored = np.asarray(by_key[f"k{i}"]["data"]["float32"], dtype=np.float32)
        assert np.array_equal(stored.view(np.uint32), data[i].view(np.uint32)), i
        assert by_key[f"k{i}"]["metadata"] == {"n": i, "t": "é"}
    fast_got = fast.get_vectors(indexArn=arn, keys=["k0", "k1"], returnData=True, returnMetadata=True)
    stock_got = _stock(endpoint).get_vectors(indexArn=arn, keys=["k0", "k1"], returnData=True, returnMetadata=True)
    for resp in (fast_got, stock_got):
        resp.pop("ResponseMetadata")
    assert repr(fast_got) == repr(stock_got)


@pytest.mark.parametrize(("vector", "code"), [
    ({"key": "k", "data": {"float32": np.zeros(8, dtype=np.float32)}}, "ValidationException"),  # wrong dimension
    ({"key": "k", "data": {"float32": np.ones(4, dtype=np.float32)}, "metadata": {"m": "x" * 50_000}},
     "ValidationException"),                                                                  # metadata too large
    ({"key": "k", "data": {"float32": np.zeros(4, dtype=np.float32)}}, "ValidationException"),  # zero (cosine)
])
def test_the_endpoint_refuses_what_it_refuses_from_a_stock_client(endpoint: EndpointHandle, aws_env: None,
                                                                 vector: dict[str, Any], code: str) -> None:
    arn = make_index(endpoint, 4)
    plain = {**vector, "data": {"float32": vector["data"]["float32"].tolist()}}
    with pytest.raises(ClientError) as stock:
        _stock(endpoint).put_vectors(indexArn=arn, vectors=[plain])
    with pytest.raises(ClientError) as fast:
        _fast(endpoint).put_vectors(indexArn=arn, vectors=[vector])
    assert fast.value.response["Error"] == stock.value.response["Error"]
    assert fast.value.response["Error"]["Code"] == code
