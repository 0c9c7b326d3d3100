"""The CLI's answers to bad input: one line naming what is wrong, an exit status, never a traceback.

Everything here fails before any connection is made (flags and settings share one validation)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sync.cli import main


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse's own usage errors
        code = int(exc.code or 0)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


@pytest.mark.parametrize(("argv", "message"), [
    (["worker", "--batch-size", "99999999999"],
     "invalid --batch-size 99999999999: Input should be less than or equal to 1000"),
    (["worker", "--batch-size", "0"], "invalid --batch-size 0: Input should be greater than or equal to 1"),
    (["worker", "--batch-size", "-5"], "invalid --batch-size -5: Input should be greater than or equal to 1"),
    (["backfill", "products", "--batch-size", "0"], "invalid --batch-size 0"),
    (["worker", "--metrics-port", "99999"],
     "invalid --metrics-port 99999: Input should be less than or equal to 65535"),
    (["install-sql", "--database-url", "garbage"],
     "invalid --database-url 'garbage': must be a URL starting with postgresql://"),
    (["reconcile", "--metrics-file", "/no/such/dir/x.prom"],
     "invalid --metrics-file '/no/such/dir/x.prom': the folder /no/such/dir does not exist"),
    (["reconcile", "--segments", "17"], "invalid --segments 17: Input should be less than or equal to 16"),
    (["reconcile", "--max-reembed", "-1"], "invalid --max-reembed -1: Input should be greater than or equal to 0"),
    (["reconcile", "--max-delete-share", "2"],
     "invalid --max-delete-share 2.0: Input should be less than or equal to 1"),
])
def test_bad_flags_are_one_line_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    code, err = _run(capsys, *argv)
    assert code == 2
    assert err.strip().startswith(f"s3vl: error: {message}")
    assert len(err.strip().splitlines()) == 1


def test_a_flag_and_its_setting_are_validated_alike(capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("S3VL_WORKER_BATCH_SIZE", "0")
    code, err = _run(capsys, "worker", "--once")
    assert code == 2
    assert err.strip() == ("s3vl: error: invalid setting S3VL_WORKER_BATCH_SIZE='0': "
                           "Input should be greater than or equal to 1")


def test_an_unknown_option_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _run(capsys, "--bogus")
    assert code == 2
    assert "unrecognized arguments: --bogus" in err
    code, err = _run(capsys, "worker", "--bogus")
    assert code == 2
    assert "unrecognized arguments: --bogus" in err
    code, err = _run(capsys)
    assert code == 2
    assert "the following arguments are required: COMMAND" in err


@pytest.mark.parametrize(("argv", "message"), [
    (["reindex", "products", "--dimensions", "0"], "argument --dimensions: 0 is out of range: give 1 to 4096"),
    (["reindex", "products", "--dimensions", "x"], "argument --dimensions: 'x' is not a number"),
    (["reindex", "products", "--wait-seconds", "-1"], "argument --wait-seconds: -1 is out of range: give 0 to 604800"),
    (["demo", "--products", "5"], "argument --products: 5 is out of range: give 10 to 100000"),
])
def test_bad_numbers_in_other_flags_are_named(capsys: pytest.CaptureFixture[str], argv: list[str],
                                              message: str) -> None:
    code, err = _run(capsys, *argv)
    assert code == 2
    assert message in err


@pytest.mark.parametrize(("text", "message"), [
    ("S3VL_LOG_LEVEL=info\nthis is not a setting\n", "line 2: 'this is not a setting' is not KEY=value"),
    ("# settings\n\nS3VL_WORKR_BATCH_SIZE=5\n", "line 3: S3VL_WORKR_BATCH_SIZE is not an s3vl setting"),
])
def test_a_malformed_settings_file_names_the_line(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "s3vl.env"
    config.write_text(text)
    monkeypatch.setenv("S3VL_CONFIG_FILE", str(config))
    code, err = _run(capsys, "status")
    assert code == 2
    assert err.strip() == f"s3vl: error: {config}, {message}"


def test_a_settings_file_is_still_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from sync.config import load_settings

    config = tmp_path / "s3vl.env"
    config.write_text("# a comment\nexport S3VL_WORKER_BATCH_SIZE=7\nAWS_REGION=eu-west-1\nS3VL_LOG_LEVEL='debug'\n")
    monkeypatch.setenv("S3VL_CONFIG_FILE", str(config))
    settings = load_settings()
    assert (settings.worker_batch_size, settings.log_level) == (7, "debug")


def test_a_bug_is_one_line_too(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from sync.cli import schema as schema_cli

    def broken(*args: object) -> int:
        raise RuntimeError("something unexpected")

    monkeypatch.setattr(schema_cli.schema, "render_install_script", broken)
    code, err = _run(capsys, "install-sql", "--print")
    assert code == 1
    assert err.strip() == ("s3vl: internal error: RuntimeError: something unexpected "
                           "(run with --log-level debug for the traceback)")
