"""The ``tap-usersnap`` command: settings checked before any request, clean output."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import typing as t

import pytest

from tap_usersnap.client import CONNECT_RETRIES
from tests.cli import run_tap, tap_command, write_json
from tests.helpers import JWT_SECRET, base_config, parse_messages, sandbox_feedbacks

if t.TYPE_CHECKING:
    from pathlib import Path

    from tap_usersnap.sandbox import Sandbox


@pytest.mark.parametrize(
    ("overrides", "setting"),
    [
        pytest.param({"jwt_id": None}, "jwt_id", id="missing-jwt_id"),
        pytest.param({"jwt_secret": ""}, "jwt_secret", id="empty-jwt_secret"),
        pytest.param({"jwt_id": 42}, "jwt_id", id="jwt_id-not-a-string"),
        pytest.param({"page_size": 0}, "page_size", id="page_size-0"),
        pytest.param({"page_size": 101}, "page_size", id="page_size-101"),
        pytest.param({"page_size": "ten"}, "page_size", id="page_size-not-int"),
        pytest.param({"api_url": "platform.usersnap.com"}, "api_url", id="api_url-no-scheme"),
        pytest.param({"start_date": "yesterday"}, "start_date", id="start_date-not-a-date"),
        pytest.param({"start_date": "2024-13-45"}, "start_date", id="start_date-impossible"),
        pytest.param(
            {"start_date": "0001-01-01T00:30:00+01:00"}, "start_date", id="start_date-before-year-1"
        ),
        pytest.param({"project_ids": "abc"}, "project_ids", id="project_ids-not-a-list"),
        pytest.param(
            {"filters": [{"filter_type": "colour", "operator": "eq", "value": "red"}]},
            "filters",
            id="filters-bad-type",
        ),
        pytest.param({"filters": [{"filter_type": "state"}]}, "filters", id="filters-incomplete"),
        pytest.param({"max_concurrency": 0}, "max_concurrency", id="max_concurrency-0"),
    ],
)
def test_bad_settings_fail_before_any_request(
    tmp_path: Path, sandbox: Sandbox, overrides: dict[str, t.Any], setting: str
):
    config = {**base_config(sandbox.url), **overrides}
    config = {k: v for k, v in config.items() if v is not None}
    code, result = run_tap(tmp_path, config)
    assert code == 1
    assert setting in the_one_error_line(result.stderr)
    assert sandbox.requests == []
    assert JWT_SECRET not in result.stderr


def test_cli_full_sync_emits_every_feedback_exactly_once(tmp_path: Path, shared_sandbox: Sandbox):
    code, result = run_tap(tmp_path, base_config(shared_sandbox.url, page_size=50))
    assert code == 0, result.stderr
    expected = sorted(
        f["feedback_id"]
        for pid in shared_sandbox.store.project_ids()
        for f in shared_sandbox.store.feedbacks(pid)
    )
    assert sorted(result.ids()) == expected
    assert JWT_SECRET not in result.stderr
    assert all(JWT_SECRET not in json.dumps(m) for m in result.messages)


def the_one_error_line(stderr: str) -> str:
    """What an expected failure prints: one ERROR line, no traceback."""
    errors = [line for line in stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1, stderr
    assert "Traceback" not in stderr
    return errors[0]


def retries_logged(stderr: str) -> int:
    return sum("Retrying in" in line for line in stderr.splitlines())


def run_command(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The installed command, with ``env`` added to the environment."""
    return subprocess.run(
        [*tap_command(), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, **env},
    )


def test_cli_wrong_secret_exits_non_zero_with_one_clear_line(tmp_path: Path, sandbox: Sandbox):
    wrong = "a-wrong-secret-that-is-long-enough-0123456789"
    code, result = run_tap(tmp_path, base_config(sandbox.url, jwt_secret=wrong))
    assert code == 1
    assert "jwt_id and jwt_secret" in the_one_error_line(result.stderr)
    assert wrong not in result.stderr
    assert len(sandbox.requests) == 1


def test_cli_unknown_project_id_is_one_line_naming_the_setting(tmp_path: Path, sandbox: Sandbox):
    code, result = run_tap(tmp_path, base_config(sandbox.url, project_ids=["no-such-project"]))
    assert code == 1
    line = the_one_error_line(result.stderr)
    assert "project_ids" in line
    assert "no-such-project" in line


def test_cli_missing_config_file_is_one_line_naming_it(tmp_path: Path):
    missing = tmp_path / "missing.json"
    done = run_command("--config", str(missing))
    assert done.returncode == 1
    line = the_one_error_line(done.stderr)
    assert str(missing) in line
    assert "--config" in line


