"""The streams: projects, and each project's feedbacks, assignees and metrics."""

from __future__ import annotations

import sys
import typing as t
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlparse

from singer_sdk import SchemaDirectory, StreamSchema
from singer_sdk.pagination import SinglePagePaginator

from tap_usersnap import schemas
from tap_usersnap.client import UsersnapAPIError, UsersnapStream
from tap_usersnap.envelope import payload
from tap_usersnap.pagination import FeedbackCursorPaginator

if sys.version_info >= (3, 12):
    from typing import override
else:
    from typing_extensions import override

if t.TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

    import requests
    from singer_sdk.helpers.types import Context, Record

SCHEMAS = SchemaDirectory(schemas)

#: Partition-state key of an interrupted project: where to continue, and the newest
#: ``updated_at`` the interrupted run had seen (the bookmark it would have written).
RESUME_KEY = "resume"
#: Context key (internal) carrying the cursor a resumed project starts from.
START_AFTER = "start_after"


API_FORM = "2024-01-01T00:00:00.000000Z"


def normalize_timestamp(value: str | None) -> str | None:
    """One fixed UTC format, so bookmarks compare as strings whatever the API sends."""
    if not value:
        return None
    if (
        len(value) == len(API_FORM)
        and value[19] == "."
        and value[-1] == "Z"
        and value[20:26].isdigit()
    ):
        return value[:-1] + "+00:00"  # the API's usual form: only the zone differs
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")


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
        return records

    @override
    def get_records(self, context: Context | None) -> Iterable[dict[str, t.Any]]:
        projects = list(self.request_records(context))
        wanted = self.config.get("project_ids")
        if wanted:
            known = {project["project_id"] for project in projects}
            if unknown := [project_id for project_id in wanted if project_id not in known]:
                msg = (
                    f"project_ids: Usersnap does not know project(s) {', '.join(unknown)} "
                    f"(the credentials can see {len(known)} project(s))"
                )
                raise UsersnapAPIError(msg, status=400, errortype="SITE_NOT_FOUND")
            projects = [project for project in projects if project["project_id"] in wanted]
        self.run_report.projects_total = len(projects)
        self._announce_children(projects)
        yield from projects

    def _announce_children(self, projects: list[dict[str, t.Any]]) -> None:
        """Let workers fetch every project's children in the order the SDK will sync them."""
        prefetcher = self.usersnap_tap.prefetcher
        for project in projects:
            child_context = self.get_child_context(project, None)
            for child in self.child_streams:
                if child.selected or child.has_selected_descendents:
                    child_stream = t.cast("UsersnapStream", child)
                    context = child_stream.preprocess_context(child_context)
                    key = (child_stream.name, project["project_id"])
                    prefetcher.announce(key, child_stream.fetcher(context))

    @override
    def get_child_context(self, record: Record, context: Context | None) -> dict[str, t.Any]:
        return {"project_id": record["project_id"], "api_key": record["api_key"]}


class ProjectChildStream(UsersnapStream):
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
            self.logger.warning(
                "Project %s has no api_key: its %s cannot be read", context["project_id"], self.name
            )
        for records in self.fetched(context):
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


class FeedbacksStream(UsersnapStream):
    """A project's feedback, newest ``updated_at`` first, read down to the bookmark."""

    name = "feedbacks"
    parent_stream_type = ProjectsStream
    primary_keys = ("feedback_id",)
    replication_key = "updated_at"
    schema = StreamSchema(SCHEMAS)
    records_key = "feedbacks"
    page_members: t.ClassVar[dict[str, type]] = {"has_more": bool}
    path = "/projects/{project_id}/feedbacks"

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        super().__init__(*args, **kwargs)
        # A STATE message about once a page bounds what a crash costs to one page or two.
        self.STATE_MSG_FREQUENCY = int(self.config["page_size"])
        if self.config.get("filters"):
            self.path = "/projects/{project_id}/feedbacks/filter"
            self.http_method = "POST"

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
        return {
            "query": self.config["filters"],
            "order_by": {"order_by_type": "updated_at", "direction": "desc"},
        }

    @override
    def parse_response(self, response: requests.Response) -> Iterable[dict[str, t.Any]]:
        """One item a page: the cursor it was requested with, and its feedbacks."""
        feedbacks = list(super().parse_response(response))
        for feedback in feedbacks:
            feedback["updated_at"] = normalize_timestamp(feedback.get("updated_at"))
        after = parse_qs(urlparse(str(response.request.url)).query).get("after", [None])[0]
        yield {"after": after, "feedbacks": feedbacks}

    def starting_floor(self, context: Context) -> str | None:
        """The oldest ``updated_at`` to read: the bookmark, or ``start_date``, the later."""
        state = self.get_context_state(context)
        bookmark = state.get("replication_key_value")
        if state.get("replication_key") != self.replication_key:
            bookmark = None
        floors = [normalize_timestamp(v) for v in (bookmark, self.config.get("start_date")) if v]
        return max(t.cast("list[str]", floors), default=None)

    def pages(
        self, context: Context, floor: str | None, start_after: str | None
    ) -> Iterator[dict[str, t.Any]]:
        """Pages down to the first one that reaches below ``floor``: no request after it.

        A resumed project starts at ``start_after``; if the API rejects that cursor (its
        feedback was deleted), the project is read again from its first page.
        """
        resuming = start_after is not None
        try:
            for page in self.request_records(
                {**context, START_AFTER: start_after} if resuming else context
            ):
                resuming = False  # only the first request may refuse the cursor
                yield page
                oldest = page["feedbacks"][-1]["updated_at"] if page["feedbacks"] else None
                if floor and oldest and oldest < floor:
                    return
        except UsersnapAPIError as exc:
            if not resuming or exc.status not in {400, 404}:
                raise
            self.logger.warning(
                "Cursor %s of project %s was refused (%s); reading the project from its start",
                start_after,
                context["project_id"],
                exc.errortype,
            )
            yield from self.pages(context, floor, None)

    @override
    def fetcher(self, context: Context) -> Callable[[], Iterable[t.Any]]:
        """Pages from the resume cursor down to the floor, both read from state now."""
        floor = self.starting_floor(context)
        start_after = (self.get_context_state(context).get(RESUME_KEY) or {}).get("after")
        return lambda: self.pages(context, floor, start_after)

    @override
    def get_records(self, context: Context | None) -> Iterable[dict[str, t.Any]]:
        if context is None:
            msg = "feedbacks are read per project"
            raise ValueError(msg)
        state = self.get_context_state(context)
        floor = self.starting_floor(context)
        newest = (state.get(RESUME_KEY) or {}).get("newest")
        if newest:
            # What the interrupted run saw stays the candidate bookmark of this project.
            self.state_manager.increment_state(
                {self.replication_key: newest}, context=context, replication_key="updated_at"
            )
        for page in self.fetched(context):
            feedbacks = page["feedbacks"]
            if feedbacks and (first := feedbacks[0]["updated_at"]):
                newest = max(newest or first, first)
            state[RESUME_KEY] = {"after": page["after"], "newest": newest}
            for feedback in feedbacks:
                updated_at = feedback["updated_at"]
                if floor and updated_at and updated_at < floor:
                    break
                if feedback is feedbacks[-1]:
                    # A STATE written after this record (the SDK writes one every page_size
                    # records) may already point past this page.
                    state[RESUME_KEY] = {"after": feedback["feedback_id"], "newest": newest}
                yield feedback
        state.pop(RESUME_KEY, None)
