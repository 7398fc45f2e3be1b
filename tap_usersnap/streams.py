"""The streams: projects, and each project's feedbacks, assignees and metrics."""

from __future__ import annotations

import copy
import logging
import sys
import typing as t
from dataclasses import dataclass
from functools import cached_property
from http import HTTPStatus
from urllib.parse import urlsplit

from singer_sdk import SchemaDirectory, StreamSchema
from singer_sdk.helpers._state import PROGRESS_MARKERS
from singer_sdk.pagination import SinglePagePaginator
from singer_sdk.singerlib.catalog import REPLICATION_INCREMENTAL

from tap_usersnap import schemas
from tap_usersnap.client import UsersnapAPIError, UsersnapStream
from tap_usersnap.completeness import FeedbackCountStream, ReadTally, check_count
from tap_usersnap.envelope import Records, payload
from tap_usersnap.errors import UsersnapError
from tap_usersnap.logs import RESUMABLE_ANYWAY
from tap_usersnap.pagination import FeedbackCursorPaginator
from tap_usersnap.ranges import (
    COUNTED,
    CREATED_RANGE,
    NEWEST_FIRST,
    NEWEST_UPDATED_FIRST,
    RANGE_INDEX,
    RANGE_READ,
    filter_body,
    full_read,
    read_ranges,
)
from tap_usersnap.reconcile import reconciled, warn_of_projects_gone
from tap_usersnap.state import RESUME_KEY, filters_fingerprint, normalize_timestamp, rescope

if sys.version_info >= (3, 12):
    from typing import override
else:
    from typing_extensions import override

if t.TYPE_CHECKING:
    from collections.abc import Callable, Generator, Iterable, Iterator

    import requests
    from singer_sdk.helpers.types import Context, Record
    from singer_sdk.streams.rest import HTTPRequest, PageContext

SCHEMAS = SchemaDirectory(schemas)

#: Context key (internal) carrying the cursor a resumed project starts from.
START_AFTER = "start_after"
#: A project whose cursors the API keeps refusing is read again from its first page at
#: most this many times, then left for the next run.
MAX_CURSOR_RESTARTS = 3
#: Statuses with which the API refuses a cursor (documented: 400; its feedback is gone).
CURSOR_REFUSED = frozenset({HTTPStatus.BAD_REQUEST, HTTPStatus.NOT_FOUND})


class CursorRefusedError(UsersnapError):
    """A project refused the cursors of every restart: it is left for the next run."""


def refuses_project(error: Exception) -> bool:
    """Whether ``error`` is about one project (access removed, deleted), not the whole run."""
    if isinstance(error, CursorRefusedError):
        return True
    return isinstance(error, UsersnapAPIError) and (
        error.status in {HTTPStatus.FORBIDDEN, HTTPStatus.NOT_FOUND}
        or error.errortype == "SITE_NOT_FOUND"
    )


@dataclass(frozen=True)
class StartingPoint:
    """Where a project's feedback is read from (``after``) and down to (``floor``)."""

    floor: str | None
    after: str | None = None
    #: The newest ``updated_at`` an interrupted run wrote: the bookmark to be.
    newest: str | None = None
    #: An interrupted range read: its ``newest`` and ``ranges`` (see ``ranges.RANGE_READ``).
    range_read: dict[str, t.Any] | None = None


