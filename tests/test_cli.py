"""The ``tap-usersnap`` command: settings checked before any request, clean output."""

from __future__ import annotations

import json
import subprocess
import typing as t

import pytest

from tests.cli import run_tap, tap_command
from tests.helpers import JWT_SECRET, base_config

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
    assert code != 0
    errors = [line for line in result.stderr.splitlines() if "ERROR" in line]
    assert any(setting in line for line in errors), result.stderr
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


def test_cli_wrong_secret_exits_non_zero_with_one_clear_line(tmp_path: Path, sandbox: Sandbox):
    wrong = "a-wrong-secret-that-is-long-enough-0123456789"
    code, result = run_tap(tmp_path, base_config(sandbox.url, jwt_secret=wrong))
    assert code != 0
    assert any("jwt_id and jwt_secret" in line for line in result.stderr.splitlines())
    assert wrong not in result.stderr
    assert len(sandbox.requests) == 1


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
    assert done.returncode != 0
    assert "Invalid value for '--state'" in done.stderr
    assert sandbox.requests == []
