"""Records left undecoded by the fetch worker: decoded where read, and the same records."""

from __future__ import annotations

import collections
import json
import threading
import time
import typing as t

import msgspec
import pytest
import requests

from tap_usersnap.envelope import MalformedResponseError, Records, check_page, payload
from tap_usersnap.errors import UsersnapError
from tap_usersnap.streams import FeedbacksStream
from tests.helpers import base_config, sandbox_feedbacks, sync

if t.TYPE_CHECKING:
    from tap_usersnap.sandbox import Sandbox

FEEDBACKS = [
    {"feedback_id": "b", "updated_at": "2025-01-02T00:00:00Z", "labels": [{"name": "x"}]},
    {"feedback_id": "a", "updated_at": "2025-01-01T00:00:00Z", "custom_data": None},
]
PAGE = {"has_more": True, "count": 2, "feedbacks": FEEDBACKS, "next": {"after": "a"}}


def response(body: bytes | dict[str, t.Any]) -> requests.Response:
    result = requests.Response()
    result.status_code = 200
    result.url = "http://127.0.0.1/v0.1/projects/p/feedbacks"
    result._content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return result


def test_a_plain_page_keeps_its_records_raw_and_they_decode_to_the_same():
    data = payload(response({"status": True, "data": PAGE}), raw_records="feedbacks")
    assert all(isinstance(raw, msgspec.Raw) for raw in data["feedbacks"])
    assert (data["has_more"], data["next"]) == (True, {"after": "a"})
    check_page(data, "feedbacks", {"has_more": bool})  # a raw record is an object
    assert list(Records(data["feedbacks"])) == FEEDBACKS


def test_each_record_is_decoded_and_prepared_once_where_first_read():
    data = payload(response({"status": True, "data": PAGE}), raw_records="feedbacks")
    prepared: list[str] = []

    def prepare(record: dict[str, t.Any]) -> dict[str, t.Any]:
        prepared.append(record["feedback_id"])
        return {**record, "prepared": True}

    records = Records(data["feedbacks"], prepare)
    assert records[-1]["feedback_id"] == "a"
    assert prepared == ["a"]  # the last one only: the rest is left to whoever reads them
    assert [r["feedback_id"] for r in records] == ["b", "a"]
    assert all(r["prepared"] for r in records[0:2])
    assert prepared == ["a", "b"]


def raw_page(records: bytes, members: bytes = b'"has_more": false') -> bytes:
    return b'{"status": true, "data": {' + members + b', "feedbacks": [' + records + b"]}}"


@pytest.mark.parametrize(
    "body",
    [
        {"status": True, "data": {**PAGE, "feedbacks": [1, *FEEDBACKS]}},
        {"status": True, "data": {**PAGE, "feedbacks": {"a": 1}}},
        {"status": True, "data": {**PAGE, "feedbacks": None}},
        {"status": False, "msg": "no", "errortype": "WRONG_AUTH"},
        {"status": True, "data": [PAGE]},
        b'{"status": true, "data": {"has_more": true, "feedbacks": [',
        raw_page(b'{"t": "caf\xe9"}'),
        raw_page(b'{"t": "\xed\xa0\x80"}'),
        raw_page(b"", members=b'"has_more": true, "next": {"after": "b\xff"}'),
    ],
    ids=[
        "a-number",
        "an-object",
        "null",
        "error-envelope",
        "data-a-list",
        "truncated",
        "latin-1-byte-in-a-record",
        "utf-8-encoded-surrogate",
        "bad-byte-in-next",
    ],
)
def test_any_other_page_is_read_whole_and_refused_as_before(body: bytes | dict[str, t.Any]):
    def refusal(raw_records: str | None) -> str:
        try:
            check_page(payload(response(body), raw_records), "feedbacks", {"has_more": bool})
        except MalformedResponseError as error:
            return str(error)
        return "accepted"

    assert refusal("feedbacks") == refusal(None) != "accepted"


def test_what_msgspec_refuses_or_python_repairs_is_read_whole():
    lone = b'{"status": true, "data": {"has_more": false, "feedbacks": [{"text": "\\ud800"}]}}'
    nul = b'{"status": true, "data": {"has_more": false, "feedbacks": [{"text": "a\\u0000b"}]}}'
    for body, text in ((lone, "\ud800"), (nul, "a\ufffdb")):
        data = payload(response(body), raw_records="feedbacks")
        assert data["feedbacks"] == [{"text": text}]
        assert list(Records(data["feedbacks"])) == [{"text": text}]


def test_the_fetch_worker_decodes_one_feedback_a_page(
    make_sandbox: t.Callable[..., Sandbox], monkeypatch: pytest.MonkeyPatch
):
    """The consumer decodes the rest, so the worker's next request does not wait for it."""
    sandbox = make_sandbox(projects=2, feedbacks_per_project=[230, 40])
    decoded_by: dict[str, int] = {}
    comparable = FeedbacksStream.comparable_updated_at

    def counted(self: FeedbacksStream, *args: t.Any) -> str | None:
        name = threading.current_thread().name
        decoded_by[name] = decoded_by.get(name, 0) + 1
        return comparable(self, *args)

    monkeypatch.setattr(FeedbacksStream, "comparable_updated_at", counted)
    result = sync(base_config(sandbox.url, page_size=50))

    assert sorted(result.ids()) == sorted(sandbox_feedbacks(sandbox))
    pages = 5 + 1  # 230 and 40 feedbacks, 50 a page
    by_workers = sum(n for name, n in decoded_by.items() if name != "MainThread")
    assert by_workers <= pages
    assert decoded_by["MainThread"] == 270 - by_workers


def test_a_record_msgspec_checked_but_cannot_convert_is_one_error_naming_it():
    """An integer of more digits than Python reads: the page passed, its decode fails late."""
    body = b'{"status": true, "data": {"has_more": false, "feedbacks": [{"n": 1}, {"n": '
    body += b"9" * 5000 + b"}]}}"
    data = payload(response(body), raw_records="feedbacks")
    records = Records(data["feedbacks"], where="GET /projects/p/feedbacks")
    assert records[0] == {"n": 1}
    with pytest.raises(UsersnapError, match=r"^Record 2 of GET /projects/p/feedbacks is not valid"):
        records[1]


@pytest.mark.parametrize("decode_seconds", [0.0, 0.02], ids=["as-is", "slow-decode"])
def test_each_feedback_is_prepared_once_when_a_bookmark_stops_each_read_at_its_first_page(
    make_sandbox: t.Callable[..., Sandbox], monkeypatch: pytest.MonkeyPatch, decode_seconds: float
):
    """The worker reads a page's last feedback (to stop at the bookmark) before queuing it."""
    sandbox = make_sandbox(projects=20, feedbacks_per_project=1)
    config = base_config(sandbox.url, page_size=10)
    first = sync(config)
    calls: collections.Counter[str] = collections.Counter()
    comparable = FeedbacksStream.comparable_updated_at

    def counted(self: FeedbacksStream, feedback: dict[str, t.Any], *args: t.Any) -> str | None:
        calls[feedback["feedback_id"]] += 1
        time.sleep(decode_seconds)  # a slow decode, or a worker waiting for the GIL
        return comparable(self, feedback, *args)

    monkeypatch.setattr(FeedbacksStream, "comparable_updated_at", counted)
    second = sync(config, state=first.state)
    assert len(second.ids()) == 20  # each project's newest, read again (at least once)
    assert set(calls.values()) == {1}
