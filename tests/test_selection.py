"""Catalog selection: a deselected property is never sent, at any depth; keys always are."""

from __future__ import annotations

import typing as t

from tap_usersnap.tap import TapUsersnap
from tests.cli import run_tap
from tests.helpers import base_config, sync

if t.TYPE_CHECKING:
    from pathlib import Path

    from tap_usersnap.sandbox import Sandbox

DESELECTED = {
    ("properties", "email"),  # a top-level property
    ("properties", "client", "properties", "browser_name"),  # a nested one
    ("properties", "screenshot"),  # an object, whole
    ("properties", "feedback_id"),  # the primary key: automatic, sent anyway
    ("properties", "updated_at"),  # the replication key: automatic, sent anyway
}


def catalog_without(config: dict[str, t.Any], breadcrumbs: set[tuple[str, ...]]) -> dict:
    """The tap's own catalog, with ``breadcrumbs`` of feedbacks deselected."""
    catalog = TapUsersnap(config=config, parse_env_config=False).catalog_dict
    (entry,) = (s for s in catalog["streams"] if s["tap_stream_id"] == "feedbacks")
    for metadata in entry["metadata"]:
        if tuple(metadata["breadcrumb"]) in breadcrumbs:
            metadata["metadata"]["selected"] = False
    return catalog


def without(record: dict[str, t.Any]) -> dict[str, t.Any]:
    """What a feedback looks like with ``DESELECTED`` removed by hand."""
    kept = {key: value for key, value in record.items() if key not in {"email", "screenshot"}}
    if isinstance(kept.get("client"), dict):
        kept["client"] = {k: v for k, v in kept["client"].items() if k != "browser_name"}
    return kept


def test_deselected_properties_are_dropped_at_every_depth(shared_sandbox: Sandbox):
    config = base_config(shared_sandbox.url)
    everything = sync(config).records["feedbacks"]
    selected = sync(config, catalog=catalog_without(config, DESELECTED)).records["feedbacks"]

    assert len(selected) == len(everything) == 250 + 120 + 37
    assert any("browser_name" in (r.get("client") or {}) for r in everything)  # it can fail
    assert [without(record) for record in everything] == selected
    assert all(r["feedback_id"] and "updated_at" in r for r in selected)


def test_the_cli_honours_a_catalog_selection(shared_sandbox: Sandbox, tmp_path: Path):
    config = base_config(shared_sandbox.url)
    code, result = run_tap(tmp_path, config, catalog=catalog_without(config, DESELECTED))
    assert code == 0, result.stderr[-2000:]
    feedbacks = result.records["feedbacks"]
    assert len(feedbacks) == 250 + 120 + 37
    assert not any("email" in record or "screenshot" in record for record in feedbacks)
    assert not any("browser_name" in (record.get("client") or {}) for record in feedbacks)
    assert all("browser_os" in (record.get("client") or {"browser_os": 1}) for record in feedbacks)
