"""Local Bedrock batch inference (``bedrock`` control plane) and the local S3 it reads and writes,
through the unmodified boto3 ``bedrock``, ``bedrock-runtime`` and ``s3`` clients."""

from __future__ import annotations

import json
import time
import urllib.request
import uuid
from typing import Any

import numpy as np
import pytest
from botocore.exceptions import ClientError

from tests.support.endpoint import EndpointHandle

ROLE = "arn:aws:iam::000000000000:role/s3vl-batch"
TITAN = "amazon.titan-embed-text-v2:0"
COHERE_V4 = "cohere.embed-v4:0"


@pytest.fixture
def bucket(endpoint: EndpointHandle) -> str:
    name = "batch-" + uuid.uuid4().hex[:10]
    endpoint.client("s3").create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    return name


def put_records(endpoint: EndpointHandle, bucket: str, key: str, records: list[dict[str, Any]]) -> None:
    body = "\n".join(json.dumps(r) for r in records).encode()
    endpoint.client("s3").put_object(Bucket=bucket, Key=key, Body=body)


def create(endpoint: EndpointHandle, bucket: str, model: str = TITAN, **extra: Any) -> str:
    args = {"jobName": "j" + uuid.uuid4().hex[:10], "roleArn": ROLE, "modelId": model,
            "inputDataConfig": {"s3InputDataConfig": {"s3Uri": f"s3://{bucket}/in/"}},
            "outputDataConfig": {"s3OutputDataConfig": {"s3Uri": f"s3://{bucket}/out/"}}, **extra}
    return str(endpoint.client("bedrock").create_model_invocation_job(**args)["jobArn"])


def wait(endpoint: EndpointHandle, arn: str, timeout: float = 60.0) -> dict[str, Any]:
    end = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = endpoint.client("bedrock").get_model_invocation_job(jobIdentifier=arn)
        if job["status"] in ("Completed", "Failed", "Stopped") or time.monotonic() > end:
            return job
        time.sleep(0.05)


def outputs(endpoint: EndpointHandle, bucket: str, arn: str, name: str) -> list[dict[str, Any]]:
    job_id = arn.rsplit("/", 1)[1]
    raw = endpoint.client("s3").get_object(Bucket=bucket, Key=f"out/{job_id}/{name}.out")["Body"].read()
    return [json.loads(line) for line in raw.splitlines() if line.strip()]


def bedrock_config(endpoint: EndpointHandle, body: dict[str, Any]) -> None:
    req = urllib.request.Request(f"{endpoint.url}/_s3vl/bedrock/config", data=json.dumps(body).encode(), method="PUT")
    with urllib.request.urlopen(req, timeout=30):
        pass


def test_local_s3_is_moto_behind_the_endpoint(endpoint: EndpointHandle, bucket: str) -> None:
    s3 = endpoint.client("s3")
    s3.put_object(Bucket=bucket, Key="a/b.txt", Body=b"hello")
    assert s3.get_object(Bucket=bucket, Key="a/b.txt")["Body"].read() == b"hello"
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="a/")["Contents"]] == ["a/b.txt"]
    with pytest.raises(ClientError) as info:
        s3.get_object(Bucket=bucket, Key="missing")
    assert info.value.response["Error"]["Code"] == "NoSuchKey"
    # the other services on the same port are untouched
    assert "vectorBuckets" in endpoint.client("s3vectors").list_vector_buckets()


def test_a_job_embeds_every_record_like_invoke_model(endpoint: EndpointHandle, bucket: str) -> None:
    records = [{"recordId": f"r{i:05d}", "modelInput": {"inputText": f"text number {i}", "dimensions": 256}}
               for i in range(120)]
    records[7]["modelInput"] = {"inputText": "", "dimensions": 256}  # refused by the model: an error record
    put_records(endpoint, bucket, "in/part-0.jsonl", records[:60])
    put_records(endpoint, bucket, "in/part-1.jsonl", records[60:])
    endpoint.admin.reset()
    arn = create(endpoint, bucket, clientRequestToken="tok-1")
    job = wait(endpoint, arn)
    assert job["status"] == "Completed", job.get("message")
    assert (job["totalRecordCount"], job["successRecordCount"], job["errorRecordCount"]) == (120, 119, 1)
    lines = outputs(endpoint, bucket, arn, "part-0.jsonl") + outputs(endpoint, bucket, arn, "part-1.jsonl")
    assert [line["recordId"] for line in lines] == [r["recordId"] for r in records]
    bad = lines[7]
    assert "modelOutput" not in bad
    assert bad["error"]["errorCode"] == 400
    assert "minLength: 1" in bad["error"]["errorMessage"]
    runtime = endpoint.client("bedrock-runtime")
    for line in (lines[0], lines[99]):
        on_demand = json.loads(runtime.invoke_model(modelId=TITAN, body=json.dumps(line["modelInput"]))["body"].read())
        np.testing.assert_array_equal(line["modelOutput"]["embedding"], on_demand["embedding"])
    manifest = json.loads(endpoint.client("s3").get_object(
        Bucket=bucket, Key=f"out/{arn.rsplit('/', 1)[1]}/manifest.json.out")["Body"].read())
    assert manifest["totalRecordCount"] == 120
    assert manifest["errorRecordCount"] == 1
    counted = endpoint.admin.counters()["bedrock"]
    assert counted["ModelInvocationJob"]["records"] == 120
    assert counted["ModelInvocationJob"][f"records:{TITAN}"] == 120
    assert counted["InvokeModel"]["requests"] == 2  # the two on-demand checks above, no more
    # the same clientRequestToken is the same job, not a second one
    assert create(endpoint, bucket, clientRequestToken="tok-1") == arn


