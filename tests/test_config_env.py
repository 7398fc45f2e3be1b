"""``--config ENV``: a variable that is not of its setting's type is one line naming both."""

from __future__ import annotations

import os
import subprocess
import typing as t

import pytest

from tap_usersnap.cli import ConfigError
from tap_usersnap.reconcile import SETTING as RECONCILE_SETTING
from tap_usersnap.tap import TapUsersnap
from tests.cli import tap_command
from tests.helpers import JWT_ID, JWT_SECRET
from tests.test_cli import the_one_error_line

if t.TYPE_CHECKING:
    from tap_usersnap.sandbox import Sandbox

PREFIX = "TAP_USERSNAP_"
#: A value each type of setting cannot be read from, and what the line says it must be.
UNREADABLE = {
    "integer": ("1.5", "is not an integer"),
    "boolean": ("ture", "is not a boolean"),
    "object": ("{maps: none}", "is not a JSON object"),
    "array": ("state=done", "is not a JSON array"),  # of objects: a string array splits
}


def run_with_env(sandbox: Sandbox, **variables: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(PREFIX)}
    env |= {
        f"{PREFIX}JWT_ID": JWT_ID,
        f"{PREFIX}JWT_SECRET": JWT_SECRET,
        f"{PREFIX}API_URL": sandbox.url,
    }
    env |= {PREFIX + name.upper(): value for name, value in variables.items()}
    return subprocess.run(
        [*tap_command(), "--config", "ENV"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )


@pytest.mark.parametrize(
    ("setting", "value", "said"),
    [
        pytest.param("page_size", "abc", "is not an integer", id="page_size-abc"),
        pytest.param(RECONCILE_SETTING, "maybe", "is not a boolean", id="reconcile-maybe"),
        pytest.param("filters", "state=done", "is not a JSON array", id="filters-not-json"),
        pytest.param("stream_maps", "{x", "is not a JSON object", id="stream_maps-not-json"),
        pytest.param("page_size", "0", "minimum", id="page_size-0"),
        pytest.param("project_ids", "[1, 2]", "is not of type 'string'", id="project_ids-ints"),
        pytest.param("start_date", "yesterday", "does not match", id="start_date-not-a-date"),
    ],
)
def test_a_bad_variable_is_one_line_naming_it_and_its_setting(
    sandbox: Sandbox, setting: str, value: str, said: str
):
    done = run_with_env(sandbox, **{setting: value})
    assert done.returncode == 1
    line = the_one_error_line(done.stderr)
    assert PREFIX + setting.upper() in line
    assert repr(setting) in line
    assert said in line
    assert sandbox.requests == []


def settings_of_every_type() -> list[tuple[str, str]]:
    """Every setting ``--about`` lists that a variable can hold unreadably, and its type."""
    schema = TapUsersnap.config_jsonschema
    TapUsersnap.append_builtin_config(schema)
    kinds = {name: set(s.get("type", [])) - {"null"} for name, s in schema["properties"].items()}
    string_arrays = {
        name
        for name, s in schema["properties"].items()
        if s.get("items", {}).get("type") in ("string", ["string"])
    }
    return [
        (name, kind)
        for name, types in kinds.items()
        for kind in types
        if kind in UNREADABLE and name not in string_arrays
    ]


@pytest.mark.parametrize(("setting", "kind"), settings_of_every_type())
def test_every_typed_setting_names_its_unreadable_variable(
    monkeypatch: pytest.MonkeyPatch, setting: str, kind: str
):
    value, said = UNREADABLE[kind]
    monkeypatch.setenv(PREFIX + setting.upper(), value)
    monkeypatch.setenv(f"{PREFIX}JWT_ID", JWT_ID)
    monkeypatch.setenv(f"{PREFIX}JWT_SECRET", JWT_SECRET)
    with pytest.raises(ConfigError) as refused:
        TapUsersnap(config={}, parse_env_config=True)
    assert str(refused.value).startswith(f"The environment variable {PREFIX}{setting.upper()}")
    assert repr(setting) in str(refused.value)
    assert said in str(refused.value)
    assert value not in str(refused.value)


def test_every_type_of_setting_is_tried():
    kinds = {kind for _, kind in settings_of_every_type()}
    assert kinds == set(UNREADABLE)


@pytest.mark.parametrize(
    "secret",
    [
        pytest.param("", id="empty"),
        pytest.param('{"secret-in-json": 0123456789', id="json-cut"),
        pytest.param("[secret-in-brackets-0123456789", id="bracket"),
        pytest.param("12345678901234567890123456789012", id="digits"),
        pytest.param("true", id="a-boolean-word"),
        pytest.param("  secret with spaces 0123456789  ", id="spaces"),
    ],
)
def test_an_odd_secret_from_the_environment_is_never_printed(sandbox: Sandbox, secret: str):
    done = run_with_env(sandbox, jwt_secret=secret)
    assert done.returncode == 1
    assert "jwt_secret" in the_one_error_line(done.stderr)  # refused: by the schema or the API
    if secret.strip():
        assert secret.strip() not in done.stderr
