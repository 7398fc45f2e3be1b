"""Retries of transient faults, and clear failures for everything else."""

from __future__ import annotations

import logging
import socket
import threading
import time
import typing as t
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
import requests
from singer_sdk.exceptions import RetriableAPIError

from tap_usersnap.client import (
    MAX_RETRY_WAIT_SECONDS,
    RetriesExhaustedError,
    UsersnapAPIError,
    retry_after_seconds,
)
from tap_usersnap.pagination import PaginationLoopError
from tap_usersnap.tap import TapUsersnap
from tests.helpers import JWT_SECRET, base_config, sandbox_feedbacks, sync

if t.TYPE_CHECKING:
    from tap_usersnap.sandbox import Sandbox

# One worker makes the request sequence, and so which requests fail, deterministic.
FAST_RETRIES = {"max_retries": 4, "request_timeout": 2, "max_concurrency": 1}


@pytest.mark.parametrize(
    "faults",
    [
        pytest.param({"status_every_n": 4, "status_code": 429, "retry_after": 0.2}, id="429"),
        pytest.param({"status_every_n": 5, "status_code": 429}, id="429-no-retry-after"),
        pytest.param({"status_every_n": 3, "status_code": 500}, id="500-html"),
        pytest.param({"status_every_n": 3, "status_code": 502}, id="502-html"),
        pytest.param({"status_every_n": 9, "status_code": 503, "burst": 3}, id="503-burst"),
        pytest.param({"status_every_n": 3, "status_code": 504}, id="504-html"),
        pytest.param({"truncate_every_n": 3}, id="truncated-body"),
        pytest.param({"bad_envelope_every_n": 3}, id="bad-envelope"),
        pytest.param({"bad_shape_every_n": 2}, id="success-envelope-without-a-page"),
        pytest.param({"reset_every_n": 4}, id="connection-reset"),
        pytest.param({"hang_every_n": 5, "hang_seconds": 3}, id="read-timeout"),
    ],
)
def test_transient_faults_are_retried_and_nothing_is_lost(
    make_sandbox: t.Callable[..., Sandbox], faults: dict[str, t.Any]
):
    sandbox = make_sandbox(feedbacks_per_project=[120, 60, 15])
    for name, value in faults.items():
        setattr(sandbox.faults, name, value)
    result = sync(base_config(sandbox.url, page_size=25, **FAST_RETRIES))
    assert set(result.ids()) == set(sandbox_feedbacks(sandbox))
    assert len(result.ids()) == len(set(result.ids()))
    switch = next(name for name in faults if name.endswith("_every_n"))
    assert sandbox.fired[switch] > 0, "the fault was never injected"


def test_faults_under_concurrent_workers_lose_nothing(make_sandbox: t.Callable[..., Sandbox]):
    sandbox = make_sandbox(projects=6, feedbacks_per_project=[40] * 6)
    sandbox.faults.status_every_n = 4
    sandbox.faults.status_code = 429
    sandbox.faults.retry_after = 0.1
    result = sync(base_config(sandbox.url, page_size=10, max_retries=10, max_concurrency=4))
    assert sorted(result.ids()) == sorted(set(sandbox_feedbacks(sandbox)))
    assert sum(1 for _m, _p, s in sandbox.requests if s == 429) >= 5


def test_retry_after_is_honoured_and_pauses_every_worker(
    make_sandbox: t.Callable[..., Sandbox],
):
    sandbox = make_sandbox(feedbacks_per_project=[10], projects=1)
    sandbox.faults.status_every_n = 2
    sandbox.faults.status_code = 429
    sandbox.faults.retry_after = 1.0
    started = time.monotonic()
    sync(base_config(sandbox.url, **FAST_RETRIES))
    assert any(s == 429 for _m, _p, s in sandbox.requests)
    assert time.monotonic() - started >= 1.0


def failure(status: int, retry_after: str | None = None) -> RetriableAPIError:
    response = requests.Response()
    response.status_code = status
    if retry_after is not None:
        response.headers["Retry-After"] = retry_after
    return RetriableAPIError("failure", response)


def offline_stream(name: str = "feedbacks") -> t.Any:
    tap = TapUsersnap(config=base_config("http://127.0.0.1:9/v0.1"), parse_env_config=False)
    return tap.streams[name]