class ProjectsStream(UsersnapStream):
    """Every project the credentials can see, or those named in ``project_ids``."""

    name = "projects"
    path = "/projects"
    primary_keys = ("project_id",)
    replication_key = None
    schema = StreamSchema(SCHEMAS)
    records_key = "projects"

    @override
    def get_new_paginator(self) -> SinglePagePaginator:
        return SinglePagePaginator()

    @override
    def parse_response(self, response: requests.Response) -> Iterable[dict[str, t.Any]]:
        records = list(super().parse_response(response))
        if payload(response).get("has_more"):
            self.logger.warning(
                "GET /projects says has_more, but the endpoint has no pagination: "
                "only the first %d projects are synced",
                len(records),
            )
            # A reconcile would remove the rows of every project not listed.
            why = f"GET /projects listed only its first {len(records)} projects"
            for stream in self._tap.streams:
                self.usersnap_tap.incomplete_reads.setdefault(stream, {})[self.path] = why
        return records

    @override
    def get_records(self, context: Context | None) -> Iterable[dict[str, t.Any]]:
        projects = list(self.request_records(context))
        wanted = self.config.get("project_ids")
        if wanted:
            known = {project.get("project_id") for project in projects}
            if unknown := [project_id for project_id in wanted if project_id not in known]:
                msg = (
                    f"project_ids: Usersnap does not know project(s) {', '.join(unknown)} "
                    f"(the credentials can see {len(known)} project(s))"
                )
                raise UsersnapError(msg)
            projects = [project for project in projects if project.get("project_id") in wanted]
        else:
            warn_of_projects_gone(self._tap, (project.get("project_id") for project in projects))
        # Those the lists can be read for: a project without an id has none to address.
        self.run_report.projects_total = sum(1 for project in projects if project.get("project_id"))
        self._announce_children(projects)
        yield from projects

    def _announce_children(self, projects: list[dict[str, t.Any]]) -> None:
        """Let workers fetch every project's children in the order the SDK will sync them."""
        prefetcher = self.usersnap_tap.prefetcher
        for project in projects:
            if not project.get("project_id"):
                continue
            child_context = self.get_child_context(project, None)
            for child in self.child_streams:
                if child.selected or child.has_selected_descendents:
                    child_stream = t.cast("UsersnapStream", child)
                    context = child_stream.preprocess_context(child_context)
                    key = (child_stream.name, project["project_id"])
                    prefetcher.announce(key, child_stream.fetcher(context))

    @override
    def get_child_context(self, record: Record, context: Context | None) -> dict[str, t.Any]:
        return {"project_id": record["project_id"], "api_key": record.get("api_key")}

    @override
    def generate_child_contexts(
        self, record: Record, context: Context | None
    ) -> Iterable[Context | None]:
        """No child context for a project without an id: nothing of it can be addressed."""
        if not record.get("project_id"):
            self.logger.warning("A project without project_id: its feedback cannot be read")
            return
        yield from super().generate_child_contexts(record, context)


class PerProjectStream(UsersnapStream):
    """A stream read project by project: a project the API refuses is skipped, not fatal."""

    #: What a refusal of a project leaves behind, as the run's last line tells it.
    refusal_consequence = "not synced in this run"

    def project_pages(self, context: Context) -> Iterator[t.Any]:
        """The project's pages; if the API refuses the project, those read until then.

        The run goes on with the other projects and fails naming this one once all is synced.
        """
        try:
            yield from self.fetched(context)
        except UsersnapError as error:
            if not refuses_project(error):
                raise
            project_id = context["project_id"]
            self.logger.warning("Skipping the %s of project %s: %s", self.name, project_id, error)
            refusals = self.usersnap_tap.refused_projects.setdefault(project_id, {})
            refusals[self.name] = f"{error} ({self.refusal_consequence})"
            self.project_refused(context)

    def project_refused(self, context: Context) -> None:
        """Undo what the refused project's records would otherwise move."""


class ProjectChildStream(PerProjectStream):
    """A per-project list addressed by the project's ``api_key``, tagged with its id."""

    parent_stream_type = ProjectsStream
    # Full-table lists need no per-project state; keep api keys out of the state.
    state_partitioning_keys: t.ClassVar[list[str]] = []

    @override
    def get_new_paginator(self) -> SinglePagePaginator:
        return SinglePagePaginator()

    @override
    def fetcher(self, context: Context) -> Callable[[], Iterable[t.Any]]:
        if not context.get("api_key"):
            return list  # no api key, no list to ask for: get_records says so
        return super().fetcher(context)

    @override
    def get_records(self, context: Context | None) -> Iterable[dict[str, t.Any]]:
        if context is None:
            msg = f"{self.name} are read per project"
            raise ValueError(msg)
        if not context.get("api_key"):
            project_id = context["project_id"]
            self.logger.warning(
                "Project %s has no api_key: its %s cannot be read", project_id, self.name
            )
            incomplete = self.usersnap_tap.incomplete_reads.setdefault(self.name, {})
            incomplete[project_id] = f"project {project_id} is listed without api_key"
        for records in self.project_pages(context):
            yield from records

    @override
    def post_process(self, row: Record, context: Context | None = None) -> Record | None:
        row["project_id"] = context["project_id"] if context else None
        return super().post_process(row, context)


class ProjectAssigneesStream(ProjectChildStream):
    """Users a project's feedback can be assigned to."""

    name = "project_assignees"
    path = "/projects/{api_key}/assignees"
    primary_keys = ("project_id", "user_id")
    schema = StreamSchema(SCHEMAS)
    records_key = "users"


class ProjectMetricsStream(ProjectChildStream):
    """The metrics (feedback fields) a project collects."""

    name = "project_metrics"
    path = "/projects/{api_key}/metrics"
    primary_keys = ("project_id", "name")
    schema = StreamSchema(SCHEMAS)
    records_key = "metrics"