def test_cli_malformed_config_json_is_one_line_naming_the_file(tmp_path: Path):
    config_file = tmp_path / "config.json"
    config_file.write_text(f'{{"jwt_id": "x", "jwt_secret": "{JWT_SECRET}",', encoding="utf-8")
    done = run_command("--config", str(config_file))
    assert done.returncode == 1
    line = the_one_error_line(done.stderr)
    assert str(config_file) in line
    assert "not valid JSON" in line
    assert JWT_SECRET not in done.stderr


def test_cli_connection_refused_is_one_line_after_a_few_quick_retries(tmp_path: Path):
    with socket.socket() as probe:  # a port nothing listens on once the probe is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code, result = run_tap(tmp_path, base_config(f"http://127.0.0.1:{port}/v0.1"))
    assert code == 1
    line = the_one_error_line(result.stderr)
    assert f"http://127.0.0.1:{port}" in line
    assert "api_url" in line
    assert retries_logged(result.stderr) == CONNECT_RETRIES


def test_cli_unresolvable_host_is_one_line_without_retries(tmp_path: Path):
    code, result = run_tap(tmp_path, base_config("https://api.usersnap.invalid/v0.1"))
    assert code == 1
    line = the_one_error_line(result.stderr)
    assert "api.usersnap.invalid" in line
    assert "api_url" in line
    assert retries_logged(result.stderr) == 0


def test_cli_server_failing_forever_is_one_line_after_the_retries(tmp_path: Path, sandbox: Sandbox):
    sandbox.faults.fail_forever_status = 503
    code, result = run_tap(tmp_path, base_config(sandbox.url, max_retries=2))
    assert code == 1
    line = the_one_error_line(result.stderr)
    assert "503" in line
    assert "max_retries" in line
    assert retries_logged(result.stderr) == 2
    assert JWT_SECRET not in result.stderr


@pytest.mark.parametrize(
    "secret",
    [
        pytest.param(12345678901234567890, id="a-number"),
        pytest.param(["secret-in-a-list-0123456789"], id="a-list"),
        pytest.param({"key": "secret-in-an-object-0123456789"}, id="an-object"),
    ],
)
def test_cli_secret_of_the_wrong_type_is_never_printed(
    tmp_path: Path, sandbox: Sandbox, secret: t.Any
):
    code, result = run_tap(tmp_path, base_config(sandbox.url, jwt_secret=secret))
    assert code == 1
    assert "jwt_secret" in the_one_error_line(result.stderr)
    for shown in {str(secret), repr(secret), json.dumps(secret)}:
        assert shown not in result.stderr
    assert "secret-in" not in result.stderr
    assert sandbox.requests == []


NOT_SHOWN = "(the value is, or holds, a secret: not shown)"
MISPLACED = "holds the value of jwt_secret (not shown)"


@pytest.mark.parametrize(
    ("secret", "settings", "said"),
    [
        pytest.param(JWT_SECRET, {"api_url": JWT_SECRET}, NOT_SHOWN, id="as-api_url"),
        pytest.param(JWT_SECRET, {"start_date": JWT_SECRET}, NOT_SHOWN, id="as-start_date"),
        pytest.param(JWT_SECRET, {"max_concurrency": JWT_SECRET}, NOT_SHOWN, id="as-a-number"),
        pytest.param(
            JWT_SECRET + "\n", {"start_date": JWT_SECRET + "\n"}, NOT_SHOWN, id="escaped-quoted"
        ),
        pytest.param(
            JWT_SECRET, {"api_url": f"https://{JWT_SECRET}/v0.1"}, MISPLACED, id="in-api_url"
        ),
        pytest.param(JWT_SECRET, {"project_ids": [JWT_SECRET]}, MISPLACED, id="in-project_ids"),
    ],
)
def test_cli_secret_pasted_into_another_setting_is_never_printed(
    tmp_path: Path, sandbox: Sandbox, secret: str, settings: dict[str, t.Any], said: str
):
    config = {**base_config(sandbox.url), "jwt_secret": secret, **settings}
    code, result = run_tap(tmp_path, config)
    assert code == 1
    line = the_one_error_line(result.stderr)
    assert f"config['{next(iter(settings))}']" in line
    assert said in line
    assert JWT_SECRET not in result.stderr
    assert sandbox.requests == []


def test_cli_debug_log_level_shows_the_traceback(tmp_path: Path, sandbox: Sandbox):
    config_file = tmp_path / "config.json"
    config_file.write_text(
        json.dumps(base_config(sandbox.url, project_ids=["no-such-project"])), encoding="utf-8"
    )
    done = run_command("--config", str(config_file), TAP_USERSNAP_LOGLEVEL="DEBUG")
    assert done.returncode == 1
    assert "Traceback" in done.stderr
    assert JWT_SECRET not in done.stderr


