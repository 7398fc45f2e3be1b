"""What a run says it did: a progress line about every 10 s, a summary line per stream."""

from __future__ import annotations

import sys
import threading
import time
import typing as t
from functools import cached_property

from singer_sdk import RESTStream, metrics

if sys.version_info >= (3, 12):
    from typing import override
else:
    from typing_extensions import override

if t.TYPE_CHECKING:
    import logging
    from collections.abc import Iterator, Mapping

    import requests
    from singer_sdk.helpers.types import Context

_clock = time.monotonic


def _plural(count: int, noun: str, plural: str | None = None) -> str:
    return f"{count:,} {noun if count == 1 else plural or noun + 's'}"


class StreamReport:
    """What one stream did.

    Records are counted on the main thread; requests and retries also in the prefetch
    workers.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.records = 0
        self.projects = 0
        self.started: float | None = None
        self.finished: float | None = None
        self._requests = 0  # requests that succeeded
        self._retries = 0
        self._failures = 0  # requests that failed for good
        self._lock = threading.Lock()
        #: Projects read completely whose count the API gives otherwise: (read, counted).
        self.count_mismatches: dict[str, tuple[int, int]] = {}

    def count_request(self) -> None:
        """A request succeeded, perhaps after retries."""
        with self._lock:
            self._requests += 1

    def count_retry(self) -> None:
        """A request failed and is sent again."""
        with self._lock:
            self._retries += 1

    def count_failure(self) -> None:
        """A request failed for good."""
        with self._lock:
            self._failures += 1

    @property
    def requests(self) -> int:
        """Requests sent, retries included."""
        return self._requests + self._retries + self._failures

    @property
    def retries(self) -> int:
        """Requests sent again after a failure."""
        return self._retries

    def summary(self) -> str:
        """E.g. ``feedbacks: 750 records from 3 projects in 12 requests (1 retry), 2.3 s``."""
        projects = f" from {_plural(self.projects, 'project')}" if self.projects else ""
        seconds = (self.finished or _clock()) - (self.started or _clock())
        mismatches = "".join(
            f"; project {project_id}: read {read:,}, the API counts {counted:,}"
            for project_id, (read, counted) in self.count_mismatches.items()
        )
        return (
            f"{self.name}: {_plural(self.records, 'record')}{projects} in "
            f"{_plural(self.requests, 'request')} ({_plural(self.retries, 'retry', 'retries')}), "
            f"{seconds:.1f} s{mismatches}"
        )


class RunReport:
    """The tap's counts across streams, and the progress line they make."""

    #: Seconds between progress lines; tests make it small.
    PROGRESS_INTERVAL_SECONDS: t.ClassVar[float] = 10.0

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger
        #: Projects the run will sync, once the projects stream has listed them.
        self.projects_total: int | None = None
        self.next_progress_at = float("inf")  # no progress line before the first partition
        self._streams: dict[str, StreamReport] = {}
        self._started: float | None = None
        self._project_index = 0
        self._project_id: str | None = None

    def stream(self, name: str) -> StreamReport:
        """The report of stream ``name``."""
        return self._streams.setdefault(name, StreamReport(name))

    def partition_started(self, report: StreamReport, context: Mapping[str, t.Any] | None) -> None:
        """A stream starts a partition: the whole stream, or one project of a child stream."""
        now = _clock()
        if self._started is None:
            self._started = now
            self.next_progress_at = now + self.PROGRESS_INTERVAL_SECONDS
        if report.started is None:
            report.started = now
        project_id = context.get("project_id") if context else None
        if project_id is not None:
            report.projects += 1
            if project_id != self._project_id:  # the SDK syncs a project's children together
                self._project_id = project_id
                self._project_index += 1

    def log_progress(self, now: float) -> None:
        """One progress line; the next is due an interval from ``now``."""
        self.next_progress_at = now + self.PROGRESS_INTERVAL_SECONDS
        records = sum(report.records for report in self._streams.values())
        elapsed = now - (self._started or now)
        rate = records / elapsed if elapsed > 0 else 0.0
        total = f" of {self.projects_total}" if self.projects_total is not None else ""
        self.logger.info(
            "Progress: project %d%s, %s so far, %.0f records/s",
            self._project_index,
            total,
            _plural(records, "record"),
            rate,
        )


class _RecordCounter(metrics.Counter):
    """The SDK's record counter, also counting into the run report: O(1) a record."""

    def __init__(self, counter: metrics.Counter, report: StreamReport, run: RunReport) -> None:
        super().__init__(counter.metric, counter.tags, counter.log_interval)
        self._report = report
        self._run = run

    @override
    def increment(self, value: int = 1) -> None:
        super().increment(value)
        self._report.records += value
        if (now := _clock()) >= self._run.next_progress_at:
            self._run.log_progress(now)

    @override
    def exit(self) -> None:
        super().exit()
        self._report.finished = _clock()


class _ReportingTap(t.Protocol):
    @property
    def run_report(self) -> RunReport: ...


class RunReportingStream(RESTStream[t.Any]):
    """A REST stream that counts its records, projects, requests and retries."""

    @cached_property
    def stream_report(self) -> StreamReport:
        """This stream's counts."""
        return self.run_report.stream(self.name)

    @property
    def run_report(self) -> RunReport:
        """The counts of the whole run, kept by the tap."""
        return t.cast("_ReportingTap", self._tap).run_report

    @override
    def get_record_counter(
        self, *, endpoint: str | None = None, log_interval: float = metrics.DEFAULT_LOG_INTERVAL
    ) -> metrics.Counter:
        """The SDK asks for a record counter as each partition starts."""
        counter = super().get_record_counter(endpoint=endpoint, log_interval=log_interval)
        self.run_report.partition_started(self.stream_report, self.context)
        return _RecordCounter(counter, self.stream_report, self.run_report)

    @override
    def calculate_sync_cost(
        self,
        request: requests.PreparedRequest,
        response: requests.Response,
        context: Context | None,
    ) -> dict[str, int]:
        """Count a request that succeeded: the SDK calls this once for each, retries aside."""
        self.stream_report.count_request()
        return super().calculate_sync_cost(request, response, context)

    @override
    def request_records(self, context: Context | None) -> Iterator[dict[str, t.Any]]:
        """Also count a request that failed for good: a stream may carry on without it."""
        try:
            yield from super().request_records(context)
        except Exception:
            self.stream_report.count_failure()
            raise

    @override
    def log_sync_costs(self) -> None:
        """The stream's summary line: the SDK calls this once a stream, after the sync."""
        super().log_sync_costs()
        if self.stream_report.started is not None:
            self.run_report.logger.info("%s", self.stream_report.summary())
