"""Tests of the Usersnap sandbox itself: auth, paging, filters, errors, faults, control API, CLI."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import jwt
import pytest
import requests

from tap_usersnap.sandbox import Faults, Sandbox, SandboxStore

KID = "test-kid"
SECRET = "a-secret-of-at-least-32-bytes-long!!"
OTHER_SECRET = "another-secret-of-at-least-32-bytes!!"
ROOT = Path(__file__).resolve().parents[1]
WRONG_AUTH = {
    "status": False,
    "msg": "Authorization failed",
    "errortype": "WRONG_AUTH",
    "errordata": {},
}
PROJECT_FIELDS = [
    "project_id",
    "api_key",
    "company_id",
    "space_id",
    "created_at",
    "updated_at",
    "archived_at",
    "owner_id",
    "default_assignee_id",
    "name",
    "is_live",
    "feedback_count",
    "open_feedback_count",
]
FEEDBACK_FIELDS = {
    "feedback_id",
    "feedback_number",
    "public_link",
    "project_id",
    "created_at",
    "updated_at",
    "status_type",
    "priority",
    "assignee_id",
    "is_demo",
    "email",
    "client",
    "custom_data",
    "screenshot",
    "screen_recording",
    "ordered_inputs",
    "labels",
}
TS_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?(Z|\+00:00)$")


def token(kid=KID, secret=SECRET, alg="HS256", lifetime=600, iat_offset=0, drop=()):
    now = int(time.time()) + iat_offset
    claims = {"iat": now, "exp": now + lifetime}
    for name in drop:
        claims.pop(name)
    return jwt.encode(claims, secret, algorithm=alg, headers={"kid": kid})


def session(tok=None):
    s = requests.Session()
    s.headers["Authorization"] = f"Bearer {tok or token()}"
    return s


def instant(ts):
    return dt.datetime.fromisoformat(ts.replace("Z", "+00:00"))


def make(**kw):
    args = {
        "jwt_id": KID,
        "jwt_secret": SECRET,
        "projects": 3,
        "feedbacks_per_project": 250,
        "seed": 7,
    }
    args.update(kw)
    return Sandbox(**args).start()


@pytest.fixture(scope="module")
def sb():
    sandbox = make()
    yield sandbox
    sandbox.stop()


@pytest.fixture
def fresh():
    """A small private sandbox for tests that mutate data or switch faults on."""
    sandbox = make(projects=1, feedbacks_per_project=40)
    yield sandbox
    sandbox.stop()


@pytest.fixture(scope="module")
def http():
    s = session()
    yield s
    s.close()


def pid_of(sandbox, i=0):
    return sandbox.store.project_ids()[i]


def page_all(http, url, limit, method="GET", body=None):
    """Follow next.after until has_more is false; returns (records, pages)."""
    records, pages, params = [], [], {"limit": limit}
    while True:
        r = http.request(method, url, params=params, json=body)
        assert r.status_code == 200, r.text
        data = r.json()["data"]
        pages.append(data)
        records += data["feedbacks"]
        if not data["has_more"]:
            return records, pages
        params = {"limit": limit, "after": data["next"]["after"]}


# ----------------------------------------------------------------------- auth


BAD_HEADERS = {  # built when the test runs, so time-based claims are still what they say
    "missing": lambda: None,
    "basic": lambda: "Basic dXNlcjpwYXNz",
    "garbage": lambda: "Bearer not-a-jwt",
    "hs512": lambda: "Bearer " + token(alg="HS512", secret=SECRET * 2),
    "wrong-kid": lambda: "Bearer " + token(kid="other-kid"),
    "wrong-secret": lambda: "Bearer " + token(secret=OTHER_SECRET),
    "expired": lambda: "Bearer " + token(iat_offset=-7200, lifetime=3600),
    "over-lifetime": lambda: "Bearer " + token(lifetime=3601),
    "iat-future": lambda: "Bearer " + token(iat_offset=120),
    "no-exp": lambda: "Bearer " + token(drop=("exp",)),
    "no-iat": lambda: "Bearer " + token(drop=("iat",)),
    "alg-none": lambda: (
        "Bearer "
        + jwt.encode(
            {"iat": int(time.time()), "exp": 2**40}, None, algorithm="none", headers={"kid": KID}
        )
    ),
}


@pytest.mark.parametrize("case", list(BAD_HEADERS))
def test_rejected_tokens(sb, case):
    before = sb.auth_failures
    header = BAD_HEADERS[case]()
    headers = {"Authorization": header} if header else {}
    r = requests.get(f"{sb.url}/projects", headers=headers)
    assert r.status_code == 401
    assert r.json() == WRONG_AUTH
    assert sb.auth_failures == before + 1


def test_small_clock_skew_is_accepted(sb):
    r = session(token(iat_offset=30)).get(f"{sb.url}/projects")
    assert r.status_code == 200


# ----------------------------------------------------------------------- projects & metadata


def test_projects_shape_and_counts(sb, http):
    r = http.get(f"{sb.url}/projects")
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/json"
    body = r.json()
    assert body["status"] is True
    data = body["data"]
    assert data["has_more"] is False
    assert data["count"] == 3
    for project in data["projects"]:
        assert list(project) == PROJECT_FIELDS
        pid = project["project_id"]
        records = sb.store.feedbacks(pid)
        assert project["feedback_count"] == len(records) == 250
        assert project["open_feedback_count"] == sum(f["status_type"] == "open" for f in records)
    names = [p["name"] for p in data["projects"]]
    assert "Café Feedback ☕" in names
    assert "日本語プロジェクト" in names
    assert any(p["default_assignee_id"] is None for p in data["projects"])


def test_assignees_and_metrics_use_api_key(sb, http):
    project = sb.store.projects()[0]
    users = http.get(f"{sb.url}/projects/{project['api_key']}/assignees").json()["data"]["users"]
    assert users
    assert all(set(u) == {"user_id", "first_name", "last_name", "gravatar_url"} for u in users)
    assert any(u["last_name"] is None for u in users)
    metrics = http.get(f"{sb.url}/projects/{project['api_key']}/metrics").json()["data"]
    assert {"name", "help_text", "metric_type"} == set(metrics["metrics"][0])
    r = http.get(f"{sb.url}/projects/{project['project_id']}/assignees")
    assert r.status_code == 400
    assert r.json()["errortype"] == "SITE_NOT_FOUND"


def test_count_endpoints(sb, http):
    pid = pid_of(sb)
    assert http.get(f"{sb.url}/projects/{pid}/feedbacks/count").json() == {
        "status": True,
        "data": {"total_count": 250},
    }
    r = http.post(f"{sb.url}/projects/{pid}/feedbacks/filter/count", json={})
    assert r.json()["data"]["total_count"] == 250


# ----------------------------------------------------------------------- listing


@pytest.mark.parametrize("limit", [7, 100])
def test_paging_returns_each_record_once(sb, http, limit):
    pid = pid_of(sb)
    records, pages = page_all(http, f"{sb.url}/projects/{pid}/feedbacks", limit)
    expected = [f["feedback_id"] for f in sb.store.feedbacks(pid)]
    assert [f["feedback_id"] for f in records] == expected
    assert all(p["count"] == len(p["feedbacks"]) for p in pages)
    last = pages[-1]
    assert last["has_more"] is False
    assert last["next"] == {
        "query_string": f"limit={limit}&after={records[-1]['feedback_id']}",
        "limit": limit,
        "after": records[-1]["feedback_id"],
    }
    keys = [(instant(f["updated_at"]), f["feedback_id"]) for f in records]
    assert keys == sorted(keys, reverse=True)


def test_default_limit_and_empty_page(sb, http):
    pid = pid_of(sb)
    first = http.get(f"{sb.url}/projects/{pid}/feedbacks").json()["data"]
    assert first["count"] == 10
    assert first["has_more"] is True
    last_id = sb.store.feedbacks(pid)[-1]["feedback_id"]
    empty = http.get(f"{sb.url}/projects/{pid}/feedbacks", params={"after": last_id}).json()
    assert empty["data"] == {
        "has_more": False,
        "count": 0,
        "feedbacks": [],
        "next": None,
        "previous": None,
    }


def test_before_cursor_returns_previous_page(sb, http):
    url = f"{sb.url}/projects/{pid_of(sb)}/feedbacks"
    page1 = http.get(url, params={"limit": 10}).json()["data"]
    page2 = http.get(url, params={"limit": 10, "after": page1["next"]["after"]}).json()["data"]
    assert page2["previous"]["before"] == page2["feedbacks"][0]["feedback_id"]
    back = http.get(url, params={"limit": 10, "before": page2["previous"]["before"]}).json()
    assert [f["feedback_id"] for f in back["data"]["feedbacks"]] == [
        f["feedback_id"] for f in page1["feedbacks"]
    ]


@pytest.mark.parametrize("limit", ["0", "101", "abc", "", "2.5", "-1"])
def test_invalid_limit(sb, http, limit):
    r = http.get(f"{sb.url}/projects/{pid_of(sb)}/feedbacks", params={"limit": limit})
    assert r.status_code == 400
    body = r.json()
    assert body["status"] is False
    assert body["errortype"] == "VALIDATION_ERROR"
    assert "limit" in body["msg"]


def test_unknown_project_and_cursor_and_route(sb, http):
    missing = "50c4cdd6-4801-42b9-b785-b5cf90fcbb65"
    r = http.get(f"{sb.url}/projects/{missing}/feedbacks")
    assert r.status_code == 400
    assert r.json() == {
        "status": False,
        "msg": "Site does not exist",
        "errortype": "SITE_NOT_FOUND",
        "errordata": {"site_id": missing},
    }
    r = http.get(f"{sb.url}/projects/{pid_of(sb)}/feedbacks", params={"after": missing})
    assert r.status_code == 400
    assert r.json()["errortype"] == "FEEDBACK_NOT_FOUND"
    r = http.get(f"{sb.url}/nope")
    assert r.status_code == 404
    assert r.json()["errortype"] == "NOT_FOUND"


def test_change_between_pages_does_not_skip(fresh):
    http = session()
    pid = pid_of(fresh)
    url = f"{fresh.url}/projects/{pid}/feedbacks"
    original = [f["feedback_id"] for f in fresh.store.feedbacks(pid)]
    page1 = http.get(url, params={"limit": 10}).json()["data"]
    cursor = page1["next"]["after"]
    assert cursor == original[9]
    # The cursor record, an earlier served one and a not yet served one all move to the top.
    changed = fresh.store.change_feedbacks(pid, 0, ids=[cursor, original[0], original[25]])
    assert changed == [cursor, original[0], original[25]]
    assert fresh.store.feedbacks(pid)[0]["feedback_id"] == original[25]
    rest = []
    params = {"limit": 10, "after": cursor}
    while True:
        data = http.get(url, params=params).json()["data"]
        rest += [f["feedback_id"] for f in data["feedbacks"]]
        if not data["has_more"]:
            break
        params["after"] = data["next"]["after"]
    # No restart from the top, nothing unchanged skipped; the record changed before it was
    # served is newer than this sync's start and belongs to the next incremental run.
    assert rest == [i for i in original[10:] if i != original[25]]


def test_random_changes_report_ids(fresh):
    pid = pid_of(fresh)
    ids = fresh.store.change_feedbacks(pid, 4, rng_seed=3)
    assert len(set(ids)) == 4
    assert ids == SandboxStore(1, 40, 7).change_feedbacks(pid, 4, rng_seed=3)


def test_deleted_cursor_is_feedback_not_found(fresh):
    http = session()
    pid = pid_of(fresh)
    url = f"{fresh.url}/projects/{pid}/feedbacks"
    page1 = http.get(url, params={"limit": 5}).json()["data"]
    fresh.store.delete_feedback(pid, page1["next"]["after"])
    r = http.get(url, params={"limit": 5, "after": page1["next"]["after"]})
    assert r.status_code == 400
    assert r.json()["errortype"] == "FEEDBACK_NOT_FOUND"
    assert http.get(f"{url}/count").json()["data"]["total_count"] == 39


# ----------------------------------------------------------------------- filter


def test_filter_requires_json_body(sb, http):
    url = f"{sb.url}/projects/{pid_of(sb)}/feedbacks/filter"
    for kwargs in ({}, {"data": "not json"}, {"data": b"   "}):
        r = http.post(url, **kwargs)
        assert r.status_code == 400, kwargs
        assert r.json()["errortype"] == "VALIDATION_ERROR"
    r = http.post(url, json={})
    assert r.status_code == 200
    listed = http.get(f"{sb.url}/projects/{pid_of(sb)}/feedbacks").json()["data"]
    assert r.json()["data"]["feedbacks"] == listed["feedbacks"]


@pytest.mark.parametrize(
    "item",
    [
        {"filter_type": "colour", "operator": "eq", "value": "x"},
        {"filter_type": "state", "operator": "approx", "value": "x"},
        {"filter_type": "feedback_number", "operator": "gt", "value": "ten"},
        {"filter_type": "state", "operator": "eq"},
    ],
)
def test_filter_rejects_bad_query(sb, http, item):
    r = http.post(f"{sb.url}/projects/{pid_of(sb)}/feedbacks/filter", json={"query": [item]})
    assert r.status_code == 400
    assert r.json()["errortype"] == "VALIDATION_ERROR"


def test_filter_by_state_pages_and_counts(sb, http):
    pid = pid_of(sb)
    body = {"query": [{"filter_type": "state", "operator": "eq", "value": "done"}]}
    records, _ = page_all(http, f"{sb.url}/projects/{pid}/feedbacks/filter", 9, "POST", body)
    expected = [f["feedback_id"] for f in sb.store.feedbacks(pid) if f["status_type"] == "done"]
    assert [f["feedback_id"] for f in records] == expected
    count = http.post(f"{sb.url}/projects/{pid}/feedbacks/filter/count", json=body).json()
    assert count["data"]["total_count"] == len(expected) > 0


def test_filter_order_by_created_at_asc(sb, http):
    pid = pid_of(sb, 1)
    body = {"order_by": {"order_by_type": "created_at", "direction": "asc"}}
    records, _ = page_all(http, f"{sb.url}/projects/{pid}/feedbacks/filter", 25, "POST", body)
    assert len(records) == 250
    assert len({f["feedback_id"] for f in records}) == 250
    created = [instant(f["created_at"]) for f in records]
    assert created == sorted(created)


@pytest.mark.parametrize(
    ("query", "check"),
    [
        (
            {"filter_type": "email", "operator": "like", "value": "%@usersnap.com"},
            lambda f: f["email"] is not None and f["email"].endswith("@usersnap.com"),
        ),
        (
            {"filter_type": "email", "operator": "ilike", "value": "ANNA%"},
            lambda f: f["email"] is not None and f["email"].startswith("anna"),
        ),
        (
            {"filter_type": "state", "operator": "in", "value": "open, in_progress"},
            lambda f: f["status_type"] in ("open", "in_progress"),
        ),
        (
            {"filter_type": "state", "operator": "not_in", "value": "open"},
            lambda f: f["status_type"] != "open",
        ),
        (
            {"filter_type": "feedback_number", "operator": "lte", "value": "20"},
            lambda f: f["feedback_number"] <= 20,
        ),
        (
            {"filter_type": "created_at", "operator": "gte", "value": "2025-06-01T00:00:00Z"},
            lambda f: instant(f["created_at"]) >= instant("2025-06-01T00:00:00Z"),
        ),
        (
            {"filter_type": "nps", "operator": "gte", "value": "9"},
            lambda f: any(
                i["label"] == "NPS" and int(i["value"]) >= 9 for i in f["ordered_inputs"]
            ),
        ),
    ],
)
def test_filter_operators(sb, http, query, check):
    pid = pid_of(sb)  # project 0 collects NPS ratings
    body = {"query": [query]}
    records, _ = page_all(http, f"{sb.url}/projects/{pid}/feedbacks/filter", 100, "POST", body)
    expected = [f["feedback_id"] for f in sb.store.feedbacks(pid) if check(f)]
    assert expected
    assert [f["feedback_id"] for f in records] == expected


# ----------------------------------------------------------------------- submit


def test_submit_feedback(fresh):
    http = session()
    project = fresh.store.projects()[0]
    payload = {
        "visitor": "customer@example.com",
        "comment": "I like it 👍",
        "rating": 9,
        "client": {"url": "https://example.com", "screen_width": 1920, "screen_height": 1080},
    }
    r = http.post(f"{fresh.url}/projects/{project['api_key']}/feedbacks", json=payload)
    assert r.status_code == 201
    new_id = r.json()["data"]["feedback"]["feedback_id"]
    top = http.get(f"{fresh.url}/projects/{project['project_id']}/feedbacks").json()["data"]
    first = top["feedbacks"][0]
    assert first["feedback_id"] == new_id
    assert first["email"] == "customer@example.com"
    assert first["ordered_inputs"][0]["text_value"] == "I like it 👍"
    assert instant(first["updated_at"]) > instant(top["feedbacks"][1]["updated_at"])
    r = http.post(f"{fresh.url}/projects/{project['project_id']}/feedbacks", json=payload)
    assert r.json()["errortype"] == "SITE_NOT_FOUND"
    r = http.post(f"{fresh.url}/projects/{project['api_key']}/feedbacks", json={"rating": 99})
    assert r.json()["errortype"] == "VALIDATION_ERROR"


# ----------------------------------------------------------------------- data


def test_sample_data_is_awkward_and_deterministic(sb):
    pid = pid_of(sb)
    records = sb.store.feedbacks(pid)
    assert records == SandboxStore(3, 250, 7).feedbacks(pid)
    assert records != SandboxStore(3, 250, 8).feedbacks(SandboxStore(3, 250, 8).project_ids()[0])
    assert all(set(f) >= FEEDBACK_FIELDS for f in records)
    assert all("sentiment" in f and "source_widget_id" in f for f in records)
    assert sorted(f["feedback_number"] for f in records) == list(range(1, 251))
    stamps = [f["updated_at"] for f in records] + [f["created_at"] for f in records]
    assert all(TS_RE.match(s) for s in stamps)
    fractions = {len(m.group(1) or ".") - 1 for m in map(TS_RE.match, stamps)}
    assert fractions == {0, 1, 3, 6}
    assert any(s.endswith("+00:00") for s in stamps)
    now = dt.datetime.now(dt.UTC)
    assert all(instant(f["created_at"]) <= instant(f["updated_at"]) < now for f in records)
    assert any(f["email"] is None for f in records)
    assert any(f["client"] is None for f in records)
    assert any(f["client"] and f["client"]["city_name"] is None for f in records)
    assert any(f["custom_data"] == {} for f in records)
    assert any(f["custom_data"] is None for f in records)
    assert any(f["labels"] for f in records)
    assert any(f["screen_recording"] for f in records)
    texts = " ".join(f["ordered_inputs"][0]["text_value"] or "" for f in records)
    for sample in ("😍", "保存", "הכפתור", "e\u0301"):
        assert sample in texts
    # Ties straddle the page boundaries of every page size the tap may use.
    updated = [instant(f["updated_at"]) for f in records]
    for size in (10, 25, 50, 100):
        assert any(updated[b - 1] == updated[b] for b in range(size, len(updated), size)), size
    groups = {}
    for u in updated:
        groups[u] = groups.get(u, 0) + 1
    assert max(groups.values()) <= 7
    assert any(n >= 3 for n in groups.values())


def test_changes_are_newest_and_not_in_future(fresh):
    pid = pid_of(fresh)
    ids = fresh.store.change_feedbacks(pid, 5)
    added = fresh.store.add_feedbacks(pid, 2)
    top = fresh.store.feedbacks(pid)[:7]
    assert [f["feedback_id"] for f in top] == list(reversed(ids + added))
    times = [instant(f["updated_at"]) for f in top]
    assert times == sorted(times, reverse=True)
    assert len(set(times)) == 7
    assert times[0] <= dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)


def test_feedbacks_per_project_list():
    store = SandboxStore(3, [5, 0, 12], seed=1)
    assert [store.count(p) for p in store.project_ids()] == [5, 0, 12]


# ----------------------------------------------------------------------- faults


def test_latency(fresh):
    http = session()
    fresh.faults.latency_ms = 150
    t0 = time.perf_counter()
    assert http.get(f"{fresh.url}/projects").status_code == 200
    assert time.perf_counter() - t0 >= 0.15


def test_status_fault_with_burst_and_retry_after(fresh):
    http = session()
    fresh.faults.update({"status_every_n": 3, "status_code": 502, "retry_after": 2, "burst": 2})
    codes = []
    for _ in range(7):
        r = http.get(f"{fresh.url}/projects")
        codes.append(r.status_code)
        if r.status_code == 502:
            assert r.headers["Content-Type"] == "text/html"
            assert r.headers["Retry-After"] == "2"
            assert r.text == "<html><body><h1>502 Bad Gateway</h1></body></html>"
    assert codes == [200, 200, 502, 502, 200, 502, 502]


def test_rate_limit_fault_is_json(fresh):
    fresh.faults = Faults(status_every_n=1, status_code=429)
    r = session().get(f"{fresh.url}/projects")
    assert r.status_code == 429
    assert r.json()["errortype"] == "RATE_LIMITED"
    assert "Retry-After" not in r.headers


def test_truncate_fault(fresh):
    http = session()
    fresh.faults.truncate_every_n = 2
    assert http.get(f"{fresh.url}/projects").json()["status"] is True
    r = http.get(f"{fresh.url}/projects")
    assert r.status_code == 200
    assert int(r.headers["Content-Length"]) == len(r.content)
    with pytest.raises(json.JSONDecodeError):
        json.loads(r.content)


def test_bad_envelope_fault_alternates(fresh):
    http = session()
    fresh.faults.bad_envelope_every_n = 1
    first = http.get(f"{fresh.url}/projects").json()
    second = http.get(f"{fresh.url}/projects").json()
    assert first == {
        "status": False,
        "msg": "Internal error",
        "errortype": "INTERNAL",
        "errordata": {},
    }
    assert second == {"status": True}


def test_bad_shape_fault_serves_success_envelopes_without_a_page(fresh):
    http = session()
    pid = pid_of(fresh)
    fresh.faults.bad_shape_every_n = 1
    shapes = [http.get(f"{fresh.url}/projects/{pid}/feedbacks").json() for _ in range(6)]
    assert all(shape["status"] is True for shape in shapes)
    datas = [shape["data"] for shape in shapes]
    assert {} in datas
    assert any("feedbacks" not in d and "has_more" in d for d in datas)
    assert any("feedbacks" in d and "has_more" not in d for d in datas)
    assert any(d.get("has_more") == "false" for d in datas)
    assert any(isinstance(d.get("feedbacks"), dict) for d in datas)
    assert any(d.get("has_more") is True and "next" not in d for d in datas)
    assert fresh.fired["bad_shape_every_n"] == 6


def test_reset_fault(fresh):
    http = session()
    fresh.faults.reset_every_n = 2
    assert http.get(f"{fresh.url}/projects").status_code == 200
    with pytest.raises(requests.ConnectionError):
        http.get(f"{fresh.url}/projects")
    assert http.get(f"{fresh.url}/projects").status_code == 200
    assert [s for _, _, s in fresh.requests] == [200, 0, 200]


def test_hang_fault(fresh):
    http = session()
    fresh.faults.update({"hang_every_n": 1, "hang_seconds": 0.6})
    with pytest.raises(requests.ReadTimeout):
        http.get(f"{fresh.url}/projects", timeout=0.2)
    fresh.faults.reset()
    assert http.get(f"{fresh.url}/projects", timeout=2).status_code == 200


def test_fail_forever(fresh):
    http = session()
    fresh.faults.fail_forever_status = 503
    assert {http.get(f"{fresh.url}/projects").status_code for _ in range(4)} == {503}
    stats = requests.get(f"{fresh.url.rsplit('/v0.1', 1)[0]}/_sandbox/stats")
    assert stats.status_code == 200  # control routes never fail


# ----------------------------------------------------------------------- control API & server


def test_control_api(fresh):
    base = fresh.url.rsplit("/v0.1", 1)[0] + "/_sandbox"
    pid = pid_of(fresh)
    http = session()
    http.get(f"{fresh.url}/projects")
    assert requests.get(f"{base}/stats").json() == {
        "projects": {pid: 40},
        "requests": 1,
        "auth_failures": 0,
        "faults_fired": {},
    }
    assert requests.get(f"{base}/requests").json() == [["GET", "/v0.1/projects", 200]]
    requests.post(f"{base}/reset_requests")
    assert requests.get(f"{base}/requests").json() == []
    faults = requests.post(f"{base}/faults", json={"latency_ms": 5}).json()
    assert faults["latency_ms"] == 5
    assert fresh.faults.latency_ms == 5
    assert requests.post(f"{base}/faults", json={"bogus": 1}).status_code == 400
    changed = requests.post(f"{base}/change", json={"project_id": pid, "k": 3}).json()["ids"]
    added = requests.post(f"{base}/add", json={"project_id": pid, "n": 2}).json()["ids"]
    r = requests.post(f"{base}/delete", json={"project_id": pid, "feedback_id": changed[0]})
    assert r.status_code == 200
    listed = requests.get(f"{base}/feedbacks/{pid}").json()
    assert len(listed) == 41
    assert [f["feedback_id"] for f in listed[:4]] == list(reversed(changed[1:] + added))
    assert requests.get(f"{base}/nope").status_code == 404


def test_concurrent_clients_and_keep_alive(sb):
    errors = []

    def worker(i):
        try:
            http = session()
            pid = pid_of(sb, i % 3)
            records, _ = page_all(http, f"{sb.url}/projects/{pid}/feedbacks", 50)
            assert len(records) == 250
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    r = session().get(f"{sb.url}/projects", stream=True)
    assert r.raw.version == 11
    r.close()


def test_cli_prints_url_and_stops_cleanly():
    env = dict(
        os.environ,
        USERSNAP_SANDBOX_JWT_SECRET=SECRET,
        PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tap_usersnap.sandbox",
            "--port",
            "0",
            "--projects",
            "2",
            "--feedbacks",
            "30",
            "--jwt-id",
            KID,
            "--latency-ms",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    try:
        line = proc.stdout.readline()
        info = json.loads(line)
        assert info["url"] == f"http://127.0.0.1:{info['port']}/v0.1"
        r = session().get(f"{info['url']}/projects")
        assert r.status_code == 200
        assert r.json()["data"]["count"] == 2
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert SECRET not in line + out + err
