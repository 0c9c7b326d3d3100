"""The query Lambda's error classes: one per failure class, each with its wire code.

The code travels in the response (``error.code``); the SQL side (``s3vl._raise_error`` in
``sql/idempotent/100-query.sql``) maps every code to its own SQLSTATE and hint, and
``tests/integration/sql/test_query_errors.py`` checks that every code listed here has one.
"""

from __future__ import annotations


class QueryError(Exception):
    """The request failed."""

    code = "internal"
    retryable = False

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())

    @property
    def message(self) -> str:
        return str(self)

    def to_payload(self) -> dict[str, object]:
        return {"code": self.code, "message": self.message, "retryable": self.retryable}


class InvalidRequestError(QueryError):
    """The request is malformed."""

    code = "invalid_request"


class InvalidArgumentError(QueryError):
    """A parameter is invalid."""

    code = "invalid_argument"


class InvalidFilterError(QueryError):
    """The metadata filter is invalid."""

    code = "invalid_filter"


class DimensionMismatchError(QueryError):
    """The vector's dimension does not match the index."""

    code = "dimension_mismatch"


class IndexNotFoundError(QueryError):
    """The vector index does not exist."""

    code = "index_not_found"


class VectorNotFoundError(QueryError):
    """The vector does not exist in the index."""

    code = "vector_not_found"


class AccessDeniedError(QueryError):
    """The Lambda's role is not allowed to do this."""

    code = "access_denied"


class ThrottledError(QueryError):
    """AWS kept throttling the request until the time budget ran out."""

    code = "throttled"
    retryable = True


class ServiceUnavailableError(QueryError):
    """An AWS service failed or could not be reached."""

    code = "service_unavailable"
    retryable = True


class QueryTimeoutError(QueryError):
    """The request did not finish within the Lambda's time budget."""

    code = "timeout"
    retryable = True


class EmbeddingError(QueryError):
    """The text could not be embedded."""

    code = "embedding_failed"


class InternalError(QueryError):
    """Internal error in the query Lambda."""

    code = "internal"


#: Every code the Lambda can answer with (the SQL side must map each one).
ERROR_CODES: tuple[str, ...] = tuple(
    cls.code
    for cls in (
        InvalidRequestError,
        InvalidArgumentError,
        InvalidFilterError,
        DimensionMismatchError,
        IndexNotFoundError,
        VectorNotFoundError,
        AccessDeniedError,
        ThrottledError,
        ServiceUnavailableError,
        QueryTimeoutError,
        EmbeddingError,
        InternalError,
    )
)
