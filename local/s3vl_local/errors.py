"""The local stack's error classes (children of s3vl's one root, so the CLI prints them as one line)."""

from __future__ import annotations

from sync.errors import S3vlError


class LocalStackError(S3vlError):
    """The local stack could not be started, stopped or inspected."""


class LocalModelMissingError(S3vlError):
    """A local embedding model is not installed (the message names the install command)."""
