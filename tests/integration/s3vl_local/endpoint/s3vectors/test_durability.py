"""Restart persistence (clean stop and kill -9), fault injection, counters and the admin routes."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from botocore.exceptions import ClientError

from s3vl_local.endpoint import process
from s3vl_local.endpoint.admin import AdminClient, AdminError
from tests.support.endpoint import EndpointHandle, running_endpoint


def seed(s3v: Any, n: int = 300) -> tuple[str, np.ndarray]:
    s3v.create_vector_bucket(vectorBucketName="dur", tags={"t": "1"})
    s3v.put_vector_bucket_policy(vectorBucketName="dur", policy='{"Statement": []}')
    arn = s3v.create_index(
        vectorBucketName="dur",
        indexName="idx",
        dataType="float32",
        dimension=8,
        distanceMetric="cosine",
        metadataConfiguration={
            "nonFilterableMetadataKeys": ["body"],
            "textSearchConfigurations": [{"metadataKey": "body"}],
        },
    )["indexArn"]
    data = np.random.default_rng(5).standard_normal((n, 8)).astype(np.float32)
    s3v.put_vectors(
        indexArn=arn,
        vectors=[
            {
                "key": f"k{i:04d}",
                "data": {"float32": data[i].tolist()},
                "metadata": {"i": i, "body": f"word{i % 7} text"},
            }
            for i in range(n)
        ],
    )
    s3v.delete_vectors(indexArn=arn, keys=["k0000", "k0001"])
    return arn, data


def assert_state(s3v: Any, arn: str, data: np.ndarray) -> None:
    assert s3v.get_vector_bucket_policy(vectorBucketName="dur")["policy"] == '{"Statement": []}'
    assert s3v.list_tags_for_resource(resourceArn=arn.split("/index/")[0])["tags"] == {"t": "1"}
    index = s3v.get_index(indexArn=arn)["index"]
    assert index["metadataConfiguration"]["textSearchConfigurations"][0]["metadataKey"] == "body"
    keys = [v["key"] for p in s3v.get_paginator("list_vectors").paginate(indexArn=arn) for v in p["vectors"]]
    assert [k for k in keys if k.startswith("k")] == [f"k{i:04d}" for i in range(2, len(data))]
    got = s3v.get_vectors(indexArn=arn, keys=["k0005"], returnData=True, returnMetadata=True)["vectors"][0]
    assert got["data"]["float32"] == data[5].tolist()
    assert got["metadata"] == {"i": 5, "body": "word5 text"}
    res = s3v.query_vectors(indexArn=arn, topK=1, queryVector={"float32": data[9].tolist()}, filter={"i": {"$gte": 9}})
    assert res["vectors"][0]["key"] == "k0009"
    text = s3v.query_vectors(indexArn=arn, topK=100, queryTexts=[{"text": "word3", "metadataKey": "body"}])
    assert len(text["vectors"]) == len([i for i in range(2, len(data)) if i % 7 == 3])


def test_data_survives_clean_restart(tmp_path: Path) -> None:
    with running_endpoint(tmp_path) as ep:
        s3v = ep.client()
        arn, data = seed(s3v)
        ep.stop()
        ep.start()
        assert_state(ep.client(), arn, data)


def test_data_survives_kill_9_without_torn_writes(tmp_path: Path) -> None:
    with running_endpoint(tmp_path) as ep:
        s3v = ep.client()
        arn, data = seed(s3v)
        # Kill -9 while a writer streams 500-vector batches: each batch is all-or-nothing.
        writer = ep.client(retries=1)
        acked: list[int] = []
        batch_keys = [[f"w{b:03d}-{j:03d}" for j in range(500)] for b in range(200)]

        def write() -> None:
            vec = {"float32": [1.0] * 8}
            for b, keys in enumerate(batch_keys):
                try:
                    writer.put_vectors(indexArn=arn, vectors=[{"key": k, "data": vec} for k in keys])
                except Exception:
                    return
                acked.append(b)

        thread = threading.Thread(target=write)
        thread.start()
        deadline = time.monotonic() + 30
        while len(acked) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        ep.kill9()
        thread.join()
        assert 3 <= len(acked) < len(batch_keys)  # killed mid-stream
        ep.start()
        s3v = ep.client()
        keys = {v["key"] for p in s3v.get_paginator("list_vectors").paginate(indexArn=arn) for v in p["vectors"]}
        for b, batch in enumerate(batch_keys):
            present = sum(k in keys for k in batch)
            assert present in (0, 500), f"batch {b} torn: {present} of 500 keys"
            if b in acked:
                assert present == 500, f"acknowledged batch {b} lost"
        assert_state(s3v, arn, data)


def test_fault_injection_and_counters(endpoint: EndpointHandle) -> None:
    admin = endpoint.admin
    s3v = endpoint.client(retries=1)
    s3v.create_vector_bucket(vectorBucketName="faults-bucket")
    try:
        admin.set_faults(
            {"rules": [{"service": "s3vectors", "operation": "GetVectorBucket", "throttle_fraction": 1.0}]}
        )
        with pytest.raises(ClientError) as exc:
            s3v.get_vector_bucket(vectorBucketName="faults-bucket")
        assert exc.value.response["Error"]["Code"] == "TooManyRequestsException"
        assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429
        s3v.list_vector_buckets()  # other operations unaffected
        admin.set_faults(unavailable_fraction=1.0)
        with pytest.raises(ClientError) as exc:
            s3v.list_vector_buckets()
        assert exc.value.response["Error"]["Code"] == "ServiceUnavailableException"
        assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
        assert admin.health()["status"] == "ok"  # admin routes are never faulted
        admin.set_faults(latency_ms=150)
        t0 = time.perf_counter()
        s3v.list_vector_buckets()
        assert time.perf_counter() - t0 >= 0.15
        admin.set_faults({"seed": 3, "throttle_fraction": 0.5})
        outcomes = []
        for _ in range(60):
            try:
                s3v.list_vector_buckets()
                outcomes.append("ok")
            except ClientError as e:
                outcomes.append(e.response["Error"]["Code"])
        assert 10 < outcomes.count("TooManyRequestsException") < 50
        # boto3's own retries absorb transient throttling
        retrying = endpoint.client(retries=10)
        for _ in range(5):
            retrying.list_vector_buckets()
    finally:
        admin.clear_faults()
    assert admin.faults() == {"seed": None, "rules": []}

    admin.reset()
    arn = s3v.create_index(
        vectorBucketName="faults-bucket", indexName="idx", dataType="float32", dimension=2, distanceMetric="cosine"
    )["indexArn"]
    s3v.put_vectors(indexArn=arn, vectors=[{"key": f"k{i}", "data": {"float32": [1.0, float(i)]}} for i in range(7)])
    s3v.query_vectors(indexArn=arn, topK=3, queryVector={"float32": [1.0, 1.0]})
    with pytest.raises(ClientError):
        s3v.get_index(indexArn=arn + "x")
    counters = admin.counters()["s3vectors"]
    assert counters["PutVectors"] == {"requests": 1, "vectors": 7}
    assert counters["QueryVectors"] == {"requests": 1, "vectors": 3}
    assert counters["GetIndex"] == {"requests": 1, "errors": 1, "error:NotFoundException": 1}
    admin.reset()
    assert admin.counters() == {}


def test_admin_client_and_process_helpers(tmp_path: Path) -> None:
    with running_endpoint(tmp_path, faults={"throttle_fraction": 1.0}) as ep:
        assert process.is_healthy(ep.url)
        assert ep.admin.faults()["rules"][0]["throttle_fraction"] == 1.0
        with pytest.raises(AdminError, match="HTTP 400"):
            ep.admin.set_faults({"bogus": True})
        health = ep.admin.health()
        assert health["pid"] == ep.pid
        assert "s3vectors" in health["services"]
        ep.stop()
        assert not process.is_healthy(ep.url)
        assert not process.pid_alive(ep.pid)
        assert not AdminClient(ep.url).is_healthy()
        ep.start()  # so the context manager's stop has something to stop


def test_start_reports_a_port_in_use(tmp_path: Path) -> None:
    import socket

    from s3vl_local.errors import LocalStackError

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(LocalStackError, match="exited with status"):
            process.start("127.0.0.1", port, tmp_path / "data", tmp_path / "log", timeout=15)
