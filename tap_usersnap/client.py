"""The base REST stream: Usersnap's envelope, errors, retries and the shared HTTP session."""

from __future__ import annotations

import functools
import itertools
import random
import sys
import typing as t
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import cached_property
from http import HTTPStatus
from urllib.parse import parse_qs, urlparse

import backoff
import requests
from singer_sdk.exceptions import FatalAPIError, RetriableAPIError
from singer_sdk.helpers._catalog import pop_deselected_record_properties
from singer_sdk.helpers.conform import TypeConformanceLevel
from singer_sdk.singerlib import RecordMessage

from tap_usersnap.envelope import (
    MalformedResponseError,
    check_page,
    describe_error,
    error_envelope,
    payload,
)
from tap_usersnap.errors import UsersnapError
from tap_usersnap.logs import REPORTED_BY_THE_CLI
from tap_usersnap.projection import Projection
from tap_usersnap.run_report import RunReportingStream
from tap_usersnap.transport import PROXY_VARIABLES, connect_failure, origin

if sys.version_info >= (3, 12):
    from typing import override
else:
    from typing_extensions import override

if t.TYPE_CHECKING:
    import threading
    from collections.abc import Callable, Generator, Iterable

    from singer_sdk.helpers.types import Context, Record

    from tap_usersnap.auth import UsersnapJWTAuthenticator
    from tap_usersnap.prefetch import Prefetcher
    from tap_usersnap.transport import RateLimitGate

# A single retry never waits longer than this, jitter included, whatever Retry-After asks for.
MAX_RETRY_WAIT_SECONDS = 60.0
FIRST_RETRY_WAIT_SECONDS = 0.5
# Retries of a connection that cannot be opened (refused, unreachable): a restarting
# server is back within seconds; a wrong api_url never is.
CONNECT_RETRIES = 3
# What the SDK's RESTStream.request_decorator retries.
RETRIED_ERRORS = (
    ConnectionResetError,
    RetriableAPIError,
    requests.exceptions.Timeout,
    requests.exceptions.ConnectionError,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)


class UsersnapAPIError(UsersnapError, FatalAPIError):
    """A non-retryable API error, carrying what the caller needs to decide on a fallback."""

    def __init__(self, message: str, *, status: int, errortype: str | None) -> None:
        super().__init__(message)
        self.status = status
        self.errortype = errortype


class RetriesExhaustedError(UsersnapError):
    """A request that failed on every try: the API or the network did not recover."""


class SharedByStreams(t.Protocol):
    """What the tap holds once for all streams and workers."""

    authenticator: UsersnapJWTAuthenticator
    rate_limit_gate: RateLimitGate
    http_session: requests.Session
    prefetcher: Prefetcher
    #: Requests of parallel created_at ranges in flight, across all projects: at most this.
    range_request_slots: threading.Semaphore
    #: Why a project's lists could not be read, by project id and stream: the run goes on.
    refused_projects: dict[str, dict[str, str]]
    #: Reads that may have missed rows, by stream and project id (or path): why (no reconcile).
    incomplete_reads: dict[str, dict[str, str]]


def retry_after_seconds(response: requests.Response | None) -> float | None:
    """Seconds asked for by a ``Retry-After`` header (in seconds or an HTTP date), if any.

    Any date form RFC 7231 lets a server send (asctime, ``-0000``) is read as UTC; a value
    that cannot be read asks for nothing.
    """
    value = response.headers.get("Retry-After", "") if response is not None else ""
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())


