"""The one list of retryable AWS error codes, shared by the worker and the query Lambda, against botocore.

botocore is the reference: its standard retry mode's throttling and transient codes, and the
error shapes the service models of S3 Vectors and Bedrock Runtime (the services both call) declare.
A code s3vl retries must be one of those; a modeled error that is retryable (429, 5xx, 408 or
the ``retryable`` trait) must be retried by s3vl, so a newer botocore that models a new one fails here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from botocore.loaders import Loader
from botocore.retries.standard import ThrottledRetryableChecker, TransientRetryableChecker

import s3vl_query.aws as lambda_aws
from sync.aws import retry
from tests.support.paths import REPO

SERVICES = ("s3vectors", "bedrock-runtime")


def _modeled_errors() -> dict[str, dict[str, Any]]:
    """Error shape name -> its shape, for every service both sides call."""
    loader = Loader()
    errors: dict[str, dict[str, Any]] = {}
    for service in SERVICES:
        shapes = loader.load_service_model(service, "service-2")["shapes"]
        errors.update({name: shape for name, shape in shapes.items() if shape.get("exception")})
    return errors


def _status(shape: dict[str, Any]) -> int:
    return int(shape.get("error", {}).get("httpStatusCode", 400))


def test_worker_and_lambda_read_one_file() -> None:
    link = REPO / "sync" / "aws" / "retryable_codes.json"
    assert link.is_symlink()
    assert link.resolve() == (REPO / "lambda" / "s3vl_query" / "retryable_codes.json").resolve()
    assert retry.THROTTLING_CODES == lambda_aws.THROTTLING_CODES
    assert retry.TRANSIENT_CODES == lambda_aws.THROTTLING_CODES | lambda_aws.TRANSIENT_CODES


def test_each_throttling_code_is_one_botocore_knows() -> None:
    modeled = _modeled_errors()
    botocore_throttling = set(ThrottledRetryableChecker._THROTTLED_ERROR_CODES)
    for code in retry.THROTTLING_CODES:
        shape = modeled.get(code)
        modeled_throttling = shape is not None and (
            _status(shape) == 429 or shape.get("retryable", {}).get("throttling")
        )
        assert code in botocore_throttling or modeled_throttling, code


def test_each_transient_code_is_one_botocore_knows() -> None:
    modeled = _modeled_errors()
    botocore_transient = set(TransientRetryableChecker._TRANSIENT_ERROR_CODES)
    for code in lambda_aws.TRANSIENT_CODES:
        shape = modeled.get(code)
        modeled_retryable = shape is not None and (_status(shape) in (408, 429) or "retryable" in shape)
        assert code in botocore_transient or modeled_retryable, code


def test_every_retryable_modeled_error_is_retried() -> None:
    """429/5xx are retried by status; what else the models call retryable must be in the list."""
    for code, shape in _modeled_errors().items():
        status = _status(shape)
        if status == 429 or status >= 500:
            continue  # retried by status, whatever the code
        if status == 408 or "retryable" in shape:
            assert code in retry.TRANSIENT_CODES, f"{code} ({status}) is retryable in botocore's model"


def test_quota_errors_are_not_retried_as_throttling() -> None:
    """ServiceQuotaExceededException is a full index or account quota: retrying cannot help."""
    assert "ServiceQuotaExceededException" not in retry.TRANSIENT_CODES


def test_the_lambda_package_carries_the_file() -> None:
    assert (Path(lambda_aws.__file__).parent / "retryable_codes.json").is_file()
