"""Crashes: SIGKILL the tap anywhere, resume from its last STATE, lose nothing."""

from __future__ import annotations

import io
import json
import os
import random
import signal
import subprocess
import threading
import time
import typing as t
from contextlib import redirect_stdout
from dataclasses import dataclass, field

import pytest

from tap_usersnap.errors import Interrupted
from tap_usersnap.state import RESUME_KEY, normalize_timestamp, state_problem
from tap_usersnap.streams import MAX_CURSOR_RESTARTS
from tap_usersnap.tap import TapUsersnap
from tests.cli import run_tap, tap_command, write_json
from tests.helpers import base_config, sandbox_feedbacks, sync

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
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, errors="replace"
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


@dataclass
class Stopped:
    code: int
    records: list[str]
    state: dict[str, t.Any] | None


def run_and_signal(
    tmp_path: Path,
    config: dict[str, t.Any],
    state: dict[str, t.Any] | None,
    signum: int,
    after_seconds: float,
) -> Stopped:
    """Start the tap; once it writes, send it ``signum`` after ``after_seconds``; keep its output.

    (Before its first message, the tap is still importing: Python's own handling applies.)
    """
    command = [*tap_command(), "--config", str(write_json(tmp_path / "config.json", config))]
    if state is not None:
        command += ["--state", str(write_json(tmp_path / "state.json", state))]
    stopped = Stopped(0, [], state)
    with (
        (tmp_path / "stderr.txt").open("w+", encoding="utf-8") as stderr,
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, text=True) as process,
    ):
        assert process.stdout is not None
        timer = threading.Timer(after_seconds, process.send_signal, args=(signum,))
        try:
            for line in process.stdout:
                if not timer.is_alive() and not timer.finished.is_set():
                    timer.start()
                message = json.loads(line)  # a line cut in half fails here
                if message["type"] == "RECORD" and message["stream"] == "feedbacks":
                    stopped.records.append(message["record"]["feedback_id"])
                elif message["type"] == "STATE":
                    stopped.state = message["value"]
            stopped.code = process.wait(timeout=60)
        finally:
            timer.cancel()
        stderr.seek(0)
        errors = stderr.read()
    assert "Traceback" not in errors, errors
    return stopped


@pytest.mark.parametrize(
    ("sizes", "page_size", "latency_ms", "window"),
    [
        pytest.param([200, 100, 50], 1, 15, 1.2, id="pages-of-1"),
        pytest.param([450, 250, 100], 100, 300, 1.5, id="pages-of-100"),
    ],
)
def test_signals_at_random_instants_lose_nothing(
    tmp_path: Path,
    make_sandbox: t.Callable[..., Sandbox],
    sizes: list[int],
    page_size: int,
    latency_ms: float,
    window: float,
):
    sandbox = make_sandbox(projects=3, feedbacks_per_project=sizes, seed=5)
    sandbox.faults.latency_ms = latency_ms
    config = base_config(sandbox.url, page_size=page_size)
    rng = random.Random(20261129 + page_size)
    delivered: list[str] = []
    state: dict[str, t.Any] | None = None
    codes: list[tuple[int, int]] = []
    for attempt in range(6):
        signum = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)[attempt % 3]
        stopped = run_and_signal(tmp_path, config, state, signum, rng.uniform(0, window))
        delivered += stopped.records
        state = stopped.state
        codes.append((signum, stopped.code))
    code, last = run_tap(tmp_path, config, state=state)
    delivered += last.ids()
    print(f"codes={codes} delivered={len(delivered)} unique={len(set(delivered))}")
    assert code == 0
    # 128 + signum from the tap; -signum if the signal came as Python was exiting after the
    # run, 0 if it came later still.
    assert all(code in {128 + signum, -signum, 0} for signum, code in codes), codes
    assert sum(code == 128 + signum for signum, code in codes) >= 3, codes
    assert set(delivered) == set(sandbox_feedbacks(sandbox))
    # The last STATE names the last record written: a stop costs a record, and the ties
    # with a finished project's bookmark (a few), never a page.
    assert len(delivered) - len(set(delivered)) <= 10 * len(codes)


@pytest.mark.parametrize("page_size", [1, 7, 100])
def test_the_resume_point_names_only_written_records_at_every_instant(
    sandbox: Sandbox, page_size: int
):
    """A STATE may be written between any two records (a signal): check there, all of them."""
    project_id = sandbox.store.project_ids()[0]
    tap = TapUsersnap(config=base_config(sandbox.url, page_size=page_size), parse_env_config=False)
    stream = tap.streams["feedbacks"]
    context = {"project_id": project_id}
    state = stream.get_context_state(context)
    written: dict[str, str] = {}
    for record in stream.get_records(context):
        # Suspended at the yield: ``record`` is not written yet.
        resume = state.get(RESUME_KEY)
        if written:
            assert resume is not None
            assert resume["after"] in written
            assert resume["newest"] == max(written.values())
        else:
            assert resume is None
        written[record["feedback_id"]] = record["updated_at"]
    assert len(written) == len(sandbox.store.feedbacks(project_id))
    assert RESUME_KEY not in state  # the project is done