class FeedbacksStream(PerProjectStream):
    """A project's feedback, newest ``updated_at`` first, read down to the bookmark."""

    refusal_consequence = "its bookmark did not move: the next run reads what this one missed"

    name = "feedbacks"
    parent_stream_type = ProjectsStream
    primary_keys = ("feedback_id",)
    replication_key = "updated_at"
    schema = StreamSchema(SCHEMAS)
    records_key = "feedbacks"
    page_members: t.ClassVar[dict[str, type]] = {"has_more": bool}
    raw_records = True
    path = "/projects/{project_id}/feedbacks"

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        super().__init__(*args, **kwargs)
        # A STATE message about once a page bounds what a crash costs to one page or two.
        self.STATE_MSG_FREQUENCY = int(self.config["page_size"])
        if self.config.get("filters"):
            self.path = "/projects/{project_id}/feedbacks/filter"
            self.http_method = "POST"
        logging.getLogger("singer_sdk").addFilter(RESUMABLE_ANYWAY)  # once: a set of filters
        #: Each project's starting point, decided once (when announced, or when synced).
        self._starting_points: dict[str, StartingPoint] = {}
        #: The newest ``updated_at`` handed to the SDK's state in the project being synced.
        self._newest_marked: str | None = None

    @override
    def preprocess_context(self, context: Context) -> Context:
        """Key the state by project id alone: an api key may be rotated."""
        return {"project_id": context["project_id"]}

    @override
    def get_new_paginator(self) -> FeedbackCursorPaginator:
        return FeedbackCursorPaginator(None)

    @override
    def get_url_params(self, context: Context | None, next_page_token: t.Any) -> dict[str, t.Any]:
        params: dict[str, t.Any] = {"limit": self.config["page_size"]}
        after = next_page_token or (context or {}).get(START_AFTER)
        if after:
            params["after"] = after
        return params

    @override
    def prepare_request_payload(
        self, context: Context | None, next_page_token: t.Any
    ) -> dict[str, t.Any] | None:
        if not self.config.get("filters"):
            return None
        return filter_body(self.config["filters"], NEWEST_UPDATED_FIRST)

    @override
    def parse_response(self, response: requests.Response) -> Iterable[dict[str, t.Any]]:
        """One item a page: ``{"feedbacks": Records}``, each decoded where it is read.

        That is the consumer, mostly: the fetch worker reads only the last one (to stop at
        the bookmark), and its next request goes out without waiting for the rest.
        """
        data = payload(response)

        def prepare(feedback: dict[str, t.Any]) -> dict[str, t.Any]:
            feedback["updated_at"] = self.comparable_updated_at(feedback, response)
            return feedback

        where = f"{response.request.method} {urlsplit(response.url).path}"
        yield {
            "feedbacks": Records(data.get(self.records_key) or [], prepare, where),
            "has_more": data.get("has_more") is True,
        }

    @override
    def get_http_request(self, *, page: PageContext) -> HTTPRequest:
        """A created_at range is read from the filter endpoint, newest created first."""
        request = super().get_http_request(page=page)
        created_range = (page.stream_context or {}).get(CREATED_RANGE)
        if created_range is None:
            return request
        request.method = "POST"
        request.url = self.filter_url(t.cast("Context", page.stream_context))
        request.data = filter_body(self.config.get("filters"), NEWEST_FIRST, created_range)
        return request

    def filter_url(self, context: Context) -> str:
        """The project's filter endpoint."""
        return f"{self.url_base}/projects/{context['project_id']}/feedbacks/filter"

    def count(self, context: Context) -> int:
        """How many feedbacks the project holds (under the filters, if any are set)."""
        return self.feedback_count.total(context["project_id"])

    def first_created(self, context: Context, order_by: dict[str, str]) -> str | None:
        """The ``created_at`` of the first feedback in ``order_by`` (the oldest or newest)."""
        body = filter_body(self.config.get("filters"), order_by)
        request = self.build_prepared_request(
            method="POST", url=self.filter_url(context), params={"limit": 1}, json=body
        )
        response = self.request_decorator(self._request)(request, context)
        self.update_sync_costs(request, response, context)  # counted like every page
        feedbacks = Records(payload(response).get(self.records_key) or [])
        return feedbacks[0].get("created_at") if feedbacks else None

    def comparable_updated_at(
        self, feedback: dict[str, t.Any], response: requests.Response
    ) -> str | None:
        """``updated_at`` in the form bookmarks compare in; null if it is no date-time.

        A feedback with an unreadable ``updated_at`` is still delivered (nothing skipped), with
        a warning: null neither moves a bookmark nor ends the read of a project early, so one
        odd record can neither stop every run at itself nor hide the records after it.
        """
        value = feedback.get("updated_at")
        if value is None:
            return None
        if isinstance(value, str):
            try:
                return normalize_timestamp(value)
            except ValueError:
                pass
        self.logger.warning(
            "Feedback %s in %s has an updated_at that is no date-time (%.60r): "
            "delivered with updated_at null",
            feedback.get("feedback_id"),
            urlsplit(response.url).path,
            value,
        )
        return None

    @override
    def _write_starting_replication_value(self, context: Context | None) -> None:
        """The SDK's call before a partition's sync: the starting point, unless decided."""
        if context is not None:
            self.starting_point(context)

    def starting_point(self, context: Context) -> StartingPoint:
        """Where to read, decided once a project (announce or sync, whichever comes first).

        By the SDK's own starting value; FULL_TABLE: all, down to start_date. A bookmark
        the settings no longer cover is dropped first, with a warning.
        """
        if (decided := self._starting_points.get(context["project_id"])) is None:
            decided = self._starting_points[context["project_id"]] = self._decide_start(context)
        return decided

    def _decide_start(self, context: Context) -> StartingPoint:
        start_date = normalize_timestamp(self.config.get("start_date"))
        if self.replication_method != REPLICATION_INCREMENTAL:
            return StartingPoint(floor=start_date)
        state = self.get_context_state(context)
        scope = {
            "filters": filters_fingerprint(self.config.get("filters")),
            "start_date": start_date,
        }
        if reason := rescope(state, scope):
            self.logger.warning(
                "Project %s: its bookmark does not cover what the settings ask for (%s): "
                "reading all its feedback again",
                context["project_id"],
                reason,
            )
        super()._write_starting_replication_value(context)
        resume = state.get(RESUME_KEY) or {}
        return StartingPoint(
            floor=normalize_timestamp(self.get_starting_replication_key_value(context)),
            after=resume.get("after"),
            newest=resume.get("newest"),
            range_read=resume if "ranges" in resume else None,
        )

    def pages(
        self, context: Context, floor: str | None, start_after: str | None
    ) -> Generator[dict[str, t.Any], None, None]:
        """Pages down to the first one that reaches below ``floor``: no request after it.

        A cursor the API refuses (its feedback was deleted meanwhile, or a stale resume
        point) restarts the project from its first page, a bounded number of times.
        """
        after = start_after
        for restart in range(MAX_CURSOR_RESTARTS + 1):
            with_cursor = after is not None
            try:
                for page in self.request_records(
                    {**context, START_AFTER: after} if after else context
                ):
                    with_cursor = True  # every later request carries a cursor
                    feedbacks = page["feedbacks"]
                    # Read before the page is queued: then its consumer alone reads it.
                    oldest = feedbacks[-1]["updated_at"] if floor and feedbacks else None
                    yield page
                    if oldest and oldest < floor:
                        return
                return
            except UsersnapAPIError as error:
                if not with_cursor or error.status not in CURSOR_REFUSED:
                    raise
                if restart == MAX_CURSOR_RESTARTS:
                    break  # no restart left: said once, below
                self.logger.warning(
                    "Project %s refused a cursor (%s): reading it again from its first page "
                    "(restart %d of %d)",
                    context["project_id"],
                    error,
                    restart + 1,
                    MAX_CURSOR_RESTARTS,
                )
                after = None
        msg = (
            f"Project {context['project_id']} refused a cursor at each of "
            f"{MAX_CURSOR_RESTARTS} restarts: its feedback is left for the next run"
        )
        raise CursorRefusedError(msg)

    @override
    def fetcher(self, context: Context) -> Callable[[], Iterable[t.Any]]:
        """Pages from the starting point, decided now: the worker reads no state.

        A reconcile reads the whole project even under ``start_date`` (which then only limits
        what is sent): a chain down to it would miss what is edited during the read, and the
        reconcile would remove its row.
        """
        start = self.starting_point(context)
        slots = self.usersnap_tap.range_request_slots
        if start.range_read:
            resume = copy.deepcopy(start.range_read)  # the state stays the consumer's
            return lambda: read_ranges(self, context, resume, slots)
        if reconciled(self) or (start.floor is None and start.after is None):
            return lambda: full_read(self, context, slots)
        return lambda: self.pages(context, start.floor, start.after)

    @override
    def get_records(self, context: Context | None) -> Iterable[dict[str, t.Any]]:
        """Feedback down to the floor; the resume point only ever names a written record."""
        if context is None:
            msg = "feedbacks are read per project"
            raise ValueError(msg)
        start = self.starting_point(context)
        del self._starting_points[context["project_id"]]  # used: a later sync decides anew
        self._newest_marked = None
        incremental = self.replication_method == REPLICATION_INCREMENTAL
        state = self.get_context_state(context) if incremental else {}
        newest = start.newest
        counted: int | str | None = None  # a full read's count, before its first page
        read = ReadTally(distinct=reconciled(self))  # what a full read has seen
        if newest:
            # What the interrupted run wrote stays the candidate bookmark of this project.
            self.state_manager.increment_state(
                {self.replication_key: newest}, context=context, replication_key="updated_at"
            )
        resume: dict[str, str | None] | None = None  # this run's, mutated: no dict a record
        range_read: dict[str, t.Any] | None = None
        for page in self.project_pages(context):
            counted = page.get(COUNTED, counted)
            if RANGE_READ in page:
                range_read = copy.deepcopy(page[RANGE_READ])
                if incremental:
                    state[RESUME_KEY] = range_read
            for feedback in page["feedbacks"]:
                updated_at = feedback["updated_at"]
                feedback_id = feedback.get("feedback_id")
                valid_id = isinstance(feedback_id, str) and feedback_id
                if start.floor and updated_at and updated_at < start.floor:
                    if range_read is None and counted is None:
                        break  # one chain, newest first: the rest is older still
                    if counted is not None and valid_id:
                        read.add(feedback, page.get(RANGE_INDEX))  # it exists
                    continue  # a whole read, in created_at order: the rest may be newer
                if valid_id and counted is not None and read.unchanged(feedback_id, updated_at):
                    continue  # sent already in this read, unchanged
                yield feedback
                # Written now. A STATE the SDK wrote right after it names the one before.
                if not valid_id:
                    continue
                if counted is not None:
                    read.add(feedback, page.get(RANGE_INDEX))
                if not incremental:
                    continue
                if range_read is not None:
                    range_read["ranges"][page[RANGE_INDEX]]["after"] = feedback_id
                    continue
                if resume is None:
                    resume = state[RESUME_KEY] = {"after": feedback_id, "newest": newest}
                # newest first: a signal between the two resumes before this record.
                if updated_at and (newest is None or updated_at > newest):
                    newest = resume["newest"] = updated_at
                resume["after"] = feedback_id
        if self.name in self.usersnap_tap.refused_projects.get(context["project_id"], {}):
            return
        if counted is not None:
            # Before the resume point goes: a signal meanwhile must not mean reading it again.
            project_id = context["project_id"]
            if short := check_count(
                self.logger, self.stream_report, project_id, len(read), counted
            ):
                self.usersnap_tap.incomplete_reads.setdefault(self.name, {})[project_id] = short
        state.pop(RESUME_KEY, None)
        if incremental and range_read is not None:
            # Not the newest seen: an edit during the read, to a range read before, is
            # older than that, and must stay newer than the bookmark. A first page without
            # a date to take it from keeps the bookmark where it was.
            if range_read["newest"] is None:
                state.pop(PROGRESS_MARKERS, None)
            else:
                state.setdefault(PROGRESS_MARKERS, {}).update(
                    replication_key=self.replication_key,
                    replication_key_value=range_read["newest"],
                )

    @override
    def _increment_stream_state(
        self, latest_record: Record, *, context: Context | None = None
    ) -> None:
        """The SDK's, for a record that can move the progress marker: one newer than any before.

        The SDK finds the project's state by scanning every project's, for every record;
        read newest first, nearly every record is older than the marker, and changes nothing.
        """
        updated_at = latest_record.get(self.replication_key)
        if updated_at is None or (self._newest_marked and updated_at <= self._newest_marked):
            return
        super()._increment_stream_state(latest_record, context=context)
        self._newest_marked = updated_at

    @cached_property
    def feedback_count(self) -> FeedbackCountStream:
        """Asks the API how many feedbacks a project holds."""
        return FeedbackCountStream(self._tap)

    @override
    def project_refused(self, context: Context) -> None:
        """Keep the bookmark: the SDK promotes progress markers to it when the partition ends.

        The resume point stays valid: it names a record written.
        """
        self.get_context_state(context).pop(PROGRESS_MARKERS, None)