class UsersnapStream(RunReportingStream):
    """A stream of the Usersnap platform API v0.1."""

    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE

    #: Key of the record list inside the envelope's ``data``.
    records_key: str
    #: Other members ``data`` must hold, and their types, for a page to count: a page
    #: without them is malformed (retried), never taken for an empty last page.
    page_members: t.ClassVar[dict[str, type]] = {}
    #: Whether a page's records may reach ``parse_response`` undecoded (see ``payload``).
    raw_records: t.ClassVar[bool] = False

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        super().__init__(*args, **kwargs)
        self.logger.addFilter(REPORTED_BY_THE_CLI)

    @property
    def usersnap_tap(self) -> SharedByStreams:
        """The tap, typed: it owns the objects every stream shares."""
        return t.cast("SharedByStreams", self._tap)

    @override
    @property
    def emit_activate_version_messages(self) -> bool:
        """Never at the start of a partition: the tap sends one after a complete run."""
        return False

    @override
    @property
    def url_base(self) -> str:
        return str(self.config["api_url"]).rstrip("/")

    @override
    @property
    def authenticator(self) -> UsersnapJWTAuthenticator:
        return self.usersnap_tap.authenticator

    @override
    @property
    def requests_session(self) -> requests.Session:
        return self.usersnap_tap.http_session

    @override
    @property
    def timeout(self) -> int:
        return int(self.config["request_timeout"])

    @override
    def parse_response(self, response: requests.Response) -> Iterable[dict[str, t.Any]]:
        yield from payload(response).get(self.records_key) or []

    @override
    def post_process(self, row: Record, context: Context | None = None) -> Record | None:
        return self.projection(row)

    @cached_property
    def projection(self) -> Projection:
        """Drops what the schema does not declare.

        This is the part of the SDK's type conformance the API's JSON needs, at a fraction
        of its cost; conformance itself is turned off (``TYPE_CONFORMANCE_LEVEL``).
        """
        return Projection(self.schema, self.logger)

    @cached_property
    def deselects_properties(self) -> bool:
        """Whether the catalog deselects any property of this stream."""
        return not all(self.mask.values())

    @override
    def _generate_record_messages(self, record: Record) -> Generator[RecordMessage, None, None]:
        """The SDK's RECORD messages, without walking every record when nothing is deselected.

        The SDK walks each record for deselected properties (a fifth of the main thread's
        time here), even when the catalog selects everything; then it conforms types, which
        is off here. Otherwise this is the SDK's own: the walk when needed, each stream map,
        then the message with the stream's version.
        """
        if self.deselects_properties:
            pop_deselected_record_properties(record, self.schema, self.mask)
        for stream_map in self.stream_maps:
            if (mapped := stream_map.transform(record)) is not None:
                yield RecordMessage(
                    stream=stream_map.stream_alias,
                    record=mapped,
                    version=self._stream_version,
                    time_extracted=datetime.now(UTC),
                )

    def fetcher(self, context: Context) -> Callable[[], Iterable[t.Any]]:
        """The pages ``get_records`` reads for ``context``; runs in a worker, reads no state.

        By default one page: the whole (unpaginated) list.
        """
        return lambda: [list(self.request_records(context))]

    def fetched(self, context: Context) -> Iterable[t.Any]:
        """The pages for ``context``: prefetched if its project was announced, else fetched now."""
        prefetched = self.usersnap_tap.prefetcher.take((self.name, context["project_id"]))
        return self.fetcher(context)() if prefetched is None else prefetched

    @override
    def validate_response(self, response: requests.Response) -> None:
        status = response.status_code
        url = urlparse(response.url)
        where = f"{response.request.method} {url.path}"
        if status < HTTPStatus.BAD_REQUEST:
            sent_after = parse_qs(url.query).get("after", [None])[0]
            try:
                data = payload(response, self.records_key if self.raw_records else None)
                check_page(data, self.records_key, self.page_members, sent_after)
            except MalformedResponseError as exc:
                raise RetriableAPIError(f"{exc} for {where}", response) from exc
            return
        body = error_envelope(response)
        errortype = body.get("errortype") if body else None
        if status == HTTPStatus.UNAUTHORIZED:
            msg = (
                "Usersnap rejected the credentials: check the settings jwt_id and jwt_secret "
                f"({status} {errortype or 'no errortype'} for {where})"
            )
            raise UsersnapAPIError(msg, status=status, errortype=errortype)
        if status == HTTPStatus.TOO_MANY_REQUESTS or status >= HTTPStatus.INTERNAL_SERVER_ERROR:
            msg = f"Usersnap API answered {status} ({errortype or 'non-JSON body'}) for {where}"
            raise RetriableAPIError(msg, response)
        msg = f"Usersnap API error {status} {describe_error(body)} for {where}"
        raise UsersnapAPIError(msg, status=status, errortype=errortype)

    @override
    def request_decorator(self, func: Callable[..., t.Any]) -> Callable[..., t.Any]:
        """The SDK's retries, each logged once (``backoff_handler``; backoff's own log is off).

        A request that fails on every try ends as one ``RetriesExhaustedError`` naming
        its cause and what to check.
        """
        retried = backoff.on_exception(
            self.backoff_wait_generator,
            RETRIED_ERRORS,
            max_tries=self.backoff_max_tries,
            on_backoff=self.backoff_handler,
            jitter=self.backoff_jitter,
            logger=None,
        )(func)

        @functools.wraps(func)
        def request(*args: t.Any, **kwargs: t.Any) -> t.Any:
            try:
                return retried(*args, **kwargs)
            except RETRIED_ERRORS as exc:
                raise RetriesExhaustedError(self.exhausted_message(exc)) from exc

        return request

    def failure_cause(self, exc: BaseException) -> str:
        """A request's failure in a few words: what failed, where."""
        request = getattr(exc, "request", None)
        where = origin(getattr(request, "url", None) or self.url_base)
        if refused := connect_failure(exc):
            if isinstance(exc, requests.exceptions.ProxyError):
                return f"cannot reach the proxy for {where} ({refused.strerror or refused})"
            return f"cannot connect to {where} ({refused.strerror or refused})"
        if isinstance(exc, requests.exceptions.Timeout):
            return f"no answer from {where} within request_timeout ({self.timeout} s)"
        if isinstance(exc, RetriableAPIError):
            return str(exc)
        return f"the connection to {where} broke off ({type(exc).__name__})"

    def exhausted_message(self, exc: BaseException) -> str:
        """The cause of a request's last failure, and what to check."""
        cause = self.failure_cause(exc)
        cause = cause[0].upper() + cause[1:]
        if isinstance(exc, requests.exceptions.ProxyError):
            return f"{cause}: check {PROXY_VARIABLES} in the environment"
        if connect_failure(exc):
            return f"{cause}: check the setting api_url and that the host is reachable"
        tries = f"{self.config['max_retries']} retries (max_retries)"
        if isinstance(exc, requests.exceptions.Timeout):
            return (
                f"{cause}, after {tries}: check the network and the setting api_url, "
                "or raise request_timeout"
            )
        return (
            f"{cause}, still after {tries}: check the setting api_url and Usersnap's status, "
            "then run again (the run resumes from its last state)"
        )

    @override
    def backoff_wait_generator(self) -> Generator[float, t.Any, None]:
        """Exponential waits, longer if ``Retry-After`` asks; a 429 pauses every worker.

        ``Retry-After`` can only lengthen a wait (``0`` or a past date would otherwise
        remove the backoff). A connection that cannot be opened gets a few quick retries:
        then the generator ends, and backoff gives up.
        """
        exception = yield  # type: ignore[misc]
        connect_failures = 0
        for attempt in itertools.count():
            if connect_failure(exception):
                connect_failures += 1
                if connect_failures > CONNECT_RETRIES:
                    return
            response = getattr(exception, "response", None)
            wait = FIRST_RETRY_WAIT_SECONDS * 2**attempt
            wait = min(max(wait, retry_after_seconds(response) or 0.0), MAX_RETRY_WAIT_SECONDS)
            if response is not None and response.status_code == HTTPStatus.TOO_MANY_REQUESTS:
                self.usersnap_tap.rate_limit_gate.pause(wait)
            exception = yield wait

    @override
    def backoff_max_tries(self) -> int:
        return int(self.config["max_retries"]) + 1

    @override
    def backoff_jitter(self, value: float) -> float:
        """Up to a quarter more than asked, never less (Retry-After is a minimum), capped."""
        return min(value * (1 + random.random() / 4), MAX_RETRY_WAIT_SECONDS)

    @override
    def backoff_handler(self, details: t.Any) -> None:
        exc = details["exception"]
        self.stream_report.count_retry()
        self.logger.warning(
            "Retrying in %.1f s (retry %d of at most %d) after: %s",
            details["wait"],
            details["tries"],
            CONNECT_RETRIES if connect_failure(exc) else self.backoff_max_tries() - 1,
            self.failure_cause(exc),
        )
