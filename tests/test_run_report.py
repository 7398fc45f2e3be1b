"""What a run says: fields it cannot sync, a summary line per stream, progress, ``--test``."""

from __future__ import annotations

import itertools
import logging
import re
import typing as t

from tap_usersnap.run_report import RunReport
from tap_usersnap.sandbox import SandboxStore
from tests.cli import run_tap
from tests.helpers import assert_records_match_schemas, base_config, sandbox_feedbacks, sync

if t.TYPE_CHECKING:
    from pathlib import Path

    import pytest

    from tap_usersnap.sandbox import Sandbox

UNDECLARED = "Not syncing fields the schema does not declare"
SUMMARY = re.compile(
    r"^(?P<stream>\w+): (?P<records>[\d,]+) records?(?: from (?P<projects>\d+) projects?)? "
    r"in (?P<requests>\d+) requests? \((?P<retries>\d+) retr(?:y|ies)\), [\d.]+ s$"
)
PROGRESS = re.compile(
    r"^Progress: project (?P<project>\d+) of (?P<total>\d+), (?P<records>[\d,]+) records? so far, "
    r"(?P<rate>\d+) records/s$"
)
ENDPOINTS = {
    "projects": re.compile(r"^/v0\.1/projects$"),
    "feedbacks": re.compile(r"^/v0\.1/projects/[^/]+/feedbacks(/filter)?(/count)?(\?.*)?$"),
    "project_assignees": re.compile(r"^/v0\.1/projects/[^/]+/assignees$"),
    "project_metrics": re.compile(r"^/v0\.1/projects/[^/]+/metrics$"),
}


def messages(caplog: pytest.LogCaptureFixture, pattern: re.Pattern[str]) -> list[re.Match[str]]:
    return [m for r in caplog.records if (m := pattern.match(r.getMessage()))]


# ------------------------------------------------------------------------------ fields


def test_sentiment_and_widget_arrive_typed(
    shared_sandbox: Sandbox, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO)
    result = sync(base_config(shared_sandbox.url))
    properties = result.schemas["feedbacks"]["properties"]
    assert properties["sentiment"] == {"type": ["string", "null"]}
    assert properties["source_widget_id"] == {"type": ["string", "null"]}
    source = sandbox_feedbacks(shared_sandbox)
    emitted = result.records["feedbacks"]
    assert len(emitted) == len(source)
    for record in emitted:
        for field in ("sentiment", "source_widget_id"):
            assert record[field] == source[record["feedback_id"]][field]
    assert {r["sentiment"] is None for r in emitted} == {True, False}
    assert_records_match_schemas(result)
    assert not any(UNDECLARED in r.getMessage() for r in caplog.records)


def test_a_field_nobody_declares_is_named_once_at_info(
    monkeypatch: pytest.MonkeyPatch,
    make_sandbox: t.Callable[..., Sandbox],
    caplog: pytest.LogCaptureFixture,
):
    render = SandboxStore._render

    def render_with_news(self: SandboxStore, project: t.Any, row: t.Any) -> dict[str, t.Any]:
        record = render(self, project, row)
        record["mood"] = "sunny"
        record["client"] = {**(record["client"] or {}), "battery_level": 0.5}
        return record

    monkeypatch.setattr(SandboxStore, "_render", render_with_news)
    sandbox = make_sandbox(projects=2, feedbacks_per_project=[30, 12])
    caplog.set_level(logging.INFO)
    result = sync(base_config(sandbox.url, page_size=10))

    assert len(result.records["feedbacks"]) == 42
    assert all(
        "mood" not in r and "battery_level" not in r["client"] for r in result.records["feedbacks"]
    )
    assert_records_match_schemas(result)
    told = [r for r in caplog.records if UNDECLARED in r.getMessage()]
    assert [(r.levelno, r.getMessage()) for r in told] == [
        (logging.INFO, f"{UNDECLARED}: client.battery_level, mood")
    ]


# ---------------------------------------------------------------------------- summary


def test_summary_lines_count_what_the_sandbox_served(
    monkeypatch: pytest.MonkeyPatch,
    make_sandbox: t.Callable[..., Sandbox],
    caplog: pytest.LogCaptureFixture,
):
    monkeypatch.setattr(RunReport, "PROGRESS_INTERVAL_SECONDS", 3600.0)
    sandbox = make_sandbox()
    sandbox.faults.status_every_n = 5
    sandbox.faults.status_code = 503
    sandbox.faults.retry_after = 0
    caplog.set_level(logging.INFO)
    result = sync(base_config(sandbox.url, page_size=30))

    summaries = {m["stream"]: m for m in messages(caplog, SUMMARY)}
    assert set(summaries) == set(ENDPOINTS)
    served = sandbox.requests
    assert sum(int(m["requests"]) for m in summaries.values()) == len(served)
    for stream, endpoint in ENDPOINTS.items():
        summary = summaries[stream]
        statuses = [status for _m, path, status in served if endpoint.match(path)]
        assert int(summary["requests"]) == len(statuses), stream
        assert int(summary["retries"]) == sum(status != 200 for status in statuses), stream
        assert int(summary["records"].replace(",", "")) == len(result.records[stream]), stream
        expected_projects = None if stream == "projects" else "3"
        assert summary["projects"] == expected_projects, stream
    assert int(summaries["feedbacks"]["retries"]) > 0
    assert len(result.records["feedbacks"]) == len(sandbox_feedbacks(sandbox))
    assert messages(caplog, PROGRESS) == []