def test_a_cursor_deleted_mid_run_restarts_the_project_once(
    make_sandbox: t.Callable[..., Sandbox], caplog: pytest.LogCaptureFixture
):
    sandbox = make_sandbox(projects=2, feedbacks_per_project=[120, 40])
    sandbox.faults.delete_cursors = 1  # the first page's cursor is gone when page two is asked
    result = sync(base_config(sandbox.url, page_size=10))
    assert sandbox.faults.delete_cursors == 0
    assert len(sandbox_feedbacks(sandbox)) == 159
    assert set(sandbox_feedbacks(sandbox)) <= set(result.ids())  # and the deleted one, read before
    warnings = [r for r in caplog.records if "refused a cursor" in r.getMessage()]
    assert len(warnings) == 1
    assert warnings[0].levelname == "WARNING"


def test_a_project_that_keeps_refusing_cursors_fails_after_bounded_restarts(
    tmp_path: Path, make_sandbox: t.Callable[..., Sandbox]
):
    sandbox = make_sandbox(projects=1, feedbacks_per_project=[120])
    project_id = sandbox.store.project_ids()[0]
    sandbox.faults.delete_cursors = 1000  # every cursor is gone by the time it is used
    code, result = run_tap(tmp_path, base_config(sandbox.url, page_size=10))
    first_pages = [
        path for _m, path, _s in sandbox.requests if path.endswith("/feedbacks?limit=10")
    ]
    assert len(first_pages) == 1 + MAX_CURSOR_RESTARTS
    restarts = [line for line in result.stderr.splitlines() if "reading it again" in line]
    assert [line.split("(restart ")[1] for line in restarts] == [
        f"{n} of {MAX_CURSOR_RESTARTS})" for n in range(1, MAX_CURSOR_RESTARTS + 1)
    ]
    assert code == 1
    assert project_id in result.stderr.splitlines()[-1]
    assert "bookmarks" in result.state
    assert "replication_key_value" not in result.bookmarks()[project_id]


@pytest.mark.parametrize(
    ("status", "refuse_after"),
    [
        pytest.param(403, 0, id="403-from-the-start"),
        pytest.param(404, 4, id="404-mid-project"),
        pytest.param(400, 5, id="deleted-mid-project"),  # 400 SITE_NOT_FOUND, as documented
    ],
)
def test_a_refused_project_leaves_the_others_synced_and_its_bookmark_unmoved(
    tmp_path: Path, make_sandbox: t.Callable[..., Sandbox], status: int, refuse_after: int
):
    sandbox = make_sandbox(projects=3, feedbacks_per_project=[60, 120, 40])
    config = base_config(sandbox.url, page_size=10)
    code, first = run_tap(tmp_path, config)
    assert code == 0
    first_ids, refused, last = sandbox.store.project_ids()
    for project_id in (first_ids, refused, last):
        sandbox.store.change_feedbacks(project_id, 30)
    sandbox.faults.refuse_project = refused
    sandbox.faults.refuse_status = status
    sandbox.faults.refuse_after = refuse_after

    code, second = run_tap(tmp_path, config, state=first.state)

    assert code == 1
    errors = [line for line in second.stderr.splitlines() if refused in line and "refused" in line]
    assert errors
    assert first_ids not in errors[-1]
    assert last not in errors[-1]
    for project_id in (first_ids, last):  # the other projects: all changes, new bookmarks
        changed = {
            f["feedback_id"]
            for f in sandbox.store.feedbacks(project_id)
            if normalize_timestamp(f["updated_at"])
            > first.bookmarks()[project_id]["replication_key_value"]
        }
        assert changed <= set(second.ids())
        assert (
            second.bookmarks()[project_id]["replication_key_value"]
            > first.bookmarks()[project_id]["replication_key_value"]
        )
    metrics_of = {r["project_id"] for r in second.records.get("project_metrics", [])}
    assert {first_ids, last} <= metrics_of
    if refuse_after == 0:
        assert refused not in metrics_of
    partition = second.bookmarks()[refused]
    assert partition["replication_key_value"] == first.bookmarks()[refused]["replication_key_value"]
    assert "progress_markers" not in partition
    if resume := partition.get(RESUME_KEY):
        assert resume["after"] in second.ids()

    sandbox.faults.refuse_project = None
    code, third = run_tap(tmp_path, config, state=second.state)
    assert code == 0
    delivered = set(second.ids()) | set(third.ids())
    assert {f["feedback_id"] for f in sandbox.store.feedbacks(refused)} <= delivered | {
        r["feedback_id"] for r in first.records["feedbacks"]
    }
    changed_refused = {
        f["feedback_id"]
        for f in sandbox.store.feedbacks(refused)
        if normalize_timestamp(f["updated_at"])
        > first.bookmarks()[refused]["replication_key_value"]
    }
    assert changed_refused <= delivered


