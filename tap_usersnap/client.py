"""The base REST stream: Usersnap's envelope, errors, retries and the shared HTTP session."""

from __future__ import annotations

import itertools
import random
import sys
import threading
import time
import typing as t
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import cached_property
from http import HTTPStatus
from urllib.parse import urlparse

from requests.adapters import HTTPAdapter
from singer_sdk.exceptions import FatalAPIError, RetriableAPIError
from singer_sdk.helpers.conform import TypeConformanceLevel

from tap_usersnap.envelope import MalformedResponseError, describe_error, error_envelope, payload
from tap_usersnap.projection import Projection
from tap_usersnap.run_report import RunReportingStream

if sys.version_info >= (3, 12):
    from typing import override
else:
    from typing_extensions import override

if t.TYPE_CHECKING:
    from collections.abc import Callable, Generator, Iterable

    import requests
    from singer_sdk.helpers.types import Context, Record

    from tap_usersnap.auth import UsersnapJWTAuthenticator
    from tap_usersnap.tap import TapUsersnap

# A single retry never waits longer than this, whatever Retry-After asks for.
MAX_RETRY_WAIT_SECONDS = 60.0
FIRST_RETRY_WAIT_SECONDS = 0.5


class UsersnapAPIError(FatalAPIError):
    """A non-retryable API error, carrying what the caller needs to decide on a fallback."""

    def __init__(self, message: str, *, status: int, errortype: str | None) -> None:
        super().__init__(message)
        self.status = status
        self.errortype = errortype


class RateLimitGate:
    """A pause shared by every request of the tap, so one 429 slows all workers down."""

    def __init__(self, clock: t.Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._resume_at = 0.0
        self._lock = threading.Lock()

    def pause(self, seconds: float) -> None:
        """Hold every request for at least ``seconds`` from now."""
        with self._lock:
            self._resume_at = max(self._resume_at, self._clock() + seconds)

    def wait(self) -> None:
        """Block until the shared pause, if any, is over."""
        while (delay := self._resume_at - self._clock()) > 0:
            time.sleep(delay)


class GatedHTTPAdapter(HTTPAdapter):
    """Sends through the shared rate-limit gate."""

    def __init__(self, gate: RateLimitGate, pool_size: int) -> None:
        super().__init__(pool_connections=pool_size, pool_maxsize=pool_size)
        self.gate = gate

    @override
    def send(
        self, request: requests.PreparedRequest, *args: t.Any, **kwargs: t.Any
    ) -> requests.Response:
        self.gate.wait()
        return super().send(request, *args, **kwargs)


def retry_after_seconds(response: requests.Response | None) -> float | None:
    """Seconds asked for by a ``Retry-After`` header (in seconds or an HTTP date), if any."""
    value = response.headers.get("Retry-After", "") if response is not None else ""
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())


class UsersnapStream(RunReportingStream):
    """A stream of the Usersnap platform API v0.1."""

    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE

    #: Key of the record list inside the envelope's ``data``.
    records_key: str

    @property
    def usersnap_tap(self) -> TapUsersnap:
        """The tap, typed: it owns the objects every stream shares."""
        return t.cast("TapUsersnap", self._tap)

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
        where = f"{response.request.method} {urlparse(response.url).path}"
        if status < HTTPStatus.BAD_REQUEST:
            try:
                payload(response)
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
    def backoff_wait_generator(self) -> Generator[float, t.Any, None]:
        """Exponential waits, or what ``Retry-After`` asks for; a 429 pauses every worker."""
        exception = yield  # type: ignore[misc]
        for attempt in itertools.count():
            response = getattr(exception, "response", None)
            wait = retry_after_seconds(response)
            if wait is None:
                wait = FIRST_RETRY_WAIT_SECONDS * 2**attempt
            wait = min(wait, MAX_RETRY_WAIT_SECONDS)
            if response is not None and response.status_code == HTTPStatus.TOO_MANY_REQUESTS:
                self.usersnap_tap.rate_limit_gate.pause(wait)
            exception = yield wait

    @override
    def backoff_max_tries(self) -> int:
        return int(self.config["max_retries"]) + 1

    @override
    def backoff_jitter(self, value: float) -> float:
        """Up to a quarter more than asked, never less (Retry-After is a minimum)."""
        return value * (1 + random.random() / 4)

    @override
    def backoff_handler(self, details: t.Any) -> None:
        self.stream_report.count_retry()
        self.logger.warning(
            "Retrying in %.1f s (attempt %d of %d) after: %s",
            details.get("wait", 0.0),
            details.get("tries", 0),
            self.backoff_max_tries(),
            details.get("exception"),
        )
