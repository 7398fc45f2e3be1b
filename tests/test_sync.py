"""End-to-end syncs of the tap against the sandbox over loopback."""

from __future__ import annotations

import copy
import json
import logging
import re
import typing as t
from collections import Counter
from datetime import datetime, timedelta

import pytest

from tap_usersnap.errors import UsersnapError
from tap_usersnap.streams import normalize_timestamp
from tap_usersnap.tap import TapUsersnap
from tests.helpers import (
    SyncResult,
    assert_records_match_schemas,
    base_config,
    sandbox_feedbacks,
    sync,
)

if t.TYPE_CHECKING:
    from tap_usersnap.sandbox import Sandbox


#: How every ``updated_at`` leaves the tap: UTC, microseconds, an explicit zone.
API_FORM = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00")


def feedback_requests(sandbox: Sandbox, project_id: str) -> list[str]:
    """The project's page requests (not its count)."""
    prefix = f"/v0.1/projects/{project_id}/feedbacks"
    return [
        path
        for _method, path, _status in sandbox.requests
        if path.startswith(prefix) and not path.endswith("/count")
    ]


def test_full_sync_emits_every_record_once_and_valid(shared_sandbox: Sandbox):
    result = sync(base_config(shared_sandbox.url))

    ids = result.ids()
    assert len(ids) == len(set(ids))
    assert set(ids) == set(sandbox_feedbacks(shared_sandbox))
    assert {p["project_id"] for p in result.records["projects"]} == set(
        shared_sandbox.store.project_ids()
    )
    assigned = Counter(r["project_id"] for r in result.records["project_assignees"])
    assert set(assigned) == set(shared_sandbox.store.project_ids())
    assert result.records["project_metrics"]
    assert_records_match_schemas(result)


def test_records_keep_fields_and_normalise_updated_at(shared_sandbox: Sandbox):
    result = sync(base_config(shared_sandbox.url))
    source = sandbox_feedbacks(shared_sandbox)
    for record in result.records["feedbacks"]:
        original = source[record["feedback_id"]]
        assert API_FORM.fullmatch(record["updated_at"])
        sent = datetime.fromisoformat(original["updated_at"].replace("Z", "+00:00"))
        assert datetime.fromisoformat(record["updated_at"]) == sent
        for key in ("client", "custom_data", "labels", "ordered_inputs", "screenshot"):
            assert record[key] == original[key]


def test_bookmark_per_project_is_newest_updated_at(shared_sandbox: Sandbox):
    result = sync(base_config(shared_sandbox.url))
    bookmarks = result.bookmarks()
    assert set(bookmarks) == set(shared_sandbox.store.project_ids())
    for project_id, partition in bookmarks.items():
        newest = max(
            normalize_timestamp(f["updated_at"]) for f in shared_sandbox.store.feedbacks(project_id)
        )
        assert partition["replication_key"] == "updated_at"
        assert partition["replication_key_value"] == newest
        assert "progress_markers" not in partition
        assert "resume" not in partition


