"""Every wrong way to start the tap that a new user meets: one ERROR line naming the thing."""

from __future__ import annotations

import json
import subprocess
import typing as t

import pytest

from tests.cli import tap_command, write_json
from tests.helpers import JWT_SECRET, base_config, parse_messages
from tests.test_cli import run_command, the_one_error_line

if t.TYPE_CHECKING:
    from pathlib import Path

    from tap_usersnap.sandbox import Sandbox

NOT_UTF8 = b'{"jwt_secret": "' + JWT_SECRET.encode() + b'\xff\xfe"}'
A_CATALOG_STREAM = {"tap_stream_id": "nope", "schema": {}, "metadata": []}
FEEDBACKS_ALONE = {"tap_stream_id": "feedbacks", "schema": {}, "metadata": []}
PROJECTS = {"tap_stream_id": "projects", "schema": {}, "metadata": []}
SELECTED = [{"breadcrumb": [], "metadata": {"selected": "false"}}]
#: Catalogs the SDK fails on with a traceback, or misreads.
ODD = {
    "unreadable": {"streams": [{**PROJECTS, "metadata": [1, 2]}]},
    "twice": {"streams": [PROJECTS, PROJECTS]},
    "selected": {"streams": [{**PROJECTS, "metadata": SELECTED}]},
    "renamed": {"streams": [{**PROJECTS, "stream": "other"}]},
    "no_key": {"streams": [PROJECTS, {**FEEDBACKS_ALONE, "replication_key": "updated_at"}]},
}


# Each case: the command's arguments (after a good --config) and what the line must say;
# "{bad}" is the file at fault.
CASES = {
    "state-a-directory": (["--state", "{dir}"], "'--state'"),
    "catalog-a-directory": (["--catalog", "{dir}"], "'--catalog'"),
    "config-a-directory": (["--config", "{dir}"], "Is a directory"),
    "config-empty": (["--config", "{empty}"], "not valid JSON"),
    "config-a-list": (["--config", "{list}"], "holds no JSON object"),
    "config-not-utf8": (["--config", "{latin}"], "not UTF-8 text"),
    "config-under-a-file": (["--config", "{empty}/config.json"], "Not a directory"),
    "state-not-utf8": (["--state", "{latin}"], "not UTF-8 text"),
    "catalog-not-utf8": (["--catalog", "{latin}"], "not UTF-8 text"),
    "catalog-an-unknown-stream": (["--catalog", "{catalog}"], "no stream of this tap is called"),
    "catalog-of-no-stream": (["--catalog", "{no_stream}"], "a catalog of no stream"),
    "catalog-without-the-parent": (["--catalog", "{orphan}"], "'feedbacks' without 'projects'"),
    "catalog-the-sdk-cannot-read": (["--catalog", "{unreadable}"], "the Singer SDK can read"),
    "catalog-a-stream-twice": (["--catalog", "{twice}"], "'projects' listed more than once"),
    "catalog-selected-a-string": (["--catalog", "{selected}"], "'selected' of 'projects' is"),
    "catalog-another-stream-name": (["--catalog", "{renamed}"], "names another stream"),
    "catalog-no-replication-key": (["--catalog", "{no_key}"], "no property 'updated_at'"),
    "discover-config-not-utf8": (["--config", "{latin}", "--discover"], "not UTF-8 text"),
    "about-config-a-list": (["--about", "--config", "{list}"], "holds no JSON object"),
}


@pytest.mark.parametrize(("args", "said"), list(CASES.values()), ids=list(CASES))
def test_a_wrong_start_is_one_line_naming_what_is_wrong(
    tmp_path: Path, sandbox: Sandbox, args: list[str], said: str
):
    files = {
        "dir": tmp_path / "a-directory",
        "empty": tmp_path / "empty.json",
        "list": write_json(tmp_path / "list.json", [base_config(sandbox.url)]),
        "latin": tmp_path / "latin1.json",
        "catalog": write_json(tmp_path / "catalog.json", {"streams": [A_CATALOG_STREAM]}),
        "no_stream": write_json(tmp_path / "no-stream.json", {"streams": []}),
        "orphan": write_json(tmp_path / "orphan.json", {"streams": [FEEDBACKS_ALONE]}),
        **{name: write_json(tmp_path / f"{name}.json", catalog) for name, catalog in ODD.items()},
    }
    files["dir"].mkdir()
    files["empty"].write_text("", encoding="utf-8")
    files["latin"].write_bytes(NOT_UTF8)
    config = write_json(tmp_path / "config.json", base_config(sandbox.url))
    argv = [arg.format(**files) for arg in args]
    done = run_command(*(argv if "--config" in argv else ["--config", str(config), *argv]))
    assert done.returncode == 1
    line = the_one_error_line(done.stderr)
    assert said in line
    assert next(arg for arg in argv if arg.startswith(str(tmp_path))) in line
    assert JWT_SECRET not in done.stderr
    assert "Usage:" not in done.stderr
    assert sandbox.requests == []


