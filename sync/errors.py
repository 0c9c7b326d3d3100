"""The one exception root of s3vl, and one class per failure class.

Each class's docstring is its default message, so ``raise ConfigError()`` still says something
useful. Driver errors (psycopg, botocore) are translated into these at one boundary each
(``sync.db`` and the AWS client modules), never scattered through the pipeline.
"""

from __future__ import annotations


class S3vlError(Exception):
    """s3vl failed."""

    #: Process exit status the CLI uses for this class of error.
    exit_code = 1

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())


class ConfigError(S3vlError):
    """A setting is invalid."""

    exit_code = 2


class DatabaseError(S3vlError):
    """The database refused or failed an operation."""

    def __init__(self, message: str | None = None, sqlstate: str | None = None) -> None:
        super().__init__(message)
        #: PostgreSQL's SQLSTATE of the refusal (None when there was no answer)
        self.sqlstate = sqlstate


class DatabaseUnavailableError(DatabaseError):
    """The database could not be reached, or the connection broke (worth retrying)."""


class SchemaError(S3vlError):
    """The s3vl SQL schema could not be installed or is not installed."""


class ReconcileError(S3vlError):
    """Reconcile could not compare or repair a sync (the message names the sync and why)."""


class ReindexError(S3vlError):
    """A reindex could not create, backfill, verify or switch to the new index."""


class SyncDefinitionError(S3vlError):
    """A sync definition is missing or cannot be used by the worker."""


class UnknownSyncError(SyncDefinitionError):
    """A sync named on the command line does not exist."""

    exit_code = 2


class TransientAwsError(S3vlError):
    """An AWS call kept failing with throttling, 5xx or connection errors after its retries."""

    def __init__(self, message: str | None = None, *, throttled: bool = False) -> None:
        super().__init__(message)
        #: the last error was throttling: the caller is too fast (no request is to blame)
        self.throttled = throttled


class RowError(S3vlError):
    """One source row cannot be synced (e.g. text too long for the model, metadata over S3 Vectors' limits)."""


class EmbeddingError(S3vlError):
    """Bedrock refused or failed to embed a text."""


class VectorStoreError(S3vlError):
    """S3 Vectors refused or failed a request."""


class Abandoned(Exception):  # noqa: N818 - a control-flow signal, not an error of s3vl
    """A batch in flight was abandoned (a second stop signal): its keys go back to the queue."""