def test_cohere_v4_records_carry_many_texts(endpoint: EndpointHandle, bucket: str) -> None:
    records = [{"recordId": f"c{i}", "modelInput": {"texts": [f"a{i}", f"b{i}"], "input_type": "search_document",
                                                    "output_dimension": 512}} for i in range(100)]
    put_records(endpoint, bucket, "in/c.jsonl", records)
    arn = create(endpoint, bucket, model=COHERE_V4)
    assert wait(endpoint, arn)["status"] == "Completed"
    first = outputs(endpoint, bucket, arn, "c.jsonl")[0]
    assert [len(v) for v in first["modelOutput"]["embeddings"]] == [512, 512]


@pytest.mark.parametrize(("args", "code", "text"), [
    ({"roleArn": "s3vl-batch"}, "ValidationException", "is not an IAM role ARN"),
    ({"jobName": "bad name!"}, "ValidationException", "jobName"),
    ({"modelId": "amazon.titan-embed-text-v9"}, "ResourceNotFoundException", "Could not resolve"),
    ({"timeoutDurationInHours": 200}, "ValidationException", "24 to 168"),  # botocore checks only the min
    ({"inputDataConfig": {"s3InputDataConfig": {"s3Uri": "https://x/y"}}}, "ValidationException", "not an S3 URI"),
])
def test_create_validates_its_input(endpoint: EndpointHandle, bucket: str, args: dict[str, Any], code: str,
                                    text: str) -> None:
    with pytest.raises(ClientError) as info:
        create(endpoint, bucket, **args)
    assert info.value.response["Error"]["Code"] == code
    assert text in info.value.response["Error"]["Message"]


def test_jobs_that_cannot_run_fail_with_a_message(endpoint: EndpointHandle, bucket: str) -> None:
    put_records(endpoint, bucket, "in/few.jsonl", [{"recordId": "x", "modelInput": {"inputText": "x"}}] * 5)
    job = wait(endpoint, create(endpoint, bucket))
    assert job["status"] == "Failed"
    assert "at least 100" in job["message"]
    job = wait(endpoint, create(endpoint, "no-such-bucket-here"))
    assert job["status"] == "Failed"
    assert "does not exist" in job["message"]
    args = {"inputDataConfig": {"s3InputDataConfig": {"s3Uri": f"s3://{bucket}/in/missing.jsonl"}}}
    job = wait(endpoint, create(endpoint, bucket, **args))
    assert job["status"] == "Failed"
    assert job["message"] == f"The input file s3://{bucket}/in/missing.jsonl does not exist."


def test_stop_list_and_conflicts(endpoint: EndpointHandle, bucket: str) -> None:
    put_records(endpoint, bucket, "in/p.jsonl", [{"recordId": f"r{i}", "modelInput": {"inputText": "x"}}
                                                for i in range(100)])
    bedrock = endpoint.client("bedrock")
    bedrock_config(endpoint, {"job_start_delay": 30})
    try:
        arn = create(endpoint, bucket, jobName="stopme" + uuid.uuid4().hex[:6])
        name = bedrock.get_model_invocation_job(jobIdentifier=arn)["jobName"]
        with pytest.raises(ClientError) as info:
            create(endpoint, bucket, jobName=name)
        assert info.value.response["Error"]["Code"] == "ConflictException"
        listed = bedrock.list_model_invocation_jobs(statusEquals="Submitted", nameContains=name)
        assert [j["jobArn"] for j in listed["invocationJobSummaries"]] == [arn]
        assert listed["invocationJobSummaries"][0]["totalRecordCount"] == 0  # botocore's summary shape
        bedrock.stop_model_invocation_job(jobIdentifier=arn.rsplit("/", 1)[1])
        assert wait(endpoint, arn)["status"] == "Stopped"
        with pytest.raises(ClientError) as info:
            bedrock.stop_model_invocation_job(jobIdentifier=arn)
        assert info.value.response["Error"]["Code"] == "ConflictException"
    finally:
        bedrock_config(endpoint, {"job_start_delay": 0})
    with pytest.raises(ClientError) as info:
        bedrock.get_model_invocation_job(jobIdentifier="abcdefabcdef")
    assert info.value.response["Error"]["Code"] == "ResourceNotFoundException"
    create(endpoint, bucket)  # a second job of this test, so that one job per page leaves a next page
    page = bedrock.list_model_invocation_jobs(maxResults=1)
    assert len(page["invocationJobSummaries"]) == 1
    assert "nextToken" in page