def test_backoff_waits_what_retry_after_asks_then_grows():
    waits = offline_stream().backoff_wait_generator()
    next(waits)
    assert waits.send(failure(429, "7")) == 7
    assert waits.send(failure(503)) == 1.0  # no Retry-After: exponential, second attempt
    assert waits.send(failure(429, "3600")) == 60  # capped
    assert waits.send(failure(503)) == 4.0


@pytest.mark.parametrize(
    "retry_after",
    [
        pytest.param("0", id="zero"),
        pytest.param(
            format_datetime(datetime.now(UTC) - timedelta(hours=1), usegmt=True), id="past"
        ),
        pytest.param("0.1", id="shorter-than-the-backoff"),
    ],
)
def test_retry_after_never_shortens_the_exponential_backoff(retry_after: str):
    waits = offline_stream().backoff_wait_generator()
    next(waits)
    assert [waits.send(failure(429, retry_after)) for _ in range(4)] == [0.5, 1.0, 2.0, 4.0]


def test_no_wait_is_longer_than_the_cap_jitter_included(monkeypatch: pytest.MonkeyPatch):
    stream = offline_stream()
    monkeypatch.setattr("random.random", lambda: 0.999)  # the most jitter there is
    assert stream.backoff_jitter(MAX_RETRY_WAIT_SECONDS) == MAX_RETRY_WAIT_SECONDS
    assert stream.backoff_jitter(55.0) == MAX_RETRY_WAIT_SECONDS
    assert stream.backoff_jitter(8.0) > 8.0
    monkeypatch.setattr("random.random", lambda: 0.0)
    assert stream.backoff_jitter(8.0) == 8.0  # never shorter than asked


