"""Running the installed ``tap-usersnap`` command, as Meltano does."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import typing as t
from pathlib import Path

from tests.helpers import SyncResult, parse_messages


def tap_command() -> list[str]:
    """The console script of the environment running the tests."""
    script = Path(sys.executable).with_name("tap-usersnap")
    return [str(script)] if script.exists() else [shutil.which("tap-usersnap") or "tap-usersnap"]


def write_json(path: Path, value: t.Any) -> Path:
    path.write_text(json.dumps(value), encoding="utf-8")
    return path


def run_tap(
    tmp_path: Path,
    config: dict[str, t.Any],
    *args: str,
    state: dict[str, t.Any] | None = None,
    catalog: dict[str, t.Any] | None = None,
    timeout: float = 300,
) -> tuple[int, SyncResult]:
    """Run ``tap-usersnap --config ...`` to completion; return its exit code and output."""
    command = [*tap_command(), "--config", str(write_json(tmp_path / "config.json", config))]
    if state is not None:
        command += ["--state", str(write_json(tmp_path / "state.json", state))]
    if catalog is not None:
        command += ["--catalog", str(write_json(tmp_path / "catalog.json", catalog))]
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAP_USERSNAP_")}
    done = subprocess.run(
        [*command, *args], capture_output=True, text=True, timeout=timeout, env=env, check=False
    )
    messages = parse_messages(done.stdout) if not args else []
    return done.returncode, SyncResult(messages, done.stderr)
