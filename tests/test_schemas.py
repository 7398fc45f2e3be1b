"""The stream schemas declare every field the API's OpenAPI document lists, typed alike."""

from __future__ import annotations

import json
import typing as t
from importlib.resources import files
from pathlib import Path

import pytest

from tap_usersnap import schemas

#: A copy of the published OpenAPI document of the Usersnap platform API v0.1.
OPENAPI = json.loads((Path(__file__).parent / "data" / "usersnap-openapi.json").read_text())

#: stream -> (path, method, key of the record list in the response's ``data``)
ENDPOINTS = {
    "projects": ("/projects", "get", "projects"),
    "feedbacks": ("/projects/{project_id}/feedbacks", "get", "feedbacks"),
    "project_assignees": ("/projects/{api_key}/assignees", "get", "users"),
    "project_metrics": ("/projects/{api_key}/metrics", "get", "metrics"),
}


def resolve(node: dict[str, t.Any]) -> dict[str, t.Any]:
    if "$ref" not in node:
        return node
    target: t.Any = OPENAPI
    for part in node["$ref"].removeprefix("#/").split("/"):
        target = target[part]
    return t.cast("dict[str, t.Any]", target)


def fields(schema: dict[str, t.Any], prefix: str = "") -> dict[str, set[str]]:
    """Every property path of a schema (list items included) and the types it allows."""
    found: dict[str, set[str]] = {}
    if "items" in schema:
        found |= fields(schema["items"], prefix)
    for name, sub in (schema.get("properties") or {}).items():
        kinds = sub.get("type", [])
        found[prefix + name] = {kinds} if isinstance(kinds, str) else set(kinds)
        found |= fields(sub, f"{prefix}{name}.")
    return found


def documented_record(path: str, method: str, key: str) -> dict[str, t.Any]:
    response = resolve(OPENAPI["paths"][path][method]["responses"]["200"])
    envelope = response["content"]["application/json"]["schema"]
    return t.cast("dict[str, t.Any]", envelope["properties"]["data"]["properties"][key])


@pytest.mark.parametrize("stream", sorted(ENDPOINTS))
def test_schema_declares_every_documented_field(stream: str):
    documented = fields(documented_record(*ENDPOINTS[stream]))
    declared = fields(json.loads((files(schemas) / f"{stream}.json").read_text()))
    assert documented, "the document lists no field: wrong path?"
    assert sorted(set(documented) - set(declared)) == []
    for name, kinds in documented.items():
        assert kinds <= declared[name], f"{stream}.{name}: API {kinds}, schema {declared[name]}"