@pytest.mark.parametrize(
    "state_text",
    [
        pytest.param("{not json", id="not-json"),
        pytest.param("[1, 2]", id="not-an-object"),
        pytest.param('{"bookmarks": {"feedbacks": {"partitions": "oops"}}}', id="bad-partitions"),
        pytest.param(
            '{"bookmarks": {"feedbacks": {"partitions": [{"context": {"project_id": "p"}, '
            '"replication_key": "updated_at", "replication_key_value": "last tuesday"}]}}}',
            id="bookmark-not-a-date",
        ),
    ],
)
def test_malformed_state_fails_naming_it_before_any_request(
    tmp_path: Path, sandbox: Sandbox, state_text: str
):
    state_file = tmp_path / "state.json"
    state_file.write_text(state_text, encoding="utf-8")
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps(base_config(sandbox.url)), encoding="utf-8")
    done = subprocess.run(
        [*tap_command(), "--config", str(config_file), "--state", str(state_file)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    line = the_one_error_line(done.stderr)
    assert "Invalid value for '--state'" in line
    assert str(state_file) in line
    assert sandbox.requests == []


@pytest.mark.parametrize("option", ["--state", "--catalog"])
def test_a_missing_state_or_catalog_file_is_one_line_naming_it(
    tmp_path: Path, sandbox: Sandbox, option: str
):
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps(base_config(sandbox.url)), encoding="utf-8")
    missing = tmp_path / "no-such-file.json"
    done = run_command("--config", str(config_file), option, str(missing))
    assert done.returncode == 1
    line = the_one_error_line(done.stderr)
    assert f"Invalid value for '{option}'" in line
    assert str(missing) in line
    assert "Usage:" not in done.stderr
    assert sandbox.requests == []


def test_cli_connection_test_checks_the_credentials_quietly(tmp_path: Path, sandbox: Sandbox):
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps(base_config(sandbox.url)), encoding="utf-8")
    done = run_command("--config", str(config_file), "--test")
    assert done.returncode == 0, done.stderr
    assert [line for line in done.stderr.splitlines() if "ERROR" in line] == []
    wrong = {**base_config(sandbox.url), "jwt_secret": "a-wrong-secret-that-is-long-enough-0123"}
    config_file.write_text(json.dumps(wrong), encoding="utf-8")
    done = run_command("--config", str(config_file), "--test")
    assert done.returncode == 1
    assert "jwt_id and jwt_secret" in the_one_error_line(done.stderr)


def test_cli_https_to_a_plain_http_server_is_one_tls_line_without_retries(
    tmp_path: Path, sandbox: Sandbox
):
    api_url = sandbox.url.replace("http://", "https://")
    code, result = run_tap(tmp_path, base_config(api_url))
    assert code == 1
    line = the_one_error_line(result.stderr)
    assert "TLS handshake" in line
    assert "api_url" in line
    assert api_url.rsplit("/", 1)[0] in line
    assert retries_logged(result.stderr) == 0


def test_a_clean_run_and_its_rerun_print_no_warning(tmp_path: Path, sandbox: Sandbox):
    code, first = run_tap(tmp_path, base_config(sandbox.url))
    assert code == 0
    code, second = run_tap(tmp_path, base_config(sandbox.url), state=first.state)
    assert code == 0
    for run in (first, second):
        assert [line for line in run.stderr.splitlines() if "WARNING" in line] == []


@pytest.mark.parametrize(
    ("catalog_text", "problem"),
    [
        pytest.param("{not json", "not valid JSON", id="not-json"),
        pytest.param('{"streams": "feedbacks"}', "not a Singer catalog", id="streams-not-a-list"),
        pytest.param('{"streams": [{"schema": {}}]}', "not a Singer catalog", id="no-stream-id"),
    ],
)
def test_a_malformed_catalog_is_one_line_naming_it(
    tmp_path: Path, sandbox: Sandbox, catalog_text: str, problem: str
):
    catalog_file = tmp_path / "catalog.json"
    catalog_file.write_text(catalog_text, encoding="utf-8")
    config_file = write_json(tmp_path / "config.json", base_config(sandbox.url))
    done = run_command("--config", str(config_file), "--catalog", str(catalog_file))
    assert done.returncode == 1
    line = the_one_error_line(done.stderr)
    assert "Invalid value for '--catalog'" in line
    assert str(catalog_file) in line
    assert problem in line
    assert sandbox.requests == []


def test_a_discovered_catalog_is_accepted(tmp_path: Path, sandbox: Sandbox):
    config_file = write_json(tmp_path / "config.json", base_config(sandbox.url))
    discovered = run_command("--config", str(config_file), "--discover")
    assert discovered.returncode == 0, discovered.stderr
    catalog_file = tmp_path / "catalog.json"
    catalog_file.write_text(discovered.stdout, encoding="utf-8")
    done = run_command("--config", str(config_file), "--catalog", str(catalog_file))
    assert done.returncode == 0, done.stderr
    assert len(parse_messages(done.stdout)) > len(sandbox_feedbacks(sandbox))
