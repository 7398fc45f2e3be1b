"""Crashes: SIGKILL the tap anywhere, resume from its last STATE, lose nothing."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
import typing as t
from dataclasses import dataclass, field

from tests.cli import run_tap, tap_command, write_json
from tests.helpers import base_config, sandbox_feedbacks

if t.TYPE_CHECKING:
    from pathlib import Path

    from tap_usersnap.sandbox import Sandbox


@dataclass
class Run:
    records: list[dict[str, t.Any]] = field(default_factory=list)
    state: dict[str, t.Any] | None = None
    finished: bool = False


def run_and_kill(
    tmp_path: Path, config: dict[str, t.Any], state: dict[str, t.Any] | None, kill_after: int
) -> Run:
    """Start the tap, SIGKILL it once it has written ``kill_after`` feedbacks, keep its output.

    Everything the tap wrote before dying counts as delivered, as it would to a target.
    """
    command = [*tap_command(), "--config", str(write_json(tmp_path / "config.json", config))]
    if state is not None:
        command += ["--state", str(write_json(tmp_path / "state.json", state))]
    run = Run(state=state)
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    ) as process:
        assert process.stdout is not None
        seen = 0
        for line in process.stdout:
            if not line.endswith("\n"):
                break  # cut mid-line by the kill
            message = json.loads(line)
            if message["type"] == "RECORD" and message["stream"] == "feedbacks":
                run.records.append(message["record"])
                seen += 1
                if seen == kill_after:
                    os.kill(process.pid, signal.SIGKILL)
            elif message["type"] == "STATE":
                run.state = message["value"]
        run.finished = process.wait() == 0
    return run


def test_resume_continues_inside_the_interrupted_project(
    tmp_path: Path, make_sandbox: t.Callable[..., Sandbox]
):
    sandbox = make_sandbox(projects=1, feedbacks_per_project=[2000])
    config = base_config(sandbox.url, page_size=50)
    killed = run_and_kill(tmp_path, config, None, kill_after=1000)
    assert not killed.finished
    partition = killed.state["bookmarks"]["feedbacks"]["partitions"][0]
    assert partition["resume"]["after"]
    assert "replication_key_value" not in partition  # no bookmark before the project is done

    sandbox.reset_requests()
    code, resumed = run_tap(tmp_path, config, state=killed.state)
    assert code == 0
    first_request = next(p for _m, p, _s in sandbox.requests if "/feedbacks" in p)
    assert f"after={partition['resume']['after']}" in first_request
    delivered = [r["feedback_id"] for r in killed.records + resumed.records["feedbacks"]]
    assert set(delivered) == set(sandbox_feedbacks(sandbox))
    assert len(delivered) <= 2000 + 2 * 50 + len(killed.records) - 1000
    final = resumed.bookmarks()[sandbox.store.project_ids()[0]]
    assert "resume" not in final
    assert final["replication_key_value"] == partition["resume"]["newest"]


def test_random_kills_lose_nothing_and_duplicate_little(
    tmp_path: Path, make_sandbox: t.Callable[..., Sandbox]
):
    sandbox = make_sandbox(projects=4, feedbacks_per_project=[800, 600, 400, 200], seed=3)
    config = base_config(sandbox.url, page_size=50)
    rng = random.Random(20261125)
    delivered: list[str] = []
    state: dict[str, t.Any] | None = None
    kills = 0
    while True:
        run = run_and_kill(tmp_path, config, state, kill_after=rng.randint(50, 300))
        delivered += [r["feedback_id"] for r in run.records]
        state = run.state
        if run.finished:
            break
        kills += 1
        assert kills < 40, "the sync never finishes"
    ratio = len(delivered) / len(set(delivered))
    print(
        f"kills={kills} delivered={len(delivered)} unique={len(set(delivered))} ratio={ratio:.3f}"
    )
    assert set(delivered) == set(sandbox_feedbacks(sandbox))
    assert kills >= 5
    assert ratio < 1.25


def test_changes_during_the_gap_are_caught_by_the_next_run(
    tmp_path: Path, make_sandbox: t.Callable[..., Sandbox]
):
    sandbox = make_sandbox(projects=1, feedbacks_per_project=[600])
    project_id = sandbox.store.project_ids()[0]
    config = base_config(sandbox.url, page_size=50)
    killed = run_and_kill(tmp_path, config, None, kill_after=300)
    emitted_ids = {r["feedback_id"] for r in killed.records}
    # Change records on both sides of the cursor: ten already read, ten not read yet.
    all_ids = [f["feedback_id"] for f in sandbox.store.feedbacks(project_id)]
    read = [fid for fid in all_ids if fid in emitted_ids][:10]
    unread = [fid for fid in all_ids if fid not in emitted_ids][:10]
    assert len(read) == len(unread) == 10
    changed = sandbox.store.change_feedbacks(project_id, ids=read + unread)
    code, resumed = run_tap(tmp_path, config, state=killed.state)
    assert code == 0
    code, after = run_tap(tmp_path, config, state=resumed.state)
    assert code == 0
    latest: dict[str, dict[str, t.Any]] = {}
    for record in killed.records + resumed.records["feedbacks"] + after.records["feedbacks"]:
        latest[record["feedback_id"]] = record
    current = {f["feedback_id"]: f for f in sandbox.store.feedbacks(project_id)}
    assert set(latest) == set(current)
    for feedback_id in changed:
        assert latest[feedback_id]["status_type"] == current[feedback_id]["status_type"]
        assert latest[feedback_id]["labels"] == current[feedback_id]["labels"]


def test_a_refused_resume_cursor_restarts_the_project(
    tmp_path: Path, make_sandbox: t.Callable[..., Sandbox]
):
    sandbox = make_sandbox(projects=1, feedbacks_per_project=[500])
    project_id = sandbox.store.project_ids()[0]
    config = base_config(sandbox.url, page_size=50)
    killed = run_and_kill(tmp_path, config, None, kill_after=220)
    cursor = killed.state["bookmarks"]["feedbacks"]["partitions"][0]["resume"]["after"]
    sandbox.store.delete_feedback(project_id, cursor)
    code, resumed = run_tap(tmp_path, config, state=killed.state)
    assert code == 0
    assert "refused" in resumed.stderr
    assert {r["feedback_id"] for r in resumed.records["feedbacks"]} == set(
        sandbox_feedbacks(sandbox)
    )


def test_a_server_that_never_recovers_fails_in_bounded_time_and_state_stays_safe(
    tmp_path: Path, make_sandbox: t.Callable[..., Sandbox]
):
    sandbox = make_sandbox(projects=2, feedbacks_per_project=[600, 300])
    config = base_config(sandbox.url, page_size=50, max_retries=2, request_timeout=2)
    command = [*tap_command(), "--config", str(write_json(tmp_path / "config.json", config))]
    started = time.monotonic()
    delivered: list[str] = []
    state = None
    with subprocess.Popen(  # the server breaks for good once 200 feedbacks are out
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        assert process.stdout is not None
        assert process.stderr is not None
        for line in process.stdout:
            message = json.loads(line)
            if message["type"] == "RECORD" and message["stream"] == "feedbacks":
                delivered.append(message["record"]["feedback_id"])
                if len(delivered) == 200:
                    sandbox.faults.fail_forever_status = 503
            elif message["type"] == "STATE":
                state = message["value"]
        stderr = process.stderr.read()
        assert process.wait() != 0
    assert time.monotonic() - started < 60
    assert "Usersnap API answered 503" in stderr
    assert len(set(delivered)) < 900

    sandbox.faults.fail_forever_status = None
    code, resumed = run_tap(tmp_path, config, state=state)
    assert code == 0
    assert set(delivered) | set(resumed.ids()) == set(sandbox_feedbacks(sandbox))
