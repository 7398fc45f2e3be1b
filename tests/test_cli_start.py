"""A signal while the command is still starting ends it quietly: 128 + the signal, no traceback.

Each instant is found, not timed: the process is watched through ``/proc`` until it has
installed its handlers, or loaded a given extension module on its way through the SDK's
imports, or printed its first line.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import typing as t
from pathlib import Path

import pytest

from tests.cli import tap_command, write_json
from tests.helpers import base_config

if t.TYPE_CHECKING:
    from tap_usersnap.sandbox import Sandbox

#: Python catches SIGINT alone by default: SIGTERM caught means the entry point's handlers.
HANDLERS_INSTALLED = "handlers"
FIRST_LINE = "first line"
#: Extension modules the tap's imports load, in order, from ~5 % to ~90 % of start-up.
IMPORTING = ["_datetime", "rpds", "_ssl", "charset_normalizer", "_multiprocessing", "msgspec"]


def reached(pid: int, instant: str) -> bool:
    proc = Path(f"/proc/{pid}")
    if instant == HANDLERS_INSTALLED:
        status = (proc / "status").read_text()
        caught = int(status.split("SigCgt:")[1].split()[0], 16)
        return bool(caught & (1 << (signal.SIGTERM - 1)))
    return f"/{instant}" in (proc / "maps").read_text()


@pytest.mark.parametrize(
    "signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=["SIGINT", "SIGTERM", "SIGHUP"]
)
def test_a_signal_while_starting_ends_the_command_quietly(
    tmp_path: Path, sandbox: Sandbox, signum: int
):
    sandbox.faults.hang_seconds = 60  # a request never ends: the run cannot finish first
    sandbox.faults.hang_every_n = 1
    config = write_json(tmp_path / "config.json", base_config(sandbox.url))
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAP_USERSNAP_")}
    for instant in [HANDLERS_INSTALLED, *IMPORTING, FIRST_LINE]:
        with subprocess.Popen(
            [*tap_command(), "--config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        ) as process:
            assert process.stderr is not None
            if instant == FIRST_LINE:
                printed = process.stderr.readline()
            else:
                printed = ""
                while not reached(process.pid, instant):
                    assert process.poll() is None, f"ended before {instant}"
                    time.sleep(0.001)
            process.send_signal(signum)
            stderr = printed + process.stderr.read()
        assert process.returncode == 128 + signum, (instant, stderr)
        # Nothing but the tap's own progress, however far it got: no traceback, no
        # "Aborted!", no ERROR line.
        assert all(" | INFO " in line for line in stderr.splitlines()), (instant, stderr)


def ignores(pid: int, signum: int) -> bool:
    status = Path(f"/proc/{pid}/status").read_text()
    return bool(int(status.split("SigIgn:")[1].split()[0], 16) & (1 << (signum - 1)))


def test_under_nohup_sighup_is_ignored_from_start_to_end(
    tmp_path: Path, make_sandbox: t.Callable[..., Sandbox]
):
    """``nohup`` ignores SIGHUP so that a run outlives its session: the tap keeps it ignored."""
    sandbox = make_sandbox(projects=2, feedbacks_per_project=[300, 100])
    sandbox.faults.latency_ms = 20  # a run of a few seconds: the signals land inside it
    config = write_json(tmp_path / "config.json", base_config(sandbox.url, page_size=20))
    with subprocess.Popen(
        ["nohup", *tap_command(), "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as process:
        assert process.stdout is not None
        while not ignores(process.pid, signal.SIGHUP):  # nohup's first step
            assert process.poll() is None
            time.sleep(0.001)
        process.send_signal(signal.SIGHUP)  # starting
        lines = [process.stdout.readline()]  # written: the tap's own handlers are in place
        process.send_signal(signal.SIGHUP)
        lines += process.stdout.readlines()
    assert process.returncode == 0
    records = [line for line in lines if '"type":"RECORD","stream":"feedbacks"' in line]
    assert len(records) == 400
