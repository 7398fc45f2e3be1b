"""Reconcile (issue 10): one ACTIVATE_VERSION a stream, only after a complete read.

And completeness: every full read of a project is checked against the API's count.
"""

from __future__ import annotations

import logging
import subprocess
import threading
import time
import typing as t

import pytest

from tap_usersnap.completeness import ReadTally
from tap_usersnap.state import normalize_timestamp
from tests.cli import run_tap, tap_command, write_json
from tests.helpers import base_config, parse_messages, sandbox_feedbacks, sync
from tests.test_sync import full_table_catalog

if t.TYPE_CHECKING:
    from pathlib import Path

    from tap_usersnap.sandbox import Sandbox

STREAMS = {"projects", "feedbacks", "project_assignees", "project_metrics"}


def reconcile_config(sandbox: Sandbox, **overrides: t.Any) -> dict[str, t.Any]:
    return base_config(sandbox.url, emit_activate_version_messages=True, **overrides)


def activations(messages: list[dict[str, t.Any]]) -> list[tuple[int, str, int]]:
    """(position, stream, version) of each ACTIVATE_VERSION."""
    return [
        (index, message["stream"], message["version"])
        for index, message in enumerate(messages)
        if message["type"] == "ACTIVATE_VERSION"
    ]


def count_requests(sandbox: Sandbox) -> list[str]:
    return [path for _method, path, _status in sandbox.requests if path.endswith("/count")]


def test_a_complete_reconcile_activates_each_stream_once_after_every_record(sandbox: Sandbox):
    config = reconcile_config(sandbox, page_size=50)
    result = sync(config, catalog=full_table_catalog(config))

    activated = activations(result.messages)
    assert sorted(stream for _, stream, _ in activated) == sorted(STREAMS)
    (version,) = {version for _, _, version in activated}
    first_activation = min(index for index, _, _ in activated)
    records = [m for m in result.messages if m["type"] == "RECORD"]
    assert all(m["version"] == version for m in records)
    last_record = max(i for i, m in enumerate(result.messages) if m["type"] == "RECORD")
    assert first_activation > last_record
    assert set(result.ids()) == set(sandbox_feedbacks(sandbox))


