"""A large project's full read as parallel created_at ranges: once, resumable, edit-safe."""

from __future__ import annotations

import json
import random
import threading
import time
import typing as t
from urllib.parse import parse_qs, urlsplit

import pytest

from tap_usersnap.ranges import split
from tap_usersnap.sandbox import store as sandbox_store
from tap_usersnap.sandbox.timestamps import real_now_us
from tap_usersnap.state import normalize_timestamp, state_problem
from tests.cli import run_tap
from tests.helpers import base_config, sandbox_feedbacks, sync
from tests.test_resume import run_and_kill
from tests.test_sync import full_table_catalog

if t.TYPE_CHECKING:
    from pathlib import Path

    from tap_usersnap.sandbox import Sandbox

LARGE = 3000  # 30 pages of 100: split into 7 ranges at max_concurrency 4
#: Ranges pay off only when a round trip is slow (``MIN_PAGE_SECONDS_TO_SPLIT``).
SLOW_MS = 60


def range_requests(sandbox: Sandbox) -> list[str]:
    """Page requests of the ranges (the filter endpoint, not its count or bound probes)."""
    return [
        path
        for method, path, _status in sandbox.requests
        if method == "POST" and "/feedbacks/filter?" in path and "limit=1&" not in path + "&"
    ]


def chains(sandbox: Sandbox, project_id: str) -> int:
    """Range chains started for a project: first pages, without a cursor."""
    return sum(
        1 for path in range_requests(sandbox) if f"/{project_id}/" in path and "after=" not in path
    )


def probes(sandbox: Sandbox) -> list[str]:
    """Requests for the oldest and newest created_at: made only to split."""
    return [path for _m, path, _s in sandbox.requests if "limit=1&" in path + "&"]


def test_split_covers_the_span_with_contiguous_ranges_open_at_both_ends():
    parts = split("2024-01-01T00:00:00Z", "2024-01-31T00:00:00.5Z", 3)
    assert parts[0][0] is None
    assert parts[-1][1] is None
    assert [lt for _gte, lt in parts[:-1]] == [gte for gte, _lt in parts[1:]]
    assert len(parts) == 3


def test_a_large_project_is_read_as_ranges_every_feedback_once(
    make_sandbox: t.Callable[..., Sandbox],
):
    sandbox = make_sandbox(projects=2, feedbacks_per_project=[LARGE, 120])
    sandbox.faults.latency_ms = SLOW_MS
    result = sync(base_config(sandbox.url, page_size=100, max_concurrency=4))

    ids = result.ids()
    assert len(ids) == len(set(ids))
    assert set(ids) == set(sandbox_feedbacks(sandbox))
    large, small = sandbox.store.project_ids()
    assert chains(sandbox, large) == 7
    assert chains(sandbox, small) == 0  # too small to split: the plain list, one chain
    assert len(range_requests(sandbox)) >= 30 + 2
    partition = result.bookmarks()[large]
    assert "resume" not in partition
    newest = max(normalize_timestamp(f["updated_at"]) for f in sandbox.store.feedbacks(large))
    assert partition["replication_key_value"] == newest


@pytest.mark.parametrize(
    ("reconcile", "filter_chains"),
    [(False, 0), (True, 1)],
    ids=["first-sync-reads-the-plain-list", "reconcile-reads-one-created-at-range"],
)
def test_a_fast_api_reads_one_chain(
    make_sandbox: t.Callable[..., Sandbox], reconcile: bool, filter_chains: int
):
    """Without latency the tap's own work is the bottleneck: splitting would only cost.

    A reconcile reads that chain in created_at order, where an edit moves nothing; other
    full reads take the plain list, whose paging is the documented one.
    """
    sandbox = make_sandbox(projects=1, feedbacks_per_project=[LARGE])
    config = base_config(sandbox.url, page_size=100, emit_activate_version_messages=reconcile)
    result = sync(config, catalog=full_table_catalog(config) if reconcile else None)
    assert len(result.ids()) == len(set(result.ids())) == LARGE  # each once
    assert set(result.ids()) == set(sandbox_feedbacks(sandbox))
    assert chains(sandbox, sandbox.store.project_ids()[0]) == filter_chains
    assert probes(sandbox) == []  # one range needs no bounds
    plain = [path for _m, path, _s in sandbox.requests if "/feedbacks?" in path]
    # A reconcile: the first page (the mark), then the top again after the read; else all.
    assert len(plain) == (2 if reconcile else 30)