def test_has_more_decides_even_when_next_is_present(sandbox: Sandbox):
    sync(base_config(sandbox.url, page_size=100))
    for project_id in sandbox.store.project_ids():
        total = len(sandbox.store.feedbacks(project_id))
        pages = [path for path in feedback_requests(sandbox, project_id) if "/count" not in path]
        assert len(pages) == max(1, -(-total // 100))


def test_incremental_sync_reads_only_what_changed(sandbox: Sandbox):
    first = sync(base_config(sandbox.url, page_size=25))
    project_id = sandbox.store.project_ids()[0]
    changed = sandbox.store.change_feedbacks(project_id, 6)
    added = sandbox.store.add_feedbacks(project_id, 4)
    sandbox.reset_requests()

    second = sync(base_config(sandbox.url, page_size=25), state=first.state)

    emitted = set(second.ids())
    assert set(changed) | set(added) <= emitted
    # Only the changes and records tied with an old bookmark come back.
    boundary = {
        f["feedback_id"]
        for pid, partition in first.bookmarks().items()
        for f in sandbox.store.feedbacks(pid)
        if normalize_timestamp(f["updated_at"]) == partition["replication_key_value"]
    }
    assert emitted <= set(changed) | set(added) | boundary
    source = sandbox_feedbacks(sandbox)
    for record in second.records["feedbacks"]:
        assert record["status_type"] == source[record["feedback_id"]]["status_type"]
    # About k / page_size + 1 pages for the changed project, one page for the others.
    assert len(feedback_requests(sandbox, project_id)) <= 10 // 25 + 2
    for other in sandbox.store.project_ids()[1:]:
        assert len(feedback_requests(sandbox, other)) == 1
    newest = max(normalize_timestamp(f["updated_at"]) for f in sandbox.store.feedbacks(project_id))
    # The SDK caps a bookmark at the sync's start (in ms), so a change made in the same
    # millisecond as the start is read again next time rather than risk skipping it.
    bookmark = second.bookmarks()[project_id]["replication_key_value"]
    assert first.bookmarks()[project_id]["replication_key_value"] < bookmark <= newest


def test_rerun_without_changes_sends_exactly_the_records_equal_to_the_bookmark(sandbox: Sandbox):
    first = sync(base_config(sandbox.url))
    second = sync(base_config(sandbox.url), state=first.state)
    for project_id, partition in first.bookmarks().items():
        emitted = {
            r["feedback_id"] for r in second.records["feedbacks"] if r["project_id"] == project_id
        }
        tied = {
            f["feedback_id"]
            for f in sandbox.store.feedbacks(project_id)
            if normalize_timestamp(f["updated_at"]) == partition["replication_key_value"]
        }
        assert tied  # at least the record that set the bookmark
        assert emitted == tied
    assert second.bookmarks() == first.bookmarks()


def test_start_date_bounds_a_sync_without_state(sandbox: Sandbox):
    project_id = sandbox.store.project_ids()[0]
    timestamps = sorted(
        normalize_timestamp(f["updated_at"]) for f in sandbox.store.feedbacks(project_id)
    )
    start_date = timestamps[len(timestamps) // 2]
    result = sync(base_config(sandbox.url, start_date=start_date, project_ids=[project_id]))
    emitted = result.records["feedbacks"]
    assert {r["feedback_id"] for r in emitted} == {
        f["feedback_id"]
        for f in sandbox.store.feedbacks(project_id)
        if normalize_timestamp(f["updated_at"]) >= start_date
    }
    full_pages = -(-len(timestamps) // 100)
    assert len(feedback_requests(sandbox, project_id)) <= full_pages


def test_project_ids_selects_projects(sandbox: Sandbox):
    wanted = sandbox.store.project_ids()[1]
    result = sync(base_config(sandbox.url, project_ids=[wanted]))
    assert {r["project_id"] for r in result.records["projects"]} == {wanted}
    assert {r["project_id"] for r in result.records["feedbacks"]} == {wanted}
    assert {r["project_id"] for r in result.records["project_metrics"]} == {wanted}


def test_unknown_project_id_fails_naming_it(sandbox: Sandbox):
    known = sandbox.store.project_ids()[0]
    with pytest.raises(UsersnapError, match="no-such-project") as error:
        sync(base_config(sandbox.url, project_ids=[known, "no-such-project"]))
    assert "project_ids" in str(error.value)
    assert not any("/feedbacks" in path for _m, path, _s in sandbox.requests)


def test_filters_use_the_filter_endpoint(sandbox: Sandbox):
    filters = [{"filter_type": "state", "operator": "eq", "value": "done"}]
    result = sync(base_config(sandbox.url, filters=filters, page_size=10))
    expected = {
        f["feedback_id"]
        for pid in sandbox.store.project_ids()
        for f in sandbox.store.feedbacks(pid)
        if f["status_type"] == "done"
    }
    assert expected
    assert set(result.ids()) == expected
    methods = {m for m, path, _s in sandbox.requests if "/feedbacks" in path}
    assert methods == {"POST"}
    assert all("/feedbacks/filter" in p for _m, p, _s in sandbox.requests if "/feedbacks" in p)


def test_filters_sync_is_incremental_too(sandbox: Sandbox):
    filters = [{"filter_type": "state", "operator": "neq", "value": "done"}]
    first = sync(base_config(sandbox.url, filters=filters))
    sandbox.reset_requests()
    second = sync(base_config(sandbox.url, filters=filters), state=first.state)
    assert len(second.ids()) <= 10 * len(sandbox.store.project_ids())
    for project_id in sandbox.store.project_ids():
        assert len(feedback_requests(sandbox, project_id)) == 1


def test_records_equal_to_start_date_across_a_page_boundary_are_read(sandbox: Sandbox):
    project_id = sandbox.store.project_ids()[0]
    feedbacks = sandbox.store.feedbacks(project_id)  # newest first; a tie straddles index 50
    start_date = normalize_timestamp(feedbacks[49]["updated_at"])
    tied_on_page_two = [
        f["feedback_id"]
        for f in feedbacks[50:]
        if normalize_timestamp(f["updated_at"]) == start_date
    ]
    assert tied_on_page_two
    config = base_config(sandbox.url, page_size=50, start_date=start_date, project_ids=[project_id])
    result = sync(config)
    assert set(tied_on_page_two) <= set(result.ids())
    assert len(feedback_requests(sandbox, project_id)) == 2  # and not one page more


def test_max_concurrency_changes_nothing(shared_sandbox: Sandbox):
    def stream_of(result: SyncResult) -> list[dict[str, t.Any]]:
        """Records and states in order, but for the instants of the run itself."""
        text = json.dumps([m for m in result.messages if m["type"] in {"RECORD", "STATE"}])
        return json.loads(
            re.sub(r'"(time_extracted|replication_key_signpost)": "[^"]*"', r'"\1": "-"', text)
        )

    one = sync(base_config(shared_sandbox.url, page_size=25, max_concurrency=1))
    four = sync(base_config(shared_sandbox.url, page_size=25, max_concurrency=4))
    assert len(one.ids()) == len(sandbox_feedbacks(shared_sandbox))
    assert stream_of(one) == stream_of(four)


def full_table_catalog(config: dict[str, t.Any]) -> dict[str, t.Any]:
    """The catalog Meltano passes for ``metadata: {feedbacks: {replication-method: FULL_TABLE}}``.

    Meltano sets the entry's ``replication_method`` (meltano/sdk#3284 shows one).
    """
    catalog = copy.deepcopy(TapUsersnap(config=config, parse_env_config=False).catalog_dict)
    for entry in catalog["streams"]:
        if entry["tap_stream_id"] == "feedbacks":
            entry["replication_method"] = "FULL_TABLE"
            for metadata in entry["metadata"]:
                if metadata["breadcrumb"] == []:
                    metadata["metadata"]["replication-method"] = "FULL_TABLE"
    return catalog


def test_a_catalog_forcing_full_table_reads_everything_and_leaves_the_bookmarks(sandbox: Sandbox):
    project_id = sandbox.store.project_ids()[0]
    timestamps = sorted(
        normalize_timestamp(f["updated_at"]) for f in sandbox.store.feedbacks(project_id)
    )
    start_date = timestamps[10]
    config = base_config(sandbox.url, page_size=50, start_date=start_date)
    incremental = sync(config)
    sandbox.store.change_feedbacks(project_id, 4)

    full = sync(config, state=incremental.state, catalog=full_table_catalog(config))

    expected = {
        f["feedback_id"]
        for pid in sandbox.store.project_ids()
        for f in sandbox.store.feedbacks(pid)
        if normalize_timestamp(f["updated_at"]) >= start_date
    }
    assert set(full.ids()) == expected
    assert len(full.ids()) == len(expected)  # no record twice
    assert full.state["bookmarks"]["feedbacks"] == incremental.state["bookmarks"]["feedbacks"]


def test_a_bookmark_made_under_filters_is_not_reused_without_them(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
):
    filters = [{"filter_type": "state", "operator": "eq", "value": "done"}]
    filtered = sync(base_config(sandbox.url, filters=filters))
    assert 0 < len(filtered.ids()) < len(sandbox_feedbacks(sandbox))

    unfiltered = sync(base_config(sandbox.url), state=filtered.state)

    assert set(unfiltered.ids()) == set(sandbox_feedbacks(sandbox))
    resets = [r for r in caplog.records if "does not cover" in r.getMessage()]
    assert len(resets) == len(sandbox.store.project_ids())
    assert {r.levelname for r in resets} == {"WARNING"}
    again = sync(base_config(sandbox.url), state=unfiltered.state)  # the new scope holds
    assert len(again.ids()) <= 10 * len(sandbox.store.project_ids())


def test_a_start_date_moved_earlier_reads_what_the_bookmark_never_covered(sandbox: Sandbox):
    project_id = sandbox.store.project_ids()[0]
    timestamps = sorted(
        normalize_timestamp(f["updated_at"]) for f in sandbox.store.feedbacks(project_id)
    )
    later, earlier = timestamps[200], timestamps[20]
    config = base_config(sandbox.url, project_ids=[project_id], page_size=25)
    first = sync({**config, "start_date": later})

    second = sync({**config, "start_date": earlier}, state=first.state)

    assert set(second.ids()) == {
        f["feedback_id"]
        for f in sandbox.store.feedbacks(project_id)
        if normalize_timestamp(f["updated_at"]) >= earlier
    }
    scope = second.bookmarks()[project_id]["scope"]
    assert scope["start_date"] == earlier


def test_settings_that_keep_what_a_bookmark_covers_keep_the_bookmark(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
):
    """page_size, project_ids and a later start_date change nothing a bookmark stands for."""
    timestamps = sorted(
        normalize_timestamp(f["updated_at"]) for f in sandbox_feedbacks(sandbox).values()
    )
    first = sync(base_config(sandbox.url, start_date=timestamps[5]))
    kept = sandbox.store.project_ids()[1:]
    second = sync(
        base_config(sandbox.url, start_date=timestamps[30], page_size=7, project_ids=kept),
        state=first.state,
    )
    assert not [r for r in caplog.records if "does not cover" in r.getMessage()]
    for project_id in kept:
        bookmark = first.bookmarks()[project_id]["replication_key_value"]
        emitted = [r for r in second.records["feedbacks"] if r["project_id"] == project_id]
        assert {r["updated_at"] for r in emitted} == {bookmark}  # the ties with it, no more
    # An earlier start_date again: the range between the two start dates was read the first time.
    third = sync(base_config(sandbox.url, start_date=timestamps[5]), state=second.state)
    assert not [r for r in caplog.records if "does not cover" in r.getMessage()]
    assert len(third.ids()) <= 10 * len(sandbox.store.project_ids())


def test_fields_the_api_does_not_promise_may_be_missing(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    """The OpenAPI document marks no field required: a project without api_key, feedback
    without updated_at or feedback_id are odd, but legal."""
    keyless = sandbox.store.project_ids()[1]
    projects = sandbox.store.projects

    def projects_without_a_key() -> list[dict[str, t.Any]]:
        return [
            {k: v for k, v in p.items() if k != "api_key" or p["project_id"] != keyless}
            for p in projects()
        ]

    def feedbacks_missing_fields(serve: t.Callable[..., t.Any]) -> t.Callable[..., t.Any]:
        def serve_missing_fields(*args: t.Any, **kwargs: t.Any) -> dict[str, t.Any]:
            page = serve(*args, **kwargs)
            for index, feedback in enumerate(page["feedbacks"]):
                if index % 7 == 3:
                    del feedback["updated_at"]
                elif index % 7 == 5:
                    del feedback["feedback_id"]
            return t.cast("dict[str, t.Any]", page)

        return serve_missing_fields

    monkeypatch.setattr(sandbox.store, "projects", projects_without_a_key)
    for serve in ("list_feedbacks", "filter_feedbacks"):
        monkeypatch.setattr(
            sandbox.store, serve, feedbacks_missing_fields(getattr(sandbox.store, serve))
        )
    result = sync(base_config(sandbox.url, page_size=10))

    assert len(result.records["feedbacks"]) == len(sandbox_feedbacks(sandbox))
    assert any(r["updated_at"] is None for r in result.records["feedbacks"])
    assert keyless not in {r["project_id"] for r in result.records["project_metrics"]}
    assert keyless in {r["project_id"] for r in result.records["feedbacks"]}
    assert any(keyless in r.getMessage() and "api_key" in r.getMessage() for r in caplog.records)
    for partition in result.bookmarks().values():
        assert partition["replication_key_value"]


def test_a_start_date_past_the_bookmark_leaves_a_gap_a_later_run_fills(sandbox: Sandbox):
    project_id = sandbox.store.project_ids()[0]
    config = base_config(sandbox.url, project_ids=[project_id])
    first = sync(config)
    changed = sandbox.store.change_feedbacks(project_id, 5)  # after the bookmark
    last_change = max(
        datetime.fromisoformat(
            normalize_timestamp(sandbox.store.feedback(project_id, fid)["updated_at"])
        )
        for fid in changed
    )
    added = sandbox.store.add_feedbacks(project_id, 3)  # later still
    start_date = (last_change + timedelta(microseconds=1)).isoformat()

    second = sync({**config, "start_date": start_date}, state=first.state)
    assert set(second.ids()) == set(added)  # the changes lie before start_date: not read

    third = sync(config, state=second.state)  # start_date removed: the gap is read
    assert set(changed) <= set(third.ids())


@pytest.mark.parametrize("max_concurrency", [1, 3])
def test_each_projects_starting_point_is_decided_once(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture, max_concurrency: int
):
    config = base_config(sandbox.url, max_concurrency=max_concurrency)
    first = sync(config)
    caplog.clear()
    caplog.set_level(logging.INFO)
    sync(config, state=first.state)
    starts = [
        r.getMessage()
        for r in caplog.records
        if r.getMessage().startswith("Starting incremental sync of 'feedbacks'")
    ]
    assert len(starts) == len(sandbox.store.project_ids())
    bookmarks = {p["replication_key_value"] for p in first.bookmarks().values()}
    assert {message.rsplit(" ", 1)[1] for message in starts} == bookmarks
