"""Configuration: environment first (``S3VL_`` prefix), then an optional file, validated at start.

AWS settings deliberately use AWS's own variables (``AWS_REGION``, ``AWS_ENDPOINT_URL``,
``AWS_ENDPOINT_URL_<SERVICE>``, credentials): boto3 reads them itself, so the same process talks
to the local stack or to AWS without a line of s3vl code knowing which. We read the region and
endpoint here only to validate them and to show them in ``s3vl status``; credentials are never
read, stored or logged by s3vl.

A bad value stops the program with one line naming the setting and what is allowed
(:func:`load_settings` raises :class:`~sync.errors.ConfigError`; the CLI prints it). Command-line
flags are settings too: the CLI passes them as overrides and they go through the same
validation, so ``--batch-size 0`` and ``S3VL_WORKER_BATCH_SIZE=0`` are refused alike (the message
names whichever the user gave).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from sync.errors import ConfigError

#: Where ``s3vl`` looks for an optional settings file (``KEY=value`` lines, like a .env file).
CONFIG_FILE_ENV = "S3VL_CONFIG_FILE"
DEFAULT_DATA_DIR = Path(".s3vl")


class Settings(BaseSettings):
    """Every setting s3vl reads. Field docs are shown by ``s3vl config --help`` style errors."""

    model_config = SettingsConfigDict(
        env_prefix="S3VL_",
        extra="ignore",
        case_sensitive=False,
        validate_default=True,
    )

    # --- where things are -------------------------------------------------------------------
    database_url: str | None = Field(
        default=None,
        description="PostgreSQL connection URL (postgresql://user@host:port/db). "
        "Defaults to the local dev cluster when it is running.",
    )
    data_dir: Path = Field(
        default=DEFAULT_DATA_DIR,
        description="Folder for the local stack's data (PostgreSQL cluster, endpoint store, logs).",
    )

    # --- the local stack ------------------------------------------------------------------
    dev_pg_port: int = Field(default=55432, ge=1024, le=65535, description="Port of the local PostgreSQL.")
    dev_endpoint_port: int = Field(default=45660, ge=1024, le=65535, description="Port of the local AWS endpoint.")

    # --- AWS (AWS's own variable names) -----------------------------------------------------
    aws_region: str = Field(
        default="us-west-2",
        validation_alias=AliasChoices("AWS_REGION", "AWS_DEFAULT_REGION", "S3VL_AWS_REGION"),
        description="AWS region (AWS_REGION or AWS_DEFAULT_REGION).",
    )
    aws_endpoint_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("AWS_ENDPOINT_URL"),
        description="Endpoint for every AWS service (the local stack sets it).",
    )

    # --- reconcile ---------------------------------------------------------------
    reconcile_max_delete_share: float = Field(
        default=0.10, ge=0.0, le=1.0,
        description="Largest share of an index reconcile --apply deletes without --force (0.10 = 10%).",
    )
    reconcile_segments: int = Field(
        default=16, ge=1, le=16, description="ListVectors segments reconcile lists in parallel (1-16)."
    )
    reconcile_segments_per_run: int | None = Field(
        default=None, ge=1, le=16,
        description="Rolling reconcile: list this many of the 16 segments per run, continuing the cycle "
        "(16/K runs cover the index; none = a full run).",
    )
    reconcile_sample_size: int = Field(
        default=10, ge=0, le=1000, description="Keys shown per drift category in a reconcile report."
    )
    reconcile_max_reembed: int | None = Field(
        default=None, ge=0, description="Stale keys enqueued per sync and run (rolling re-embed; none = all)."
    )
    reconcile_metrics_file: Path | None = Field(
        default=None, description="Write reconcile's Prometheus metrics to this file (textfile collector)."
    )

    # --- sync worker -----------------------------------------------------------------
    worker_batch_size: int = Field(default=100, ge=1, le=1000, description="Keys leased per batch.")
    worker_lease_seconds: float = Field(
        default=300.0, gt=0, description="How long a batch's keys stay leased (a dead worker's keys then come back)."
    )
    worker_concurrency: int = Field(
        default=8, ge=1, le=256,
        description="Bedrock calls in flight at start, per model (grows while Bedrock keeps up).",
    )
    worker_max_concurrency: int = Field(
        default=64, ge=1, le=256,
        description="The most Bedrock calls in flight it grows to (AIMD: halves on throttling); at least "
        "worker_concurrency, equal to it for a fixed number.",
    )
    worker_batches_in_flight: int = Field(
        default=3, ge=1, le=16,
        description="Batches processed at once: one is embedded while others are written.",
    )
    worker_max_writes: int = Field(
        default=8, ge=1, le=64,
        description="The most S3 Vectors writes in flight per index it grows to (AIMD from 2; halves on throttling).",
    )
    worker_poll_seconds: float = Field(default=1.0, gt=0, description="Idle wait between empty leases.")
    worker_retry_seconds: float = Field(
        default=5.0, ge=0, description="Backoff base before a failed row is tried again (doubles per attempt)."
    )
    worker_give_up_seconds: float = Field(
        default=60.0, gt=0,
        description="worker --once stops after this many seconds of consecutive failures (AWS or the database down).",
    )
    worker_pause_seconds: float = Field(
        default=30.0, gt=0,
        description="First pause of a sync that fails as a whole (doubles while it keeps failing, up to 15 minutes).",
    )
    worker_metrics_port: int | None = Field(
        default=None, ge=1, le=65535, description="Serve Prometheus /metrics on this port (worker)."
    )
    worker_metrics_addr: str = Field(default="127.0.0.1", description="Address for the metrics port.")
    aws_retry_seconds: float = Field(
        default=60.0, gt=0, le=900,
        description="How long one AWS call is retried (throttling, 5xx, connection errors) before it fails.",
    )

    # --- CloudWatch embedded metric format (sync/telemetry/emf.py) -----------------------------
    emf: Literal["auto", "on", "off"] = Field(
        default="auto",
        description="Write the CloudWatch metrics (OutboxLagSeconds, FailedRows, ReconcileDrift) as EMF JSON "
        "lines: auto = only inside ECS (ECS_CONTAINER_METADATA_URI_V4 set), on, off.",
    )
    emf_interval_seconds: float = Field(
        default=60.0, ge=0,
        description="How often the worker writes its EMF lines (seconds, at least 1); 0 disables EMF.",
    )

    # --- logging ----------------------------------------------------------------------------
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", description="Lowest level that is logged."
    )
    log_format: Literal["auto", "json", "console"] = Field(
        default="auto", description="auto = console on a terminal, JSON otherwise."
    )

    @field_validator("log_level", "log_format", "emf", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("emf_interval_seconds")
    @classmethod
    def _check_emf_interval(cls, value: float) -> float:
        if 0 < value < 1:
            raise ValueError("must be 0 (off) or at least 1 second")
        return value

    @field_validator("reconcile_metrics_file")
    @classmethod
    def _check_metrics_file(cls, value: Path | None) -> Path | None:
        if value is None:
            return None
        folder = value.parent if str(value.parent) else Path(".")
        if not folder.is_dir():
            raise ValueError(f"the folder {folder} does not exist")
        if not os.access(folder, os.W_OK):
            raise ValueError(f"the folder {folder} is not writable")
        return value

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        scheme = urlsplit(value).scheme
        if scheme not in ("postgresql", "postgres"):
            raise ValueError("must be a URL starting with postgresql:// (e.g. postgresql://app@db:5432/app)")
        return value

    @field_validator("aws_region")
    @classmethod
    def _check_region(cls, value: str) -> str:
        parts = value.split("-")
        if len(parts) < 3 or not parts[-1].isdigit():
            raise ValueError("must be an AWS region name such as us-west-2 or eu-central-1")
        return value

    @field_validator("aws_endpoint_url")
    @classmethod
    def _check_endpoint(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an http(s) URL such as http://127.0.0.1:45660")
        return value.rstrip("/")


def _env_name(loc: tuple[int | str, ...]) -> str:
    """The environment variable a user would set for a pydantic error location.

    Fields read through an alias (AWS's own variables) report the alias that was set.
    """
    name = str(loc[0]) if loc else "?"
    if name in Settings.model_fields:
        return f"S3VL_{name.upper()}"
    for info in Settings.model_fields.values():
        choices = info.validation_alias.choices if isinstance(info.validation_alias, AliasChoices) else []
        if name in choices:  # pydantic names the first alias; name the one the user set
            return next((str(c) for c in choices if str(c) in os.environ), name)
    return name.upper()


_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=")


def check_settings_file(path: Path) -> None:
    """Refuse a settings file that s3vl would misread: a line that is not ``KEY=value`` (or blank,
    or a comment), or an ``S3VL_`` key that is not a setting (a typo would otherwise be ignored)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{CONFIG_FILE_ENV}={path}: cannot read it: {exc}") from None
    known = {f"S3VL_{name.upper()}" for name in Settings.model_fields}
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _LINE.match(line)
        if match is None:
            raise ConfigError(f"{path}, line {number}: {line.strip()[:60]!r} is not KEY=value")
        key = match.group(1)
        if key.upper().startswith("S3VL_") and key.upper() not in known and key.upper() != CONFIG_FILE_ENV:
            raise ConfigError(f"{path}, line {number}: {key} is not an s3vl setting")


def load_settings(flags: Mapping[str, str] | None = None, **overrides: object) -> Settings:
    """Read and validate the settings once; raise :class:`ConfigError` naming the bad setting.

    ``overrides`` are values from command-line flags (None = not given); they win over the
    environment. ``flags`` names the flag each override came from, for the error message.
    """
    env_file = os.environ.get(CONFIG_FILE_ENV)
    if env_file:
        if not Path(env_file).is_file():
            raise ConfigError(f"{CONFIG_FILE_ENV}={env_file}: no such file; point it at a KEY=value settings file")
        check_settings_file(Path(env_file))
    given: dict[str, Any] = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(_env_file=env_file, **given)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else ""
        message = first["msg"].removeprefix("Value error, ")
        value = first.get("input")
        shown = repr(str(value) if isinstance(value, Path) else value)
        if field in given and flags and field in flags:
            raise ConfigError(f"invalid {flags[field]} {shown}: {message}") from None
        raise ConfigError(f"invalid setting {_env_name(first['loc'])}={shown}: {message}") from None