def test_ranges_combine_with_the_filters(make_sandbox: t.Callable[..., Sandbox]):
    sandbox = make_sandbox(projects=1, feedbacks_per_project=[6000])
    sandbox.faults.latency_ms = SLOW_MS
    project_id = sandbox.store.project_ids()[0]
    wanted = {
        f["feedback_id"] for f in sandbox.store.feedbacks(project_id) if f["status_type"] == "open"
    }
    assert len(wanted) >= 2500  # enough to split
    filters = [{"filter_type": "state", "operator": "eq", "value": "open"}]

    result = sync(base_config(sandbox.url, page_size=100, filters=filters))

    assert len(result.ids()) == len(set(result.ids()))
    assert set(result.ids()) == wanted
    assert range_requests(sandbox)


def test_edits_during_a_range_read_are_caught_by_the_next_run(
    make_sandbox: t.Callable[..., Sandbox], monkeypatch: pytest.MonkeyPatch
):
    """An edit to a feedback already read, then a later edit read in the same run.

    The bookmark may not be the newest updated_at seen: the later edit is newer than the
    first, and the next run would stop before it. The API's clock runs an hour behind the
    tap's, so the SDK's signpost (the tap's clock at the start) hides nothing.
    """
    behind = 3600 * 1_000_000
    monkeypatch.setattr(sandbox_store, "real_now_us", lambda: real_now_us() - behind)
    sandbox = make_sandbox(projects=1, feedbacks_per_project=[LARGE])
    project_id = sandbox.store.project_ids()[0]
    oldest = min(sandbox.store.feedbacks(project_id), key=lambda f: f["created_at"])
    sandbox.faults.latency_ms = 2 * SLOW_MS
    edited: list[str] = []

    def edit_while_reading() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            served = [
                parse_qs(urlsplit(path).query).get("after", [""])[0]
                for path in range_requests(sandbox)
            ]
            if already_read := [after for after in served if after]:
                edited.append(already_read[0])  # a cursor names a feedback served before
                sandbox.store.change_feedbacks(project_id, ids=[already_read[0]])
                edited.append(oldest["feedback_id"])  # the last page of the first range
                sandbox.store.change_feedbacks(project_id, ids=[oldest["feedback_id"]])
                return
            time.sleep(0.01)

    editor = threading.Thread(target=edit_while_reading)
    editor.start()
    first = sync(base_config(sandbox.url, page_size=100))
    editor.join()
    sandbox.faults.latency_ms = 0
    read_before_edit, read_after_edit = edited
    by_id = {record["feedback_id"]: record for record in first.records["feedbacks"]}
    now = {f["feedback_id"]: f for f in sandbox.store.feedbacks(project_id)}
    # The scenario happened: the first edit came after its feedback was read, the second
    # before, and the second is the newer.
    assert by_id[read_before_edit]["updated_at"] < normalize_timestamp(
        now[read_before_edit]["updated_at"]
    )
    assert by_id[read_after_edit]["updated_at"] == normalize_timestamp(
        now[read_after_edit]["updated_at"]
    )

    second = sync(base_config(sandbox.url, page_size=100), state=first.state)

    assert {read_before_edit, read_after_edit} <= set(second.ids())
    assert len(second.ids()) < 200  # an incremental run, not a read of everything


