"""Running the tap in-process against the sandbox and reading what it emitted."""

from __future__ import annotations

import copy
import io
import json
import typing as t
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass, field

import jsonschema

from tap_usersnap.tap import TapUsersnap

if t.TYPE_CHECKING:
    from tap_usersnap.sandbox import Sandbox

JWT_ID = "test-jwt-id"
# Long enough that PyJWT does not warn about a short HMAC key.
JWT_SECRET = "test-jwt-secret-that-is-long-enough-0123456789"


@dataclass
class SyncResult:
    """The Singer messages of one run, sorted by kind."""

    messages: list[dict[str, t.Any]]
    stderr: str = ""
    records: dict[str, list[dict[str, t.Any]]] = field(default_factory=dict)
    schemas: dict[str, dict[str, t.Any]] = field(default_factory=dict)
    states: list[dict[str, t.Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        for message in self.messages:
            kind = message["type"]
            if kind == "RECORD":
                self.records.setdefault(message["stream"], []).append(message["record"])
            elif kind == "SCHEMA":
                self.schemas[message["stream"]] = message["schema"]
            elif kind == "STATE":
                self.states.append(message["value"])

    @property
    def state(self) -> dict[str, t.Any]:
        """The last STATE value: what the next run starts from."""
        return self.states[-1]

    def bookmarks(self, stream: str = "feedbacks") -> dict[str, dict[str, t.Any]]:
        """Partition states of a stream by project id."""
        partitions = self.state["bookmarks"].get(stream, {}).get("partitions", [])
        return {p["context"]["project_id"]: p for p in partitions}

    def ids(self, stream: str = "feedbacks", key: str = "feedback_id") -> list[str]:
        return [record[key] for record in self.records.get(stream, [])]


def parse_messages(stdout: str) -> list[dict[str, t.Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def base_config(api_url: str, **overrides: t.Any) -> dict[str, t.Any]:
    return {"jwt_id": JWT_ID, "jwt_secret": JWT_SECRET, "api_url": api_url, **overrides}


def sync(
    config: dict[str, t.Any],
    state: dict[str, t.Any] | None = None,
    catalog: dict[str, t.Any] | None = None,
) -> SyncResult:
    """Run a whole sync in-process and return its messages."""
    state = copy.deepcopy(state)  # the tap updates its state in place
    tap = TapUsersnap(config=config, state=state, catalog=catalog, parse_env_config=False)
    stdout = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    stderr = io.StringIO()
    with redirect_stdout(stdout), redirect_stderr(stderr):
        tap.sync_all()
    stdout.flush()
    stdout.seek(0)
    return SyncResult(parse_messages(stdout.read()), stderr.getvalue())


def sandbox_feedbacks(sandbox: Sandbox) -> dict[str, dict[str, t.Any]]:
    """Every feedback the sandbox holds now, by id."""
    return {
        feedback["feedback_id"]: feedback
        for project_id in sandbox.store.project_ids()
        for feedback in sandbox.store.feedbacks(project_id)
    }


def strict(schema: dict[str, t.Any]) -> dict[str, t.Any]:
    """The schema with no undeclared property allowed anywhere (except free objects)."""
    result = dict(schema)
    if "properties" in schema:
        result["properties"] = {k: strict(v) for k, v in schema["properties"].items()}
        result.setdefault("additionalProperties", False)
    if "items" in schema:
        result["items"] = strict(schema["items"])
    return result


def assert_records_match_schemas(result: SyncResult) -> None:
    """Every record validates, with formats checked and no field the schema does not list.

    The tap turns the SDK's type conformance off for speed; this is what proves it safe.
    """
    for stream, records in result.records.items():
        validator = jsonschema.Draft7Validator(
            strict(result.schemas[stream]), format_checker=jsonschema.FormatChecker()
        )
        for record in records:
            validator.validate(record)