def test_a_refusal_of_only_a_projects_lists_says_what_it_left_per_stream(
    tmp_path: Path, make_sandbox: t.Callable[..., Sandbox]
):
    sandbox = make_sandbox(projects=2, feedbacks_per_project=[20, 20])
    refused = sandbox.store.project_ids()[1]
    api_key = next(p["api_key"] for p in sandbox.store.projects() if p["project_id"] == refused)
    sandbox.faults.refuse_project = api_key  # its lists only: its feedback is read by id
    code, result = run_tap(tmp_path, base_config(sandbox.url))
    assert code == 1
    [error] = [line for line in result.stderr.splitlines() if "ERROR" in line]
    assert f"{refused} project_metrics: " in error
    assert f"{refused} project_assignees: " in error
    assert "not synced in this run" in error
    assert "bookmark" not in error  # its feedback was synced, and its bookmark moved
    assert sorted(result.ids()) == sorted(sandbox_feedbacks(sandbox))
    assert "replication_key_value" in result.bookmarks()[refused]


class SignallingOutput(io.BytesIO):
    """Standard output that receives a signal halfway through writing a given line."""

    def __init__(self, signum: int, at_line: int) -> None:
        super().__init__()
        self.signum = signum
        self.at_line = at_line
        self.sent = False

    def write(self, data: t.Any) -> int:
        if self.sent or self.getvalue().count(b"\n") + bytes(data).count(b"\n") < self.at_line:
            return super().write(data)
        self.sent = True
        half = len(data) // 2
        written = super().write(data[:half])
        signal.raise_signal(self.signum)  # the handler runs here, mid-message
        return written + super().write(data[half:])


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
@pytest.mark.parametrize("at_line", [3, 40, 260])
def test_a_signal_mid_message_completes_it_then_writes_the_last_state(
    shared_sandbox: Sandbox, signum: int, at_line: int
):
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    output = SignallingOutput(signum, at_line)
    stdout = io.TextIOWrapper(output, encoding="utf-8")
    try:
        tap = TapUsersnap(
            config=base_config(shared_sandbox.url, page_size=7), parse_env_config=False
        )
        with (
            redirect_stdout(stdout),
            pytest.raises(Interrupted) as stop,
        ):
            tap.sync_all()
    finally:
        for s, handler in handlers.items():
            signal.signal(s, handler)
    assert stop.value.signum == signum
    assert output.sent
    messages = [json.loads(line) for line in output.getvalue().decode().splitlines()]
    assert len(messages) > at_line  # the message the signal landed in is whole, then more
    assert messages[-1]["type"] == "STATE"
    written = [
        m["record"]["feedback_id"]
        for m in messages
        if m["type"] == "RECORD" and m["stream"] == "feedbacks"
    ]
    partitions = messages[-1]["value"].get("bookmarks", {}).get("feedbacks", {}).get("partitions")
    resumes = [p[RESUME_KEY]["after"] for p in partitions or [] if RESUME_KEY in p]
    assert set(resumes) <= set(written)
    if resumes:
        # Up to date: the last record written, or the one before if the signal came while
        # the last one was being written. A page of duplicates at most otherwise.
        assert resumes[-1] in written[-2:]


def test_a_signal_ends_the_run_at_once_while_every_request_hangs(
    tmp_path: Path, make_sandbox: t.Callable[..., Sandbox]
):
    """The main thread waits on a prefetch queue, workers on the network: neither holds it."""
    sandbox = make_sandbox(projects=2, feedbacks_per_project=[300, 100])
    config = write_json(tmp_path / "config.json", base_config(sandbox.url, page_size=10))
    with subprocess.Popen(
        [*tap_command(), "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            if '"type":"RECORD","stream":"feedbacks"' in line.replace(" ", ""):
                break
        sandbox.faults.hang_seconds = 60
        sandbox.faults.hang_every_n = 1
        while getattr(sandbox.faults, "_count", 0) == 0:  # a request now hangs
            time.sleep(0.01)
        process.send_signal(signal.SIGTERM)
        try:
            stdout, stderr = process.communicate(timeout=20)  # far less than the hang
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert process.returncode == 128 + signal.SIGTERM, stderr
    assert "Traceback" not in stderr
    last = json.loads(stdout.splitlines()[-1])
    assert last["type"] == "STATE"


@pytest.mark.parametrize(
    ("resume", "problem"),
    [
        pytest.param("abc", "naming a feedback id", id="not-an-object"),
        pytest.param({"newest": "2024-01-01T00:00:00Z"}, "naming a feedback id", id="no-after"),
        pytest.param({"after": "f1", "newest": "soon"}, "not a date-time", id="newest-not-a-date"),
        pytest.param(
            {"after": "f1", "newest": "9999-12-31T23:00:00-05:00"},
            "not a date-time",
            id="newest-beyond-year-9999",
        ),
        pytest.param({"after": "f1", "newest": None}, None, id="valid-nothing-written-yet"),
        pytest.param({"after": "f1", "newest": "2024-01-01T00:00:00Z"}, None, id="valid"),
    ],
)
def test_a_resume_point_is_checked_before_the_run(resume: t.Any, problem: str | None):
    partition = {"context": {"project_id": "p"}, RESUME_KEY: resume}
    found = state_problem(json.dumps({"bookmarks": {"feedbacks": {"partitions": [partition]}}}))
    if problem is None:
        assert found is None
    else:
        assert found is not None
        assert problem in found