def test_discovery_is_offline_so_wrong_credentials_do_not_stop_it(tmp_path: Path, sandbox: Sandbox):
    wrong = base_config(sandbox.url, jwt_secret="a-wrong-secret-that-is-long-enough-0123456789")
    done = run_command("--config", str(write_json(tmp_path / "config.json", wrong)), "--discover")
    assert done.returncode == 0, done.stderr
    streams = {stream["tap_stream_id"] for stream in json.loads(done.stdout)["streams"]}
    assert streams == {"projects", "feedbacks", "project_assignees", "project_metrics"}
    assert sandbox.requests == []


def test_config_files_given_twice_are_merged_the_later_winning(tmp_path: Path, sandbox: Sandbox):
    wrong = base_config(sandbox.url, jwt_secret="a-wrong-secret-that-is-long-enough-0123456789")
    first = write_json(tmp_path / "first.json", wrong)
    second = write_json(tmp_path / "second.json", {"jwt_secret": JWT_SECRET})
    done = run_command("--config", str(first), "--config", str(second))
    assert done.returncode == 0, done.stderr
    assert any(m["type"] == "RECORD" for m in parse_messages(done.stdout))


def test_a_config_through_a_pipe_is_read_once(tmp_path: Path, sandbox: Sandbox):
    """``--config <(...)`` keeps the secret off the disk; a pipe can be read only once."""
    config = write_json(tmp_path / "config.json", base_config(sandbox.url, page_size=100))
    done = subprocess.run(
        ["bash", "-c", '"$0" --config <(cat "$1")', *tap_command(), str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    records = [m for m in parse_messages(done.stdout) if m["type"] == "RECORD"]
    assert len([m for m in records if m["stream"] == "feedbacks"]) == 250 + 120 + 37


@pytest.mark.parametrize(
    ("stream_maps", "said"),
    [
        ({"feedbacks": {"x": "1 +"}}, "Failed to parse expression"),  # refused at start
        ({"feedbacks": {"__filter__": "nosuch == 1"}}, "Failed to evaluate"),  # at a record
    ],
    ids=["expression-that-does-not-parse", "filter-naming-no-field"],
)
def test_a_stream_map_the_sdk_cannot_apply_is_one_line(
    tmp_path: Path, sandbox: Sandbox, stream_maps: dict[str, t.Any], said: str
):
    config = write_json(tmp_path / "config.json", base_config(sandbox.url, stream_maps=stream_maps))
    done = run_command("--config", str(config))
    assert done.returncode == 1
    line = the_one_error_line(done.stderr)
    assert said in line
    assert "check the setting stream_maps" in line


def test_a_mistyped_option_is_one_line(tmp_path: Path, sandbox: Sandbox):
    config = write_json(tmp_path / "config.json", base_config(sandbox.url))
    done = run_command("--conifg", str(config))
    assert done.returncode == 1
    assert "'--config'" in the_one_error_line(done.stderr)
    assert "Usage:" not in done.stderr


def test_a_failing_connection_test_leaves_no_file_open(tmp_path: Path, sandbox: Sandbox):
    """Meltano runs the tap with PYTHONWARNINGS=once: a file left open is a warning line."""
    wrong = base_config(sandbox.url, jwt_secret="a-wrong-secret-that-is-long-enough-0123456")
    args = ["--config", str(write_json(tmp_path / "config.json", wrong))]
    args += ["--state", str(write_json(tmp_path / "state.json", {}))]
    done = run_command(*args, "--test", PYTHONWARNINGS="once")
    assert done.returncode == 1
    assert "jwt_id and jwt_secret" in the_one_error_line(done.stderr)
    assert "ResourceWarning" not in done.stderr
