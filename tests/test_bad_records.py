"""Awkward records: unknown fields, nulls, huge custom_data, unusual unicode."""

from __future__ import annotations

import json
import logging
import typing as t

import pytest

from tap_usersnap.nul import replace_nul
from tap_usersnap.sandbox import SandboxStore
from tap_usersnap.state import normalize_timestamp
from tap_usersnap.writer import replace_lone_surrogates
from tests.helpers import assert_records_match_schemas, base_config, sandbox_feedbacks, sync

if t.TYPE_CHECKING:
    from tap_usersnap.sandbox import Sandbox

HUGE_CUSTOM_DATA = {
    f"key_{i}": {"nested": ["x" * 200, i, None, {"deep": True}]} for i in range(2000)
}
UNUSUAL_TEXT = (
    "cut emoji \ud83d (a lone surrogate), NUL \u0000, RTL \u202e\u05e9\u05dc\u05d5\u05dd, "
    "ZWJ \U0001f469\u200d\U0001f4bb, \ufeff BOM"
)


def distort(record: dict[str, t.Any]) -> dict[str, t.Any]:
    """Bend a sandbox record, by its number, into one of the shapes real data takes."""
    kind = record["feedback_number"] % 4
    if kind == 0:
        record["field_from_the_future"] = {"nested": [1, 2, {"x": None}]}
        record["client"] = {**(record["client"] or {}), "device_memory_gb": 8}
        record["custom_data"] = {"pasted\x00key": ["a\x00b"]}
    elif kind == 1:
        for key in ("public_link", "status_type", "priority", "email", "assignee_id"):
            record[key] = None
        record["client"] = dict.fromkeys(("url", "client_type", "browser_name"))
        record["labels"] = None
        record["screenshot"] = {"annotated_image_url": None, "comments": None}
    elif kind == 2:
        record["custom_data"] = HUGE_CUSTOM_DATA
    else:
        record["ordered_inputs"] = [
            {
                "order": 0,
                "label": UNUSUAL_TEXT,
                "boolean_value": None,
                "text_value": UNUSUAL_TEXT,
                "value": UNUSUAL_TEXT,
            }
        ]
    return record


@pytest.fixture
def awkward_sandbox(
    monkeypatch: pytest.MonkeyPatch, make_sandbox: t.Callable[..., Sandbox]
) -> Sandbox:
    render = SandboxStore._render

    def render_awkward(self: SandboxStore, project: t.Any, row: t.Any) -> dict[str, t.Any]:
        return distort(render(self, project, row))

    monkeypatch.setattr(SandboxStore, "_render", render_awkward)
    return make_sandbox(projects=2, feedbacks_per_project=[40, 13])


def test_awkward_records_arrive_whole(awkward_sandbox: Sandbox, caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.INFO)
    result = sync(base_config(awkward_sandbox.url, page_size=10))
    source = sandbox_feedbacks(awkward_sandbox)
    emitted = {r["feedback_id"]: r for r in result.records["feedbacks"]}
    assert set(emitted) == set(source)
    assert_records_match_schemas(result)
    declared = set(result.schemas["feedbacks"]["properties"])
    assert "Not syncing fields the schema does not declare" in caplog.text
    for feedback_id, record in emitted.items():
        original = source[feedback_id]
        for key in declared - {"updated_at"}:
            if key == "client" and original.get("client"):
                expected = {k: v for k, v in original["client"].items() if k != "device_memory_gb"}
                assert record["client"] == expected
            else:
                expected, _ = replace_nul(replace_lone_surrogates(original.get(key)))
                assert record.get(key) == expected, key
        assert "field_from_the_future" not in record
    assert any(r["custom_data"] == HUGE_CUSTOM_DATA for r in emitted.values())
    # PostgreSQL can store a NUL nowhere: none reaches the target, in keys or in values.
    assert not [fid for fid, r in emitted.items() if "\x00" in json.dumps(r, ensure_ascii=False)]
    assert any(r["custom_data"] == {"pasted\ufffdkey": ["a\ufffdb"]} for r in emitted.values())
    repaired = UNUSUAL_TEXT.replace("\ud83d", "\ufffd").replace("\u0000", "\ufffd")
    assert any(
        (r["ordered_inputs"] or [{}])[0].get("text_value") == repaired for r in emitted.values()
    )


def test_awkward_records_through_the_command(awkward_sandbox: Sandbox, tmp_path):
    from tests.cli import run_tap

    code, result = run_tap(tmp_path, base_config(awkward_sandbox.url, page_size=10))
    assert code == 0, result.stderr[-2000:]
    assert len(result.ids()) == len(sandbox_feedbacks(awkward_sandbox))
    assert "Replaced unpaired UTF-16 surrogates" in result.stderr
    assert "NUL character(s) with U+FFFD" in result.stderr


@pytest.mark.parametrize(
    "odd_value",
    [12345, "yesterday", ["2024"], "9999-12-31T23:00:00-05:00"],
    ids=["int", "word", "list", "beyond-year-9999-in-utc"],
)
def test_a_feedback_whose_updated_at_is_no_date_time_is_delivered_and_never_blocks(
    make_sandbox: t.Callable[..., Sandbox],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    odd_value: t.Any,
):
    sandbox = make_sandbox(projects=2, feedbacks_per_project=[30, 20])
    first_project = sandbox.store.project_ids()[0]
    odd = sandbox.store.feedbacks(first_project)[7]["feedback_id"]  # inside a page

    def with_an_odd_record(serve: t.Callable[..., t.Any]) -> t.Callable[..., t.Any]:
        def serve_odd(*args: t.Any, **kwargs: t.Any) -> dict[str, t.Any]:
            data = t.cast("dict[str, t.Any]", serve(*args, **kwargs))
            for feedback in data["feedbacks"]:
                if feedback["feedback_id"] == odd:
                    feedback["updated_at"] = odd_value
            return data

        return serve_odd

    for serve in ("list_feedbacks", "filter_feedbacks"):
        monkeypatch.setattr(sandbox.store, serve, with_an_odd_record(getattr(sandbox.store, serve)))
    config = base_config(sandbox.url, page_size=5, max_concurrency=1)
    first = sync(config)
    assert sorted(first.ids()) == sorted(sandbox_feedbacks(sandbox))
    [delivered] = [r for r in first.records["feedbacks"] if r["feedback_id"] == odd]
    assert delivered["updated_at"] is None
    [warning] = [r.getMessage() for r in caplog.records if "no date-time" in r.getMessage()]
    assert odd in warning
    assert f"/projects/{first_project}/feedbacks" in warning
    newest = max(
        f["updated_at"] for f in sandbox.store.feedbacks(first_project) if f["feedback_id"] != odd
    )
    bookmark = first.bookmarks()[first_project]["replication_key_value"]
    assert bookmark == normalize_timestamp(newest)

    changed = sandbox.store.change_feedbacks(first_project, 3, 1, None)
    second = sync(config, first.state)  # the odd record is served again: no failure
    assert set(changed) <= set(second.ids())
