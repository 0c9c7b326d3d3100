"""Settings: good values load, bad values stop with one line naming the setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from sync.config import load_settings
from sync.errors import ConfigError


def test_defaults_are_valid() -> None:
    settings = load_settings()
    assert settings.database_url is None
    assert settings.data_dir == Path(".s3vl")
    assert settings.dev_pg_port == 55432
    assert settings.aws_region == "us-west-2"


def test_environment_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("S3VL_DATABASE_URL", "postgresql://app@db:5432/app")
    monkeypatch.setenv("S3VL_DEV_PG_PORT", "6543")
    monkeypatch.setenv("AWS_REGION", "eu-central-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:45660/")
    monkeypatch.setenv("S3VL_LOG_LEVEL", "DEBUG")
    settings = load_settings()
    assert settings.database_url == "postgresql://app@db:5432/app"
    assert settings.dev_pg_port == 6543
    assert settings.aws_region == "eu-central-1"
    assert settings.aws_endpoint_url == "http://127.0.0.1:45660"
    assert settings.log_level == "debug"


def test_aws_default_region_is_a_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-southeast-2")
    assert load_settings().aws_region == "ap-southeast-2"
    monkeypatch.setenv("AWS_DEFAULT_REGION", "nowhere")
    with pytest.raises(ConfigError, match=r"^invalid setting AWS_DEFAULT_REGION='nowhere'"):
        load_settings()


def test_overrides_win_over_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("S3VL_DATA_DIR", "/from/env")
    assert load_settings(data_dir=Path("/from/flag")).data_dir == Path("/from/flag")
    assert load_settings(data_dir=None).data_dir == Path("/from/env")


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        (
            "S3VL_DATABASE_URL",
            "mysql://x@y/z",
            "invalid setting S3VL_DATABASE_URL='mysql://x@y/z': must be a URL starting with postgresql://",
        ),
        (
            "S3VL_DEV_PG_PORT",
            "80",
            "invalid setting S3VL_DEV_PG_PORT='80': Input should be greater than or equal to 1024",
        ),
        ("S3VL_DEV_PG_PORT", "many", "invalid setting S3VL_DEV_PG_PORT='many': Input should be a valid integer"),
        (
            "S3VL_LOG_LEVEL",
            "loud",
            "invalid setting S3VL_LOG_LEVEL='loud': Input should be 'debug', 'info', 'warning' or 'error'",
        ),
        ("AWS_REGION", "mars", "invalid setting AWS_REGION='mars': must be an AWS region name"),
        (
            "AWS_ENDPOINT_URL",
            "localhost:45660",
            "invalid setting AWS_ENDPOINT_URL='localhost:45660': must be an http(s) URL",
        ),
    ],
)
def test_bad_values_name_the_setting(monkeypatch: pytest.MonkeyPatch, name: str, value: str, expected: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as err:
        load_settings()
    message = str(err.value)
    assert message.startswith(expected), message
    assert "\n" not in message


def test_settings_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "s3vl.env"
    config.write_text("S3VL_DEV_ENDPOINT_PORT=47000\n")
    monkeypatch.setenv("S3VL_CONFIG_FILE", str(config))
    assert load_settings().dev_endpoint_port == 47000


def test_missing_settings_file_is_an_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("S3VL_CONFIG_FILE", str(tmp_path / "nope.env"))
    with pytest.raises(ConfigError, match=r"S3VL_CONFIG_FILE=.*no such file"):
        load_settings()


def test_cli_prints_one_line_and_exits_2(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from sync.cli import main

    monkeypatch.setenv("S3VL_DEV_PG_PORT", "0")
    assert main(["dev", "env"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("s3vl: error: invalid setting S3VL_DEV_PG_PORT='0'")
    assert len(err.splitlines()) == 1
