"""The message writer: records buffered, a STATE flushes them, a closed pipe ends quietly."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import typing as t

from singer_sdk.singerlib import RecordMessage, StateMessage

from tap_usersnap.writer import UsersnapMessageWriter
from tests.cli import tap_command, write_json
from tests.helpers import base_config

if t.TYPE_CHECKING:
    from pathlib import Path

    import pytest

    from tap_usersnap.sandbox import Sandbox


def readable(fd: int) -> bytes:
    """What a reader of the pipe can read right now."""
    try:
        return os.read(fd, 1 << 20)
    except BlockingIOError:
        return b""


def test_records_wait_in_the_buffer_until_a_state_flushes_them(
    monkeypatch: pytest.MonkeyPatch,
):
    read_fd, write_fd = os.pipe()
    os.set_blocking(read_fd, False)
    stdout = io.TextIOWrapper(io.BufferedWriter(io.FileIO(write_fd, "wb")), encoding="utf-8")
    monkeypatch.setattr(sys, "stdout", stdout)
    writer = UsersnapMessageWriter()
    try:
        for number in range(3):
            writer.write_message(RecordMessage(stream="feedbacks", record={"n": number}))
        assert readable(read_fd) == b""  # one system call for many records
        writer.write_message(StateMessage(value={"bookmarks": {"feedbacks": {"n": 2}}}))
        lines = [json.loads(line) for line in readable(read_fd).decode().splitlines()]
        assert [m["type"] for m in lines] == ["RECORD", "RECORD", "RECORD", "STATE"]
    finally:
        monkeypatch.undo()
        stdout.close()
        os.close(read_fd)


def test_a_reader_that_goes_away_ends_the_tap_quietly_and_non_zero(
    tmp_path: Path, shared_sandbox: Sandbox
):
    config = write_json(tmp_path / "config.json", base_config(shared_sandbox.url, page_size=50))
    with subprocess.Popen(
        [*tap_command(), "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:  # tap-usersnap ... | head -1
        assert process.stdout is not None
        first = process.stdout.readline()
        process.stdout.close()
        _, stderr = process.communicate(timeout=120)
    assert json.loads(first)["type"] == "SCHEMA"
    assert process.returncode == 128 + signal.SIGPIPE
    assert "Traceback" not in stderr
    assert "Exception ignored" not in stderr
    assert "Standard output was closed by its reader" in stderr