def test_no_request_leaves_during_a_429_pause(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch):
    arrivals: list[float] = []
    handle_api = sandbox.handle_api

    def timed(*args: t.Any) -> t.Any:
        arrivals.append(time.monotonic())
        return handle_api(*args)

    monkeypatch.setattr(sandbox, "handle_api", timed)
    tap = TapUsersnap(config=base_config(sandbox.url, max_concurrency=4), parse_env_config=False)
    stream = tap.streams["projects"]
    waits = stream.backoff_wait_generator()
    next(waits)
    paused_at = time.monotonic()
    pause = waits.send(failure(429, "1"))  # one worker's 429, as the SDK's retry sees it
    workers = [
        threading.Thread(target=lambda: list(stream.request_records(None))) for _ in range(4)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert len(arrivals) == 4
    assert [at for at in arrivals if at < paused_at + pause] == []


def test_request_timeout_cuts_a_hung_request_and_retries_it(
    make_sandbox: t.Callable[..., Sandbox], caplog: pytest.LogCaptureFixture
):
    sandbox = make_sandbox(projects=1, feedbacks_per_project=[40])
    sandbox.faults.hang_seconds = 3
    sandbox.faults.hang_every_n = 3
    result = sync(base_config(sandbox.url, page_size=10, request_timeout=1, max_concurrency=1))
    assert sorted(result.ids()) == sorted(sandbox_feedbacks(sandbox))
    timeouts = [r for r in caplog.records if "within request_timeout (1 s)" in r.getMessage()]
    assert len(timeouts) == sandbox.fired["hang_every_n"] > 0


def test_each_retry_is_logged_once(
    make_sandbox: t.Callable[..., Sandbox], caplog: pytest.LogCaptureFixture
):
    sandbox = make_sandbox(projects=1, feedbacks_per_project=[60])
    sandbox.faults.status_code = 503
    sandbox.faults.status_every_n = 3
    with caplog.at_level(logging.INFO):
        sync(base_config(sandbox.url, page_size=10, **FAST_RETRIES))
    retries = [
        r for r in caplog.records if "503" in r.getMessage() and r.name != "singer_sdk.metrics"
    ]
    assert len(retries) == sandbox.fired["status_every_n"] > 0
    assert all(r.getMessage().startswith("Retrying in") for r in retries)


def test_a_success_envelope_without_a_page_fails_naming_the_path(
    make_sandbox: t.Callable[..., Sandbox],
):
    sandbox = make_sandbox(projects=1, feedbacks_per_project=[20])
    sandbox.faults.bad_shape_every_n = 1  # every answer: {"status": true, "data": {...}}
    with pytest.raises(RetriesExhaustedError, match=r"'data\.\w+' is.* for GET /v0\.1/projects"):
        sync(base_config(sandbox.url, max_retries=4, max_concurrency=1))


def test_server_that_never_recovers_fails_in_bounded_time(make_sandbox: t.Callable[..., Sandbox]):
    sandbox = make_sandbox()
    sandbox.faults.fail_forever_status = 503
    with pytest.raises(RetriesExhaustedError, match=r"503.*after 2 retries.*api_url") as error:
        sync(base_config(sandbox.url, max_retries=2, request_timeout=2))
    assert len(sandbox.requests) == 3
    assert JWT_SECRET not in str(error.value)


def test_wrong_credentials_fail_at_once_with_a_clear_message(sandbox: Sandbox):
    config = base_config(sandbox.url, jwt_secret="not-the-secret-but-long-enough-0123456789")
    with pytest.raises(UsersnapAPIError, match="jwt_id and jwt_secret") as error:
        sync(config)
    assert "WRONG_AUTH" in str(error.value)
    assert "not-the-secret" not in str(error.value)
    assert len(sandbox.requests) == 1


def test_other_client_errors_fail_with_the_api_message(sandbox: Sandbox):
    config = base_config(sandbox.url)
    tap = TapUsersnap(config=config, parse_env_config=False)
    stream = tap.streams["project_metrics"]
    # A project the API does not know is skipped; the run fails naming it once all is synced.
    assert list(stream.get_records({"project_id": "p", "api_key": "no-such-api-key"})) == []
    assert "SITE_NOT_FOUND" in tap.refused_projects["p"]["project_metrics"]
    assert "/v0.1/projects/no-such-api-key/metrics" in tap.refused_projects["p"]["project_metrics"]


def test_retry_after_as_an_http_date_is_honoured():
    response = requests.Response()
    later = datetime.now(UTC) + timedelta(seconds=30)
    response.headers["Retry-After"] = format_datetime(later, usegmt=True)
    assert 25 < retry_after_seconds(response) <= 30
    response.headers["Retry-After"] = "whenever"
    assert retry_after_seconds(response) is None


def test_a_project_without_api_key_skips_its_lists_with_a_warning(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
):
    tap = TapUsersnap(config=base_config(sandbox.url), parse_env_config=False)
    for name in ("project_assignees", "project_metrics"):
        assert list(tap.streams[name].get_records({"project_id": "p", "api_key": None})) == []
    assert "has no api_key" in caplog.text
    assert sandbox.requests == []


def test_proxies_come_from_the_environment_with_no_proxy_honoured(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
):
    with socket.socket() as probe:  # a proxy address nothing listens on
        probe.bind(("127.0.0.1", 0))
        proxy = f"http://127.0.0.1:{probe.getsockname()[1]}"
    for variable in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "http_proxy"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("HTTP_PROXY", proxy)
    with pytest.raises(RetriesExhaustedError, match=r"proxy .*HTTP_PROXY"):
        sync(base_config(sandbox.url, max_concurrency=1))
    assert sandbox.requests == []  # every request went to the proxy
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    result = sync(base_config(sandbox.url, max_concurrency=1))
    assert sorted(result.ids()) == sorted(sandbox_feedbacks(sandbox))


@pytest.mark.parametrize(
    "retry_after",
    [
        pytest.param("Sun Nov  6 08:49:37 1994", id="asctime"),
        pytest.param("Sun, 06 Nov 1994 08:49:37 -0000", id="minus-zero-zone"),
        pytest.param("Sunday, 06-Nov-94 08:49:37 GMT", id="rfc850"),
        pytest.param("Sun, 06 Nov 1994 08:49:99 GMT", id="out-of-range"),
        pytest.param("soon", id="garbage"),
    ],
)
def test_a_retry_after_in_any_date_form_is_retried_not_a_crash(
    make_sandbox: t.Callable[..., Sandbox], retry_after: str
):
    sandbox = make_sandbox(projects=1, feedbacks_per_project=[10])
    sandbox.faults.status_every_n = 2
    sandbox.faults.status_code = 429
    sandbox.faults.retry_after = retry_after
    result = sync(base_config(sandbox.url, **FAST_RETRIES))
    assert sorted(result.ids()) == sorted(sandbox_feedbacks(sandbox))
    assert sandbox.fired["status_every_n"] > 0


def test_a_retry_after_date_without_a_zone_is_utc():
    response = requests.Response()
    later = datetime.now(UTC) + timedelta(seconds=30)
    response.headers["Retry-After"] = later.strftime("%a %b %d %H:%M:%S %Y")  # asctime
    assert 25 < retry_after_seconds(response) <= 30
    response.headers["Retry-After"] = format_datetime(later).replace("+0000", "-0000")
    assert 25 < retry_after_seconds(response) <= 30


def patch_pages(
    sandbox: Sandbox,
    monkeypatch: pytest.MonkeyPatch,
    bend: t.Callable[[int, str | None, dict[str, t.Any]], None],
) -> list[str | None]:
    """Let ``bend(call_number, after, data)`` change the feedback pages the sandbox serves.

    Returns the ``after`` of every list request, in order.
    """
    list_feedbacks = sandbox.store.list_feedbacks
    cursors_sent: list[str | None] = []

    def bent(project_id: str, limit: int, after: str | None, before: str | None) -> t.Any:
        data = list_feedbacks(project_id, limit, after, before)
        cursors_sent.append(after)
        bend(len(cursors_sent), after, data)
        return data

    monkeypatch.setattr(sandbox.store, "list_feedbacks", bent)
    return cursors_sent


def test_a_page_with_has_more_but_no_cursor_is_asked_again_not_from_page_one(
    make_sandbox: t.Callable[..., Sandbox], monkeypatch: pytest.MonkeyPatch
):
    sandbox = make_sandbox(projects=1, feedbacks_per_project=[30])

    def no_cursor_on_the_second_call(call: int, _after: str | None, data: dict) -> None:
        if call == 2:
            data["next"] = None

    cursors_sent = patch_pages(sandbox, monkeypatch, no_cursor_on_the_second_call)
    result = sync(base_config(sandbox.url, page_size=10, **FAST_RETRIES))
    assert sorted(result.ids()) == sorted(sandbox_feedbacks(sandbox))
    assert cursors_sent[0] is None
    assert None not in cursors_sent[1:], "page 1 was asked for again"
    assert cursors_sent[1] == cursors_sent[2]  # the malformed page, asked for again
    assert len(cursors_sent) == 4


def test_a_page_whose_cursor_is_its_own_is_retried_then_fails_naming_the_path(
    make_sandbox: t.Callable[..., Sandbox], monkeypatch: pytest.MonkeyPatch
):
    sandbox = make_sandbox(projects=1, feedbacks_per_project=[30])

    def the_same_cursor_again(_call: int, after: str | None, data: dict) -> None:
        if after:
            data["next"] = {"after": after}
            data["has_more"] = True

    cursors_sent = patch_pages(sandbox, monkeypatch, the_same_cursor_again)
    with pytest.raises(
        RetriesExhaustedError, match=r"cursor this page was asked for.* GET /v0\.1/projects/"
    ):
        sync(base_config(sandbox.url, page_size=10, **FAST_RETRIES))
    assert len(cursors_sent) == 2 + FAST_RETRIES["max_retries"]


def test_cursors_that_lead_back_to_a_page_already_read_fail_naming_the_path(
    make_sandbox: t.Callable[..., Sandbox], monkeypatch: pytest.MonkeyPatch
):
    sandbox = make_sandbox(projects=1, feedbacks_per_project=[50])
    first_cursor: list[str] = []

    def back_to_page_two(call: int, _after: str | None, data: dict) -> None:
        if call == 1:
            first_cursor.append(data["next"]["after"])
        if call == 3:
            data["next"] = {"after": first_cursor[0]}

    cursors_sent = patch_pages(sandbox, monkeypatch, back_to_page_two)
    with pytest.raises(PaginationLoopError, match=r"GET /v0\.1/projects/\S+/feedbacks: .*"):
        sync(base_config(sandbox.url, page_size=10, **FAST_RETRIES))
    assert len(cursors_sent) == 3


def test_a_proxy_refusing_the_tunnel_fails_at_once_naming_the_proxy_settings(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    from tap_usersnap.transport import ProxyRefusedError

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    tunnels_asked = []

    def refuse_every_tunnel() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return  # closed: the test is over
            with connection:
                tunnels_asked.append(connection.recv(4096).split(b" ", 1)[0])
                connection.sendall(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n")

    threading.Thread(target=refuse_every_tunnel, daemon=True).start()
    for variable in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "https_proxy"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{listener.getsockname()[1]}")
    try:
        with pytest.raises(ProxyRefusedError, match=r"407 Proxy Authentication.*HTTPS_PROXY"):
            sync(base_config("https://api.usersnap.example/v0.1", max_retries=2))
    finally:
        listener.close()
    assert tunnels_asked == [b"CONNECT"]
    assert [r for r in caplog.records if "Retrying" in r.getMessage()] == []