def run_reconcile(
    tmp_path: Path, config: dict[str, t.Any], *args: str
) -> tuple[int, list[dict[str, t.Any]], str]:
    """The installed tap, with the catalog Meltano passes: exit code, messages, stderr."""
    done = subprocess.run(
        [
            *tap_command(),
            "--config",
            str(write_json(tmp_path / "config.json", config)),
            "--catalog",
            str(write_json(tmp_path / "catalog.json", full_table_catalog(config))),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return done.returncode, parse_messages(done.stdout), done.stderr


def test_a_reconcile_that_fails_midway_activates_nothing(sandbox: Sandbox, tmp_path: Path):
    def fail_once_a_page_was_served() -> None:
        """From the first page of feedback read on, every request fails: the run stops midway."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(
            "/feedbacks/filter?" in path and status == 200
            for _, path, status in list(sandbox.requests)
        ):
            time.sleep(0.005)
        sandbox.faults.update({"fail_forever_status": 500})

    sandbox.faults.update({"latency_ms": 100})
    failing = threading.Thread(target=fail_once_a_page_was_served, daemon=True)
    failing.start()
    returncode, messages, stderr = run_reconcile(
        tmp_path, reconcile_config(sandbox, page_size=50, max_retries=0, max_concurrency=1)
    )
    failing.join()

    assert returncode == 1, stderr[-3000:]
    assert "500" in stderr
    assert any(m["type"] == "RECORD" and m["stream"] == "feedbacks" for m in messages)
    assert activations(messages) == []


def test_a_reconcile_stopped_by_a_refused_project_activates_nothing(
    sandbox: Sandbox, tmp_path: Path
):
    refused = sandbox.store.project_ids()[1]
    sandbox.faults.update({"refuse_project": refused, "refuse_status": 403, "refuse_after": 1})
    returncode, messages, stderr = run_reconcile(tmp_path, reconcile_config(sandbox))

    assert returncode == 1
    assert "refused 1 project" in stderr
    feedbacks = [m for m in messages if m["type"] == "RECORD" and m["stream"] == "feedbacks"]
    others = set(sandbox.store.project_ids()) - {refused}
    assert others <= {m["record"]["project_id"] for m in feedbacks}
    assert activations(messages) == []


def test_a_reconcile_limited_by_project_ids_activates_nothing(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
):
    config = reconcile_config(sandbox, project_ids=sandbox.store.project_ids()[:2])
    result = sync(config, catalog=full_table_catalog(config))

    assert result.ids()
    assert activations(result.messages) == []
    assert any(
        r.levelno == logging.WARNING and "project_ids limits the run" in r.getMessage()
        for r in caplog.records
    )


def test_feedbacks_read_incrementally_are_not_activated(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
):
    result = sync(reconcile_config(sandbox))

    assert {stream for _, stream, _ in activations(result.messages)} == STREAMS - {"feedbacks"}
    assert any("no row of feedbacks is removed" in r.getMessage() for r in caplog.records)


def test_the_connection_test_activates_nothing(sandbox: Sandbox, tmp_path: Path):
    returncode, messages, stderr = run_reconcile(tmp_path, reconcile_config(sandbox), "--test")

    assert returncode == 0, stderr[-3000:]
    assert any(m["type"] == "RECORD" for m in messages)
    assert activations(messages) == []


def test_without_the_setting_nothing_is_activated_nor_versioned(sandbox: Sandbox):
    config = base_config(sandbox.url)
    result = sync(config, catalog=full_table_catalog(config))

    assert activations(result.messages) == []
    assert all("version" not in m for m in result.messages if m["type"] == "RECORD")


def test_a_project_gone_from_the_list_is_left_out_of_the_reconcile(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
):
    """Its rows are not sent, so the activation removes them; an incremental run keeps them."""
    gone = sandbox.store.project_ids()[0]
    incremental = sync(base_config(sandbox.url))
    sandbox.faults.update({"hide_project": gone})

    again = sync(base_config(sandbox.url), state=incremental.state)
    assert again.bookmarks()[gone] == incremental.bookmarks()[gone]
    (warning,) = [r for r in caplog.records if "no longer lists" in r.getMessage()]
    assert warning.levelno == logging.WARNING
    assert gone in warning.getMessage()
    assert "1 project(s)" in warning.getMessage()
    config = reconcile_config(sandbox)
    reconcile = sync(config, catalog=full_table_catalog(config))

    assert "feedbacks" in {stream for _, stream, _ in activations(reconcile.messages)}
    assert gone not in {record["project_id"] for record in reconcile.records["feedbacks"]}
    assert gone not in set(reconcile.ids("projects", "project_id"))


# --- completeness ------------------------------------------------------------------------


@pytest.mark.parametrize("latency_ms", [0, 60], ids=["fast", "slow"])
def test_every_full_read_is_checked_against_the_count_and_a_bookmarked_one_is_not(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture, latency_ms: int
):
    """One count a full read, however slow the API (a slow first page weighs a range split)."""
    sandbox.faults.latency_ms = latency_ms
    first = sync(base_config(sandbox.url))

    assert sorted(count_requests(sandbox)) == sorted(
        f"/v0.1/projects/{pid}/feedbacks/count" for pid in sandbox.store.project_ids()
    )
    assert not [r for r in caplog.records if "the API counted" in r.getMessage()]
    sandbox.reset_requests()
    sync(base_config(sandbox.url), state=first.state)
    assert count_requests(sandbox) == []


def test_a_count_that_differs_is_a_warning_and_in_the_summary(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO)
    sandbox.faults.update({"count_offset": 2})
    config = base_config(sandbox.url)
    result = sync(config, catalog=full_table_catalog(config))

    assert set(result.ids()) == set(sandbox_feedbacks(sandbox))
    project_id = sandbox.store.project_ids()[0]
    read = len(sandbox.store.feedbacks(project_id))
    warnings = [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and "the API counted" in r.getMessage()
    ]
    assert len(warnings) == len(sandbox.store.project_ids())
    assert f"Project {project_id}: read {read} feedbacks, the API counted {read + 2}" in (
        "\n".join(warnings)
    )
    (summary,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("feedbacks:")]
    assert f"project {project_id}: read {read:,}, the API counts {read + 2:,}" in summary


@pytest.mark.parametrize(
    ("sizes", "latency_ms"),
    [([120], 0), ([2_600], 60)],
    ids=["one-chain", "ranges"],
)
def test_a_chain_restarted_by_a_refused_cursor_counts_what_it_reads_again_once(
    make_sandbox: t.Callable[..., Sandbox],
    caplog: pytest.LogCaptureFixture,
    sizes: list[int],
    latency_ms: int,
):
    """Outside a reconcile a full read is counted, not kept by id (memory stays flat).

    The chain whose cursor was refused reads again from its first page: its pages read twice
    must not hide a shortfall, nor the other ranges' count be lost.
    """
    sandbox = make_sandbox(projects=1, feedbacks_per_project=sizes)
    sandbox.faults.latency_ms = latency_ms
    sandbox.faults.update({"delete_cursors": 1, "count_offset": 10})
    result = sync(base_config(sandbox.url, page_size=50))

    assert set(sandbox_feedbacks(sandbox)) <= set(result.ids())  # the cursor's is gone
    project_id = sandbox.store.project_ids()[0]
    assert len(sandbox.store.feedbacks(project_id)) == sizes[0] - 1
    restarts = [r for r in caplog.records if "refused a cursor" in r.getMessage()]
    assert len(restarts) == 1
    read, counted = sizes[0], sizes[0] + 10  # the cursor's feedback was read before it went
    assert f"Project {project_id}: read {read} feedbacks, the API counted {counted}" in caplog.text


def test_a_moved_cursor_found_where_it_is_now_hides_no_miss_from_the_count(
    make_sandbox: t.Callable[..., Sandbox], caplog: pytest.LogCaptureFixture
):
    """An API may find an edited cursor feedback at its new place, at the top of the list.

    Between two pages the cursor's feedback is edited, then an unread one: the next page
    starts below the cursor's new place, so that one is missed and the rest of the list is
    read again. Pages read twice must not make up the number.
    """
    sandbox = make_sandbox(projects=1, feedbacks_per_project=[300])
    store = sandbox.store
    project_id = store.project_ids()[0]
    list_feedbacks = store.list_feedbacks
    missed: list[str] = []

    def moved_cursor(
        project_id: str, limit: int = 10, after: str | None = None, before: str | None = None
    ) -> dict[str, t.Any]:
        if after and not missed:
            missed.append(store.feedbacks(project_id)[-1]["feedback_id"])  # the oldest: unread
            store.change_feedbacks(project_id, ids=[after, missed[0]])
            store._projects[project_id].prior.pop(after, None)  # found where it is now
        return list_feedbacks(project_id, limit, after, before)

    store.list_feedbacks = moved_cursor  # type: ignore[method-assign]
    result = sync(base_config(sandbox.url, page_size=50))

    assert missed  # the scenario happened
    assert missed[0] not in result.ids()
    assert len(result.ids()) > 300  # the list read again
    assert f"Project {project_id}: read 299 feedbacks, the API counted 300" in caplog.text


@pytest.mark.parametrize(
    ("chain", "undated"),
    [(None, {"updated_at": None}), (0, {"updated_at": None, "created_at": "not a date"})],
    ids=["the-list", "a-range"],
)
def test_a_feedback_without_a_date_read_again_counts_once(
    chain: int | None, undated: dict[str, t.Any]
):
    """It has no place in its chain's order: kept by id (such feedback is rare)."""
    read = ReadTally(distinct=False)
    dated = {"updated_at": "2024-01-03T00:00:00+00:00", "created_at": "2024-01-03T00:00:00Z"}
    page = [{"feedback_id": "a", **dated}, {"feedback_id": "b", **undated}]
    for _ in range(2):  # the chain's first page, then again after its cursor was refused
        for feedback in page:
            read.add(feedback, chain)
    assert len(read) == 2


def test_under_filters_the_filtered_count_is_asked(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
):
    filters = [{"filter_type": "state", "operator": "eq", "value": "done"}]
    result = sync(base_config(sandbox.url, filters=filters))

    assert 0 < len(result.ids()) < len(sandbox_feedbacks(sandbox))
    assert all(path.endswith("/feedbacks/filter/count") for path in count_requests(sandbox))
    assert len(count_requests(sandbox)) == len(sandbox.store.project_ids())
    assert not [r for r in caplog.records if "the API counted" in r.getMessage()]


def test_a_count_the_api_does_not_give_is_a_warning_not_a_failure(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
):
    sandbox.faults.update({"count_status": 404})
    result = sync(base_config(sandbox.url))

    assert set(result.ids()) == set(sandbox_feedbacks(sandbox))
    unchecked = [r for r in caplog.records if "count could not be read" in r.getMessage()]
    assert len(unchecked) == len(sandbox.store.project_ids())
    assert {r.levelno for r in unchecked} == {logging.WARNING}


# --- reconcile against the count ---------------------------------------------------------


def withheld_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r for r in caplog.records if "no row of feedbacks is removed, as the read" in r.getMessage()
    ]


def edit_after_the_first_page(
    monkeypatch: pytest.MonkeyPatch, sandbox: Sandbox, project_id: str, feedback_id: str
) -> list[str]:
    """Edit ``feedback_id`` once the first page of feedback was served; returns it, once done."""
    store = sandbox.store
    changed: list[str] = []

    def then_edit(serve: t.Callable[..., t.Any]) -> t.Callable[..., t.Any]:
        def serve_then_edit(*args: t.Any, **kwargs: t.Any) -> t.Any:
            page = serve(*args, **kwargs)
            if not changed:
                changed.extend(store.change_feedbacks(project_id, ids=[feedback_id]))
            return page

        return serve_then_edit

    for serve in ("list_feedbacks", "filter_feedbacks"):
        monkeypatch.setattr(store, serve, then_edit(getattr(store, serve)))
    return changed


def test_a_feedback_edited_during_the_reconcile_read_keeps_its_row(
    make_sandbox: t.Callable[..., Sandbox],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
):
    """Edited during the read, it keeps its place in created_at order: the read gets it.

    In the plain list (newest updated_at first) it would move above the cursor and be
    missed, and a feedback created between the count and the first page would balance the
    count: read == counted, and ACTIVATE_VERSION would remove the edited row.
    """
    sandbox = make_sandbox(projects=1, feedbacks_per_project=[300])
    project_id = sandbox.store.project_ids()[0]
    store = sandbox.store
    edited = min(store.feedbacks(project_id), key=lambda f: f["updated_at"])["feedback_id"]
    created: list[str] = []
    count = store.count

    def count_then_create(project: str) -> int:
        """The count is taken, then a feedback is created: before the first page."""
        counted = count(project)
        if not created:
            created.extend(store.add_feedbacks(project, 1))
        return counted

    monkeypatch.setattr(store, "count", count_then_create)
    changed = edit_after_the_first_page(monkeypatch, sandbox, project_id, edited)
    config = reconcile_config(sandbox, page_size=50)
    result = sync(config, catalog=full_table_catalog(config))

    assert created  # the scenario happened
    assert changed == [edited]
    ids = result.ids()
    assert len(ids) == len(set(ids)) == 301  # every feedback once: read one more than counted
    assert set(ids) == set(sandbox_feedbacks(sandbox))
    (record,) = [r for r in result.records["feedbacks"] if r["feedback_id"] == edited]
    assert record["updated_at"] == normalize_timestamp(
        store.feedback(project_id, edited)["updated_at"]
    )
    assert {stream for _, stream, _ in activations(result.messages)} == STREAMS
    assert withheld_warnings(caplog) == []


def test_a_reconcile_under_start_date_reads_whole_and_keeps_a_row_edited_meanwhile(
    make_sandbox: t.Callable[..., Sandbox],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
):
    """start_date limits what is sent, not what is read: a chain down to it misses an edit."""
    sandbox = make_sandbox(projects=1, feedbacks_per_project=[300])
    project_id = sandbox.store.project_ids()[0]
    by_age = sorted(
        sandbox.store.feedbacks(project_id), key=lambda f: normalize_timestamp(f["updated_at"])
    )
    start_date = normalize_timestamp(by_age[150]["updated_at"])
    edited = by_age[150]["feedback_id"]  # the last one a chain down to start_date reads
    changed = edit_after_the_first_page(monkeypatch, sandbox, project_id, edited)
    config = reconcile_config(sandbox, page_size=50, start_date=start_date)
    result = sync(config, catalog=full_table_catalog(config))

    assert changed == [edited]  # the scenario happened
    ids = result.ids()
    assert len(ids) == len(set(ids))
    assert set(ids) == {
        f["feedback_id"]
        for f in sandbox.store.feedbacks(project_id)
        if normalize_timestamp(f["updated_at"]) >= t.cast("str", start_date)
    }
    assert edited in ids
    assert {stream for _, stream, _ in activations(result.messages)} == STREAMS
    assert withheld_warnings(caplog) == []  # every feedback read: 300 of 300


@pytest.mark.parametrize(
    ("faults", "reason"),
    [
        ({"count_offset": 50}, "read 120 of 170"),
        ({"count_status": 404}, "read 120, the count could not be read"),
        # Pages read again after a cursor restart: the duplicates must not hide the 10 missing.
        ({"delete_cursors": 1, "count_offset": 10}, "read 120 of 130"),
    ],
    ids=["api-drops-items", "no-count", "cursor-restart"],
)
def test_a_read_short_of_the_count_withholds_only_the_feedbacks_activation(
    make_sandbox: t.Callable[..., Sandbox],
    caplog: pytest.LogCaptureFixture,
    faults: dict[str, t.Any],
    reason: str,
):
    sandbox = make_sandbox(projects=1, feedbacks_per_project=[120])
    project_id = sandbox.store.project_ids()[0]
    sandbox.faults.update(faults)
    config = reconcile_config(sandbox, page_size=50)
    result = sync(config, catalog=full_table_catalog(config))

    assert set(sandbox_feedbacks(sandbox)) <= set(result.ids())  # the cursor's may be gone
    assert {stream for _, stream, _ in activations(result.messages)} == STREAMS - {"feedbacks"}
    (warning,) = withheld_warnings(caplog)
    assert f"project {project_id}: {reason}" in warning.getMessage()


def test_an_empty_project_list_activates_nothing(
    make_sandbox: t.Callable[..., Sandbox], caplog: pytest.LogCaptureFixture
):
    sandbox = make_sandbox(projects=1, feedbacks_per_project=[10])
    sandbox.faults.update({"hide_project": sandbox.store.project_ids()[0]})
    config = reconcile_config(sandbox)
    result = sync(config, catalog=full_table_catalog(config))

    assert result.ids() == []
    assert activations(result.messages) == []
    (warning,) = [r for r in caplog.records if "listed no project" in r.getMessage()]
    assert warning.levelno == logging.WARNING


def test_a_project_listed_without_api_key_withholds_the_activation_of_its_lists(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
):
    """Its assignees and metrics cannot be asked for: ACTIVATE_VERSION would remove their rows."""
    keyless = sandbox.store.project_ids()[1]
    sandbox.faults.update({"no_api_key_project": keyless})
    config = reconcile_config(sandbox)
    result = sync(config, catalog=full_table_catalog(config))

    assert {stream for _, stream, _ in activations(result.messages)} == {"projects", "feedbacks"}
    for stream in ("project_assignees", "project_metrics"):
        listed = {record["project_id"] for record in result.records[stream]}
        assert listed == set(sandbox.store.project_ids()) - {keyless}
    (warning,) = [r for r in caplog.records if "Reconcile: no row of" in r.getMessage()]
    assert warning.levelno == logging.WARNING
    assert "no row of project_assignees, project_metrics is removed" in warning.getMessage()
    assert f"project {keyless} is listed without api_key" in warning.getMessage()
    assert set(result.ids()) == set(sandbox_feedbacks(sandbox))  # its feedback is read by id


def test_a_project_list_that_says_has_more_activates_nothing(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    """GET /projects has no pagination: projects past its first answer would lose their rows."""
    list_projects = sandbox._routes[("GET",)]

    def more_than_listed(call: t.Any) -> tuple[int, t.Any]:
        status, data = list_projects(call)
        return status, {**data, "has_more": True}

    monkeypatch.setitem(sandbox._routes, ("GET",), more_than_listed)
    config = reconcile_config(sandbox)
    result = sync(config, catalog=full_table_catalog(config))

    assert set(result.ids()) == set(sandbox_feedbacks(sandbox))
    assert activations(result.messages) == []
    (warning,) = [r for r in caplog.records if "Reconcile: no row of" in r.getMessage()]
    assert warning.levelno == logging.WARNING
    for stream in STREAMS:
        assert stream in warning.getMessage()
    assert "GET /projects listed only its first 3 projects" in warning.getMessage()


@pytest.mark.parametrize(
    ("projects_map", "read"),
    [(None, 0), ({"__filter__": "project_id != '{skipped}'"}, 2)],
    ids=["projects-removed", "one-project-filtered"],
)
def test_a_stream_map_on_projects_withholds_the_activation_of_the_lists_it_skips(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture, projects_map: t.Any, read: int
):
    """The SDK syncs no list of a project record a stream map drops: none of them is whole."""
    skipped = sandbox.store.project_ids()[0]
    if projects_map is not None:
        projects_map = {"__filter__": projects_map["__filter__"].format(skipped=skipped)}
    config = reconcile_config(sandbox, stream_maps={"projects": projects_map})
    result = sync(config, catalog=full_table_catalog(config))

    read_projects = {record["project_id"] for record in result.records.get("feedbacks", [])}
    assert len(read_projects) == read  # the SDK's doing
    assert skipped not in read_projects
    activated = {stream for _, stream, _ in activations(result.messages)}
    assert activated == ({"projects"} if read else set())  # a removed stream has no table
    (warning,) = [r for r in caplog.records if "stream map that filters" in r.getMessage()]
    assert f"feedbacks read {read} of the 3 projects listed" in warning.getMessage()
    assert "no row of feedbacks, project_assignees, project_metrics is removed" in caplog.text


def test_without_stream_maps_every_list_reads_every_project(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
):
    result = sync(base_config(sandbox.url))
    assert {r["project_id"] for r in result.records["project_metrics"]} == set(
        sandbox.store.project_ids()
    )
    assert "stream map that filters" not in caplog.text


def a_tie_across_pages(
    feedbacks: list[dict[str, t.Any]], created_first: int
) -> tuple[int, dict[str, t.Any], dict[str, t.Any]]:
    """A page size and two feedbacks created at the same instant, on two pages in a row.

    In the sandbox's created_at order (newest first, ties by updated_at), once
    ``created_first`` feedbacks are created above them: ``last`` ends a page, ``next_``
    begins the next one.
    """
    order = sorted(
        feedbacks,
        key=lambda f: (
            normalize_timestamp(f["created_at"]),
            normalize_timestamp(f["updated_at"]),
            f["feedback_id"],
        ),
        reverse=True,
    )
    for page_size in range(5, 100):
        for end in range(page_size - 1 - created_first, len(order) - 1, page_size):
            last, next_ = order[end], order[end + 1]
            if normalize_timestamp(last["created_at"]) == normalize_timestamp(next_["created_at"]):
                return page_size, last, next_
    msg = "no created_at tie across a page boundary in this data"
    raise AssertionError(msg)


def test_an_edit_that_moves_a_created_at_tie_above_the_cursor_keeps_its_row(
    make_sandbox: t.Callable[..., Sandbox],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
):
    """How the API orders created_at ties is undocumented: an edit may move a tied feedback
    above the cursor. A feedback created between the count and the first page balances the
    count; the plain list's top, read after the ranges, still gets the edited one.
    """
    sandbox = make_sandbox(projects=1, feedbacks_per_project=[300], seed=11)
    project_id = sandbox.store.project_ids()[0]
    store = sandbox.store
    page_size, last, moved = a_tie_across_pages(store.feedbacks(project_id), created_first=1)
    count, filter_feedbacks = store.count, store.filter_feedbacks
    created: list[str] = []
    edited: list[str] = []

    def count_then_create(project: str) -> int:
        counted = count(project)
        if not created:
            created.extend(store.add_feedbacks(project, 1))
        return counted

    def serve_then_edit(*args: t.Any, **kwargs: t.Any) -> t.Any:
        page = filter_feedbacks(*args, **kwargs)
        ids = [f["feedback_id"] for f in page["feedbacks"]]
        if not edited and ids and ids[-1] == last["feedback_id"]:
            edited.extend(store.change_feedbacks(project_id, ids=[moved["feedback_id"]]))
        return page

    monkeypatch.setattr(store, "count", count_then_create)
    monkeypatch.setattr(store, "filter_feedbacks", serve_then_edit)
    config = reconcile_config(sandbox, page_size=page_size)
    result = sync(config, catalog=full_table_catalog(config))

    assert created  # the scenario happened: one more than counted, and an edit mid-read
    assert edited == [moved["feedback_id"]]
    assert set(result.ids()) == set(sandbox_feedbacks(sandbox))  # the moved one included
    (record,) = [r for r in result.records["feedbacks"] if r["feedback_id"] == edited[0]][-1:]
    assert record["updated_at"] == normalize_timestamp(
        store.feedback(project_id, edited[0])["updated_at"]
    )
    assert "feedbacks" in {stream for _, stream, _ in activations(result.messages)}


def test_a_project_listed_without_project_id_withholds_nothing_and_blames_no_stream_map(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    """Nothing of it can be addressed, so no row of it can be in the warehouse."""
    nameless = sandbox.store.project_ids()[0]
    projects = sandbox.store.projects

    def one_without_an_id() -> list[dict[str, t.Any]]:
        return [{**p, "project_id": ""} if p["project_id"] == nameless else p for p in projects()]

    monkeypatch.setattr(sandbox.store, "projects", one_without_an_id)
    config = reconcile_config(sandbox)
    result = sync(config, catalog=full_table_catalog(config))

    assert {r["project_id"] for r in result.records["feedbacks"]} == set(
        sandbox.store.project_ids()
    ) - {nameless}
    assert {stream for _, stream, _ in activations(result.messages)} == STREAMS
    assert "stream map that filters" not in caplog.text


def test_the_reconcile_refuses_batch_messages(sandbox: Sandbox, tmp_path: Path):
    """A BATCH carries no version: the loader's ACTIVATE_VERSION would remove what it loads."""
    config = reconcile_config(
        sandbox,
        batch_config={
            "encoding": {"format": "jsonl", "compression": "gzip"},
            "storage": {"root": f"file://{tmp_path}"},
        },
    )
    catalog = full_table_catalog(reconcile_config(sandbox))
    code, result = run_tap(tmp_path, config, catalog=catalog)
    assert code == 1
    (line,) = [line for line in result.stderr.splitlines() if "ERROR" in line]
    assert "config['emit_activate_version_messages'] and config['batch_config']" in line
    assert "Traceback" not in result.stderr
    assert result.messages == []
    assert sandbox.requests == []
