"""Catalog selection: a deselected property is never sent, at any depth; keys always are.

A deselected parent stream still gives its children their projects.
"""

from __future__ import annotations

import logging
import typing as t

from tap_usersnap.tap import TapUsersnap
from tests.cli import run_tap
from tests.helpers import base_config, sync

if t.TYPE_CHECKING:
    from pathlib import Path

    import pytest

    from tap_usersnap.sandbox import Sandbox

FEEDBACKS = 250 + 120 + 37  # the shared sandbox's
DESELECTED = {
    ("properties", "email"),  # a top-level property
    ("properties", "client", "properties", "browser_name"),  # a nested one
    ("properties", "screenshot"),  # an object, whole
    ("properties", "project_id"),  # the partition key the SDK adds to every record
    ("properties", "feedback_id"),  # the primary key: automatic, sent anyway
    ("properties", "updated_at"),  # the replication key: automatic, sent anyway
}


def catalog_without(
    config: dict[str, t.Any], deselected: dict[str, set[tuple[str, ...]]]
) -> dict[str, t.Any]:
    """The tap's own catalog, with the given breadcrumbs of each stream deselected."""
    catalog = TapUsersnap(config=config, parse_env_config=False).catalog_dict
    for entry in catalog["streams"]:
        for metadata in entry["metadata"]:
            if tuple(metadata["breadcrumb"]) in deselected.get(entry["tap_stream_id"], set()):
                metadata["metadata"]["selected"] = False
    return catalog


def without(record: dict[str, t.Any]) -> dict[str, t.Any]:
    """What a feedback looks like with ``DESELECTED`` removed by hand."""
    gone = {"email", "screenshot", "project_id"}
    kept = {key: value for key, value in record.items() if key not in gone}
    if isinstance(kept.get("client"), dict):
        kept["client"] = {k: v for k, v in kept["client"].items() if k != "browser_name"}
    return kept


def test_deselected_properties_are_dropped_at_every_depth(shared_sandbox: Sandbox):
    config = base_config(shared_sandbox.url)
    everything = sync(config).records["feedbacks"]
    selected = sync(config, catalog=catalog_without(config, {"feedbacks": DESELECTED}))

    assert len(everything) == FEEDBACKS
    assert any("browser_name" in (r.get("client") or {}) for r in everything)  # it can fail
    assert [without(record) for record in everything] == selected.records["feedbacks"]
    assert all(r["feedback_id"] and "updated_at" in r for r in selected.records["feedbacks"])


def test_a_deselected_parent_still_gives_its_children_every_project(shared_sandbox: Sandbox):
    """Meltano deselects ``projects`` for ``select: [feedbacks.*, ...]``."""
    config = base_config(shared_sandbox.url)
    everything = sync(config)
    root: set[tuple[str, ...]] = {()}
    children_only = sync(config, catalog=catalog_without(config, {"projects": root}))

    assert "projects" not in children_only.records
    for stream in ("feedbacks", "project_assignees", "project_metrics"):
        assert children_only.records[stream] == everything.records[stream], stream
    assert len(children_only.records["feedbacks"]) == FEEDBACKS


def test_a_deselected_api_key_still_reads_assignees_and_metrics(
    shared_sandbox: Sandbox, caplog: pytest.LogCaptureFixture
):
    config = base_config(shared_sandbox.url)
    everything = sync(config)
    catalog = catalog_without(config, {"projects": {("properties", "api_key")}})
    caplog.clear()
    with caplog.at_level(logging.INFO):
        result = sync(config, catalog=catalog)

    assert not any("api_key" in record for record in result.records["projects"])
    assert any("records from" in r.getMessage() for r in caplog.records)  # logs are seen
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    for stream in ("project_assignees", "project_metrics"):
        assert result.records[stream] == everything.records[stream], stream


def test_the_cli_honours_a_catalog_selection(shared_sandbox: Sandbox, tmp_path: Path):
    config = base_config(shared_sandbox.url)
    catalog = catalog_without(config, {"feedbacks": DESELECTED})
    code, result = run_tap(tmp_path, config, catalog=catalog)
    assert code == 0, result.stderr[-2000:]
    feedbacks = result.records["feedbacks"]
    assert len(feedbacks) == FEEDBACKS
    assert not any({"email", "screenshot", "project_id"} & record.keys() for record in feedbacks)
    assert not any("browser_name" in (record.get("client") or {}) for record in feedbacks)
    assert any("browser_os" in (record.get("client") or {}) for record in feedbacks)
