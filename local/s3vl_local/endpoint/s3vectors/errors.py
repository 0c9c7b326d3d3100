"""S3 Vectors errors as the service sends them (codes and HTTP statuses from botocore's model).

Messages are AWS's, word for word, where known (moto's ``moto/s3vectors/exceptions.py`` copies
them from the real service); others follow the same style and are marked ``local wording``.
"""

from __future__ import annotations

from typing import Any

from s3vl_local.endpoint.app import AwsError


def validation(message: str, fields: list[dict[str, str]] | None = None) -> AwsError:
    """400 ValidationException; ``fields`` is the ``fieldList`` (``path`` + ``message``)."""
    extra: dict[str, Any] = {}
    if fields:
        extra["fieldList"] = fields
    return AwsError(400, "ValidationException", message, **extra)


def field_error(path: str, message: str) -> AwsError:
    """One invalid field: the message is repeated in ``fieldList`` with its path."""
    return validation(message, [{"path": path, "message": message}])


def constraint_errors(problems: list[tuple[str, str]]) -> AwsError:
    """Smithy-style model constraint failures: ``N validation error(s) detected. ...``."""
    n = len(problems)
    head = f"{n} validation error{'s' if n > 1 else ''} detected. "
    return validation(head + "; ".join(m for _, m in problems), [{"path": p, "message": m} for p, m in problems])


def bucket_not_found() -> AwsError:
    return AwsError(404, "NotFoundException", "The specified vector bucket could not be found")


def index_not_found() -> AwsError:
    return AwsError(404, "NotFoundException", "The specified index could not be found")


def policy_not_found() -> AwsError:
    return AwsError(404, "NotFoundException", "The specified vector bucket policy could not be found")


def resource_not_found() -> AwsError:
    return AwsError(404, "NotFoundException", "The specified resource could not be found")


def bucket_exists() -> AwsError:
    return AwsError(409, "ConflictException", "A vector bucket with the specified name already exists")


def index_exists() -> AwsError:
    # local wording, by analogy with the bucket message
    return AwsError(409, "ConflictException", "An index with the specified name already exists")


def bucket_not_empty() -> AwsError:
    return AwsError(409, "ConflictException", "The specified vector bucket is not empty")


def quota(message: str) -> AwsError:
    return AwsError(402, "ServiceQuotaExceededException", message)


def throttled() -> AwsError:
    return AwsError(429, "TooManyRequestsException", "Rate exceeded")

