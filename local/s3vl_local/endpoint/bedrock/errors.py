"""Bedrock Runtime errors as the service sends them (codes and statuses from botocore's model).

Bedrock validates each model's JSON body against a JSON schema and words its failures as
``Malformed input request: <schema path>: <problem>, please reformat your input and try again.``;
the helpers below produce that shape. Messages marked *local wording* are ours.
"""

from __future__ import annotations

from s3vl_local.endpoint.app import AwsError


def validation(message: str) -> AwsError:
    return AwsError(400, "ValidationException", message)


def malformed(problem: str) -> AwsError:
    """400 ValidationException in Bedrock's schema-failure wording."""
    return validation(f"Malformed input request: {problem}, please reformat your input and try again.")


def too_many_tokens(limit: int, actual: int) -> AwsError:
    return validation(
        f"400 Bad Request: Too many input tokens. Max input tokens: {limit}, request input token count: {actual} "
    )


def model_not_found(model_id: str) -> AwsError:
    # local wording (the issue asks for 404 ResourceNotFoundException for an unknown model)
    return AwsError(
        404,
        "ResourceNotFoundException",
        f"Could not resolve the foundation model from the provided model identifier: {model_id}",
    )


def model_timeout() -> AwsError:
    return AwsError(
        408,
        "ModelTimeoutException",
        "Model has timed out in processing the request. Try your request again. (injected fault: s3vl local endpoint)",
    )
