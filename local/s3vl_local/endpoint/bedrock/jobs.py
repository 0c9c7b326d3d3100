"""Local Amazon Bedrock batch inference: the ``bedrock`` control plane's model invocation jobs.

``CreateModelInvocationJob`` (``POST /model-invocation-job``), ``GetModelInvocationJob``
(``GET /model-invocation-job/{id}``), ``ListModelInvocationJobs`` (``GET /model-invocation-jobs``)
and ``StopModelInvocationJob`` (``POST /model-invocation-job/{id}/stop``), with the shapes and
validation of botocore's ``bedrock`` model (job name and role ARN patterns, a 24-168 hour
timeout, an idempotent ``clientRequestToken``).

A job runs on a thread of its own, as Bedrock runs it: ``Submitted`` -> ``Validating`` (every
``.jsonl`` under the input ``s3Uri`` is read from the local S3; no file, a malformed line, fewer
than :data:`MIN_RECORDS` records or more than :data:`MAX_RECORDS_PER_FILE` in a file fail the
job with a message) -> ``InProgress`` (each record's ``modelInput`` goes through the same model
code as ``InvokeModel`` (:func:`~s3vl_local.endpoint.bedrock.models.invoke`), so a batch
vector equals the on-demand vector of the same text) -> ``Completed`` (or ``Stopped`` after
``StopModelInvocationJob``, ``Failed``). Outputs follow the user guide: for each input file
``<output s3Uri>/<job id>/<input file>.out`` with one line per record, ``{"recordId",
"modelInput", "modelOutput"}`` or ``{"recordId", "modelInput", "error": {"errorCode",
"errorMessage"}}`` for a record the model refused, and ``manifest.json.out`` with the counts.

Counters (service ``bedrock``, operation ``ModelInvocationJob``): ``jobs``, ``records``,
``error_records``, ``input_tokens``, ``records:<model>``. Local simplifications: jobs live in
this process's memory (they do not survive an endpoint restart, nor do the local S3's objects);
the role is checked by ARN pattern only (no IAM); ``job_start_delay`` (admin config) holds jobs
in ``Submitted`` that long, so tests can catch a job in flight.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import orjson
import structlog
from botocore.config import Config
from werkzeug.wrappers import Response

from s3vl_local.embedding import LocalEmbedder
from s3vl_local.endpoint.app import AwsError, Call, EndpointContext, json_response
from s3vl_local.endpoint.bedrock import errors, models
from s3vl_local.endpoint.counters import Counters

log = structlog.get_logger(__name__)

#: Bedrock's default quotas (Service Quotas, "batch inference"): records per job at least 100,
#: at most 50,000 per input file; at most 20 jobs submitted or in progress at once.
MIN_RECORDS = 100
MAX_RECORDS_PER_FILE = 50_000
MAX_ACTIVE_JOBS = 20

_JOB_NAME = re.compile(r"^[a-zA-Z0-9]{1,63}(-*[a-zA-Z0-9+\-.]){0,63}$")
_ROLE_ARN = re.compile(r"^arn:aws(-[^:]+)?:iam::([0-9]{12})?:role/.+$")
_S3_URI = re.compile(r"^s3://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(/.*)?$")
_JOB_ID = re.compile(r"^(arn:aws(-[^:]+)?:bedrock:[a-z0-9-]{1,20}:[0-9]{12}:model-invocation-job/)?([a-z0-9]{12})$")
#: The local stack's placeholder credentials (the endpoint does not check signatures).
LOCAL_KEY = "s3vl-local"
TERMINAL = ("Completed", "PartiallyCompleted", "Failed", "Stopped", "Expired")


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Job:
    job_id: str
    arn: str
    name: str
    model_id: str
    spec: models.ModelSpec
    role_arn: str
    token: str | None
    input_uri: str
    output_uri: str
    timeout_hours: int
    submit_time: datetime = field(default_factory=_now)
    last_modified: datetime = field(default_factory=_now)
    end_time: datetime | None = None
    status: str = "Submitted"
    message: str | None = None
    total: int = 0
    processed: int = 0
    succeeded: int = 0
    failed: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def set(self, status: str, message: str | None = None) -> None:
        self.status = status
        self.message = message
        self.last_modified = _now()
        if status in TERMINAL:
            self.end_time = self.last_modified

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "jobArn": self.arn, "jobName": self.name, "modelId": self.model_id, "roleArn": self.role_arn,
            "status": self.status, "submitTime": self.submit_time.isoformat(),
            "lastModifiedTime": self.last_modified.isoformat(),
            "inputDataConfig": {"s3InputDataConfig": {"s3Uri": self.input_uri, "s3InputFormat": "JSONL"}},
            "outputDataConfig": {"s3OutputDataConfig": {"s3Uri": self.output_uri}},
            "timeoutDurationInHours": self.timeout_hours,
            "jobExpirationTime": (self.submit_time + timedelta(hours=self.timeout_hours)).isoformat(),
            "modelInvocationType": "InvokeModel",
            "totalRecordCount": self.total, "processedRecordCount": self.processed,
            "successRecordCount": self.succeeded, "errorRecordCount": self.failed,
        }
        if self.token:
            out["clientRequestToken"] = self.token
        if self.message:
            out["message"] = self.message
        if self.end_time:
            out["endTime"] = self.end_time.isoformat()
        return out


def _split(uri: str) -> tuple[str, str]:
    match = _S3_URI.match(uri)
    if match is None:
        raise errors.validation(f"{uri} is not an S3 URI (s3://bucket/prefix)")
    return match.group(1), (match.group(2) or "/").lstrip("/")


class BatchJobs:
    """The jobs of this endpoint process, and the threads that run them."""

    def __init__(self, ctx: EndpointContext, embedder: Callable[[], LocalEmbedder]) -> None:
        self.ctx = ctx
        self._embedder = embedder
        self._lock = threading.Lock()
        self._jobs: dict[str, Job] = {}
        self.start_delay = 0.0

    def _s3(self) -> Any:
        return boto3.client("s3", endpoint_url=self.ctx.base_url, region_name=self.ctx.region,
                            aws_access_key_id=LOCAL_KEY, aws_secret_access_key=LOCAL_KEY,
                            config=Config(retries={"max_attempts": 2}, s3={"addressing_style": "path"}))

    def _job(self, identifier: str) -> Job:
        match = _JOB_ID.match(identifier)
        if match is None:
            raise errors.validation(f"{identifier} is not a model invocation job id or ARN")
        with self._lock:
            job = self._jobs.get(match.group(3))
        if job is None:
            raise AwsError(404, "ResourceNotFoundException", f"The job {identifier} could not be found.")
        return job

    # --- operations ----------------------------------------------------------------------------
    def create_job(self, call: Call) -> Response:
        body = call.json()
        if not isinstance(body, dict):
            raise errors.validation("the request body must be a JSON object")
        for key in ("jobName", "roleArn", "modelId", "inputDataConfig", "outputDataConfig"):
            if key not in body:
                raise errors.validation(f"1 validation error detected: Value null at '{key}' failed to satisfy "
                                        "constraint: Member must not be null")
        name, role = body["jobName"], body["roleArn"]
        if not isinstance(name, str) or not _JOB_NAME.match(name):
            raise errors.validation(f"jobName {name!r} must match [a-zA-Z0-9]{{1,63}}(-*[a-zA-Z0-9+\\-.]){{0,63}}")
        if not isinstance(role, str) or not _ROLE_ARN.match(role):
            raise errors.validation(f"roleArn {role!r} is not an IAM role ARN (arn:aws:iam::<account>:role/<name>)")
        spec = models.resolve_model(str(body["modelId"]))
        try:
            input_uri = body["inputDataConfig"]["s3InputDataConfig"]["s3Uri"]
            output_uri = body["outputDataConfig"]["s3OutputDataConfig"]["s3Uri"]
        except (KeyError, TypeError):
            raise errors.validation("inputDataConfig.s3InputDataConfig.s3Uri and "
                                    "outputDataConfig.s3OutputDataConfig.s3Uri are required") from None
        _split(str(input_uri))
        _split(str(output_uri))
        fmt = body["inputDataConfig"]["s3InputDataConfig"].get("s3InputFormat", "JSONL")
        if fmt != "JSONL":
            raise errors.validation(f"s3InputFormat {fmt!r}: only JSONL is supported")
        hours = body.get("timeoutDurationInHours", 168)
        if isinstance(hours, bool) or not isinstance(hours, int) or not 24 <= hours <= 168:
            raise errors.validation("timeoutDurationInHours must be an integer from 24 to 168")
        token = body.get("clientRequestToken")
        with self._lock:
            for job in self._jobs.values():
                if token is not None and job.token == token:
                    return json_response({"jobArn": job.arn})  # the same request again: the same job
                if job.name == name:
                    raise AwsError(409, "ConflictException", f"A job named {name} already exists.")
            active = sum(1 for j in self._jobs.values() if j.status not in TERMINAL)
            if active >= MAX_ACTIVE_JOBS:
                raise AwsError(400, "ServiceQuotaExceededException",
                               f"{active} batch inference jobs are submitted or in progress; the quota is "
                               f"{MAX_ACTIVE_JOBS}")
            job_id = secrets.token_hex(6)
            job = Job(job_id, f"arn:aws:bedrock:{self.ctx.region}:{self.ctx.account_id}:model-invocation-job/{job_id}",
                      name, str(body["modelId"]), spec, role, token, str(input_uri), str(output_uri), hours)
            self._jobs[job_id] = job
        call.count("jobs")
        threading.Thread(target=self._run, args=(job, call.counters), name=f"s3vl-batch-{job_id}", daemon=True).start()
        return json_response({"jobArn": job.arn})

    def get_job(self, call: Call) -> Response:
        return json_response(self._job(call.args["job_id"]).describe())

    def list_jobs(self, call: Call) -> Response:
        q = call.request.args
        status, name = q.get("statusEquals"), q.get("nameContains")
        try:
            limit = int(q.get("maxResults", "1000"))
            start = int(q.get("nextToken", "0"))
        except ValueError:
            raise errors.validation("maxResults and nextToken must be integers") from None
        if not 1 <= limit <= 1000:
            raise errors.validation("maxResults must be from 1 to 1000")
        with self._lock:
            jobs = [j for j in self._jobs.values()
                    if (status is None or j.status == status) and (name is None or name in j.name)]
        jobs.sort(key=lambda j: j.submit_time, reverse=q.get("sortOrder", "Descending") == "Descending")
        # a ModelInvocationJobSummary has every member GetModelInvocationJob answers with
        out: dict[str, Any] = {"invocationJobSummaries": [j.describe() for j in jobs[start:start + limit]]}
        if start + limit < len(jobs):
            out["nextToken"] = str(start + limit)
        return json_response(out)

    def stop_job(self, call: Call) -> Response:
        job = self._job(call.args["job_id"])
        with self._lock:
            if job.status in TERMINAL or job.status == "Stopping":
                raise AwsError(409, "ConflictException", f"The job is {job.status} and cannot be stopped.")
            job.set("Stopping")
            job.stop.set()
        return json_response({})

    # --- running a job -------------------------------------------------------------------------
    def _run(self, job: Job, counters: Counters) -> None:
        try:
            self._execute(job, counters)
        except Exception as exc:  # anything unexpected fails the job, as Bedrock reports it
            log.exception("bedrock.batch_job_failed", job=job.job_id)
            with self._lock:
                job.set("Failed", f"Internal error: {exc}")

    def _advance(self, job: Job, status: str, message: str | None = None) -> bool:
        """Move the job on, unless a stop came first: then it is ``Stopped`` and False is returned
        (under the lock, so a stop between two steps is never overwritten)."""
        with self._lock:
            if job.stop.is_set():
                job.set("Stopped")
                return False
            job.set(status, message)
            return True

    def _execute(self, job: Job, counters: Counters) -> None:
        deadline = time.monotonic() + self.start_delay
        while time.monotonic() < deadline and not job.stop.is_set():
            time.sleep(0.02)
        if not self._advance(job, "Validating"):
            return
        s3 = self._s3()
        files = self._read_inputs(job, s3)
        if files is None:
            return
        job.total = sum(len(lines) for _, lines in files)
        if not self._advance(job, "InProgress"):
            return
        out_bucket, out_prefix = _split(job.output_uri)
        out_prefix = f"{out_prefix.rstrip('/')}/{job.job_id}/" if out_prefix.strip("/") else f"{job.job_id}/"
        embedder = self._embedder()
        tokens = 0
        for name, lines in files:
            if job.stop.is_set():
                break
            out_lines = []
            for record in lines:
                if job.stop.is_set():
                    break
                line: dict[str, Any] = {"recordId": record["recordId"], "modelInput": record["modelInput"]}
                try:
                    result = models.invoke(job.spec, record["modelInput"], embedder)
                    line["modelOutput"] = result.body
                    tokens += result.input_tokens
                    ok = True
                except AwsError as err:
                    line["error"] = {"errorCode": err.status, "errorMessage": err.message}
                    ok = False
                out_lines.append(orjson.dumps(line, option=orjson.OPT_SERIALIZE_NUMPY))
                with self._lock:
                    job.processed += 1
                    job.succeeded += ok
                    job.failed += not ok
            if out_lines:
                s3.put_object(Bucket=out_bucket, Key=f"{out_prefix}{name}.out", Body=b"\n".join(out_lines) + b"\n")
        manifest = {"totalRecordCount": job.total, "processedRecordCount": job.processed,
                    "successRecordCount": job.succeeded, "errorRecordCount": job.failed,
                    "inputTokenCount": tokens, "outputTokenCount": 0}
        s3.put_object(Bucket=out_bucket, Key=f"{out_prefix}manifest.json.out", Body=json.dumps(manifest).encode())
        for key, n in (("records", job.processed), ("error_records", job.failed), ("input_tokens", tokens),
                       (f"records:{job.spec.model_id}", job.processed)):
            counters.add("bedrock", "ModelInvocationJob", key, n)
        with self._lock:  # a stop that came after the last record changes nothing: the job is done
            job.set("Completed" if job.processed == job.total else "Stopped")

    def _read_inputs(self, job: Job, s3: Any) -> list[tuple[str, list[dict[str, Any]]]] | None:
        """The input files (name relative to the input prefix, records); None when the job failed."""
        bucket, prefix = _split(job.input_uri)
        try:
            if job.input_uri.endswith(".jsonl"):
                keys = [prefix]
            else:
                pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
                keys = sorted(o["Key"] for p in pages for o in p.get("Contents", []) if o["Key"].endswith(".jsonl"))
            files = []
            for key in keys:
                raw = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8")
                records = []
                for n, text in enumerate(raw.splitlines(), 1):
                    if not text.strip():
                        continue
                    record = json.loads(text)
                    if not isinstance(record, dict) or "modelInput" not in record:
                        raise ValueError(f"{key} line {n}: a record is a JSON object with modelInput")
                    record.setdefault("recordId", secrets.token_hex(6))
                    records.append(record)
                if len(records) > MAX_RECORDS_PER_FILE:
                    raise ValueError(f"{key} has {len(records)} records; a file may hold {MAX_RECORDS_PER_FILE}")
                files.append((key[len(prefix):].lstrip("/") if key != prefix else key.rsplit("/", 1)[-1], records))
        except s3.exceptions.NoSuchBucket:
            self._fail(job, f"The S3 bucket {bucket} does not exist.")
            return None
        except s3.exceptions.NoSuchKey:
            self._fail(job, f"The input file {job.input_uri} does not exist.")
            return None
        except (ValueError, UnicodeDecodeError) as exc:
            self._fail(job, f"Invalid input: {exc}")
            return None
        total = sum(len(r) for _, r in files)
        if not files:
            self._fail(job, f"No .jsonl file was found at {job.input_uri}.")
            return None
        if total < MIN_RECORDS:
            self._fail(job, f"The job has {total} records; a batch inference job needs at least {MIN_RECORDS}.")
            return None
        return files

    def _fail(self, job: Job, message: str) -> None:
        self._advance(job, "Failed", message)

