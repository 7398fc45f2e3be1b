"""The log filters: each SDK line they drop is gone from a real run, and only that line."""

from __future__ import annotations

import logging
import typing as t

from tap_usersnap.errors import UsersnapError
from tap_usersnap.logs import REPORTED_BY_THE_CLI, SDK_NOT_RESUMABLE, SDK_SYNC_FAILURE
from tests.cli import run_tap, write_json
from tests.helpers import base_config
from tests.test_cli import run_command, the_one_error_line

if t.TYPE_CHECKING:
    from pathlib import Path

    from tap_usersnap.sandbox import Sandbox


def test_an_expected_failure_in_a_stream_is_the_clis_line_alone(tmp_path: Path, sandbox: Sandbox):
    wrong = base_config(sandbox.url, jwt_secret="a-wrong-secret-that-is-long-enough-0123456789")
    code, result = run_tap(tmp_path, wrong)
    assert code == 1
    assert "jwt_id and jwt_secret" in the_one_error_line(result.stderr)
    assert SDK_SYNC_FAILURE not in result.stderr
    assert sandbox.requests  # it failed in a stream, where the SDK says its line


def test_the_end_of_a_dry_run_is_no_error(tmp_path: Path, sandbox: Sandbox):
    config_file = write_json(tmp_path / "config.json", base_config(sandbox.url))
    done = run_command("--config", str(config_file), "--test")
    assert done.returncode == 0, done.stderr
    assert SDK_SYNC_FAILURE not in done.stderr
    assert "ERROR" not in done.stderr


def test_a_bug_keeps_the_sdks_line():
    kept: list[logging.LogRecord] = []
    logger = logging.getLogger("tests.logs.bug")
    logger.addFilter(REPORTED_BY_THE_CLI)
    logger.addHandler(handler := logging.Handler())
    handler.emit = kept.append  # type: ignore[method-assign]
    for error in (KeyError("id"), UsersnapError("expected")):
        try:
            raise error
        except Exception:
            logger.exception(SDK_SYNC_FAILURE)
    assert [type(record.exc_info[1]) for record in kept if record.exc_info] == [KeyError]


def test_incremental_runs_do_not_warn_their_progress_is_not_resumable(
    tmp_path: Path, sandbox: Sandbox
):
    code, first = run_tap(tmp_path, base_config(sandbox.url, page_size=5))
    assert code == 0, first.stderr
    assert any(m["type"] == "STATE" for m in first.messages)
    assert SDK_NOT_RESUMABLE not in first.stderr
    assert "WARNING" not in first.stderr