def test_a_killed_range_read_resumes_each_range_after_what_was_written(
    tmp_path: Path, make_sandbox: t.Callable[..., Sandbox]
):
    sandbox = make_sandbox(projects=1, feedbacks_per_project=[LARGE])
    sandbox.faults.latency_ms = SLOW_MS
    config = base_config(sandbox.url, page_size=100)
    killed = run_and_kill(tmp_path, config, None, kill_after=1000)
    assert not killed.finished
    assert killed.state is not None
    resume = killed.state["bookmarks"]["feedbacks"]["partitions"][0]["resume"]
    assert len(resume["ranges"]) == 7
    assert any(part["after"] for part in resume["ranges"])

    sandbox.reset_requests()
    code, resumed = run_tap(tmp_path, config, state=killed.state)
    assert code == 0
    delivered = [r["feedback_id"] for r in killed.records + resumed.records["feedbacks"]]
    assert set(delivered) == set(sandbox_feedbacks(sandbox))
    # Each range goes on after its last written feedback: at most a page a range again.
    assert len(resumed.records["feedbacks"]) <= LARGE - len(killed.records) + 7 * 100
    final = resumed.bookmarks()[sandbox.store.project_ids()[0]]
    assert "resume" not in final
    assert final["replication_key_value"] == resume["newest"]


def test_random_kills_of_range_reads_lose_nothing(
    tmp_path: Path, make_sandbox: t.Callable[..., Sandbox]
):
    sandbox = make_sandbox(projects=2, feedbacks_per_project=[LARGE, 2600], seed=5)
    sandbox.faults.latency_ms = SLOW_MS
    config = base_config(sandbox.url, page_size=100)
    rng = random.Random(20261129)
    delivered: list[str] = []
    state: dict[str, t.Any] | None = None
    kills = 0
    while True:
        run = run_and_kill(tmp_path, config, state, kill_after=rng.randint(300, 1500))
        delivered += [r["feedback_id"] for r in run.records]
        state = run.state
        if run.finished:
            break
        kills += 1
        assert kills < 20, "the sync never finishes"
    assert set(delivered) == set(sandbox_feedbacks(sandbox))
    assert kills >= 2
    assert len(delivered) / len(set(delivered)) < 1.5


def test_a_range_resume_point_is_checked_before_the_run():
    def state_with(resume: t.Any) -> str:
        partition = {"context": {"project_id": "p"}, "resume": resume}
        return json.dumps({"bookmarks": {"feedbacks": {"partitions": [partition]}}})

    valid = {"newest": None, "ranges": [{"gte": None, "lt": "2024-01-01T00:00:00Z", "after": None}]}
    assert state_problem(state_with(valid)) is None
    broken = {"ranges": [{"gte": None, "lt": None, "after": 7}]}
    assert "'ranges' must be objects" in str(state_problem(state_with(broken)))


def test_a_first_page_without_dates_moves_no_bookmark(
    make_sandbox: t.Callable[..., Sandbox], monkeypatch: pytest.MonkeyPatch
):
    """The bookmark to be comes from the plain list's first page: none there, none set."""
    sandbox = make_sandbox(projects=1, feedbacks_per_project=[30])
    project_id = sandbox.store.project_ids()[0]
    list_feedbacks = sandbox.store.list_feedbacks

    def undated(*args: t.Any, **kwargs: t.Any) -> dict[str, t.Any]:
        page = t.cast("dict[str, t.Any]", list_feedbacks(*args, **kwargs))
        for feedback in page["feedbacks"]:
            feedback["updated_at"] = None
        return page

    monkeypatch.setattr(sandbox.store, "list_feedbacks", undated)
    config = base_config(sandbox.url, page_size=10)
    first = sync(config)

    assert sorted(first.ids()) == sorted(sandbox_feedbacks(sandbox))
    assert "replication_key_value" not in first.bookmarks()[project_id]
    again = sync(config, state=first.state)
    assert sorted(again.ids()) == sorted(sandbox_feedbacks(sandbox))  # read whole again