def test_a_refused_request_the_stream_survives_is_counted(
    make_sandbox: t.Callable[..., Sandbox], caplog: pytest.LogCaptureFixture
):
    sandbox = make_sandbox(projects=1, feedbacks_per_project=[120])
    project_id = sandbox.store.project_ids()[0]
    interrupted = {  # a resume cursor whose feedback is gone: the API refuses it
        "bookmarks": {
            "feedbacks": {
                "partitions": [
                    {
                        "context": {"project_id": project_id},
                        "resume": {"after": "00000000-0000-4000-8000-000000000000"},
                    }
                ]
            }
        }
    }
    caplog.set_level(logging.INFO)
    result = sync(base_config(sandbox.url, page_size=50), state=interrupted)

    feedback_requests = [s for _m, p, s in sandbox.requests if ENDPOINTS["feedbacks"].match(p)]
    assert sum(status != 200 for status in feedback_requests) == 1
    summary = next(m for m in messages(caplog, SUMMARY) if m["stream"] == "feedbacks")
    assert int(summary["requests"]) == len(feedback_requests)
    assert summary["retries"] == "0"
    assert len(result.records["feedbacks"]) == 120


def test_progress_lines_during_a_slow_sync(
    monkeypatch: pytest.MonkeyPatch,
    make_sandbox: t.Callable[..., Sandbox],
    caplog: pytest.LogCaptureFixture,
):
    monkeypatch.setattr(RunReport, "PROGRESS_INTERVAL_SECONDS", 0.05)
    # The second project is long: most of its 15 pages are still to fetch when it starts.
    sandbox = make_sandbox(feedbacks_per_project=[40, 300, 20])
    sandbox.faults.latency_ms = 40
    caplog.set_level(logging.INFO)
    result = sync(base_config(sandbox.url, page_size=20, max_concurrency=1))

    progress = messages(caplog, PROGRESS)
    times = [r.created for r in caplog.records if PROGRESS.match(r.getMessage())]
    assert all(later - earlier >= 0.045 for earlier, later in itertools.pairwise(times))
    assert {m["total"] for m in progress} == {"3"}
    projects = [int(m["project"]) for m in progress]
    assert projects == sorted(projects)
    assert projects.count(2) >= 3
    assert set(projects) <= {1, 2, 3}
    counts = [int(m["records"].replace(",", "")) for m in progress]
    assert counts == sorted(set(counts))
    emitted = sum(len(records) for records in result.records.values())
    assert 0 < counts[-1] <= emitted
    assert all(int(m["rate"]) > 0 for m in progress)


def test_the_command_logs_the_summary_lines_at_info(tmp_path: Path, shared_sandbox: Sandbox):
    code, result = run_tap(tmp_path, base_config(shared_sandbox.url))
    assert code == 0, result.stderr[-2000:]
    lines = [line.rsplit(" | ", 1)[-1] for line in result.stderr.splitlines()]
    summaries = {m["stream"]: m for line in lines if (m := SUMMARY.match(line))}
    assert set(summaries) == set(ENDPOINTS)
    assert int(summaries["feedbacks"]["records"].replace(",", "")) == len(result.ids())
    assert any(" | INFO " in line and "feedbacks: " in line for line in result.stderr.splitlines())


# ------------------------------------------------------------------------------ --test


def test_connection_test_passes_and_says_so(tmp_path: Path, sandbox: Sandbox):
    code, result = run_tap(tmp_path, base_config(sandbox.url), "--test")
    assert code == 0, result.stderr[-2000:]
    assert "Connection test passed" in result.stderr
    assert "ERROR" not in result.stderr
    assert sandbox.requests[0][1] == "/v0.1/projects"


def test_connection_test_with_a_wrong_secret_fails(tmp_path: Path, sandbox: Sandbox):
    wrong = "a-wrong-secret-that-is-long-enough-0123456789"
    code, result = run_tap(tmp_path, base_config(sandbox.url, jwt_secret=wrong), "--test")
    assert code != 0
    assert "Usersnap rejected the credentials: check the settings jwt_id and jwt_secret" in (
        result.stderr
    )
    assert "Connection test passed" not in result.stderr
    assert wrong not in result.stderr
    assert [status for _m, _p, status in sandbox.requests] == [401]
