"""Completeness: after a full read of a project, the number read against the API's own count."""

from __future__ import annotations

import sys
import typing as t

from singer_sdk.pagination import SinglePagePaginator

from tap_usersnap.client import UsersnapStream
from tap_usersnap.envelope import payload
from tap_usersnap.errors import UsersnapError

if sys.version_info >= (3, 12):
    from typing import override
else:
    from typing_extensions import override

if t.TYPE_CHECKING:
    from collections.abc import Iterable

    import requests
    from singer_sdk.helpers.types import Context

    from tap_usersnap.run_report import StreamReport


COUNT_SCHEMA = {"type": "object", "properties": {"total_count": {"type": "integer"}}}


class FeedbackCountStream(UsersnapStream):
    """``GET /projects/{id}/feedbacks/count`` (``POST .../filter/count`` under ``filters``).

    Not a stream of the catalog: it only asks, through the tap's session and retries. Named
    as the feedbacks: its log lines and requests count among theirs.
    """

    name = "feedbacks"
    primary_keys = ()
    replication_key = None
    records_key = ""  # the count is the page itself
    page_members: t.ClassVar[dict[str, type]] = {"total_count": int}
    path = "/projects/{project_id}/feedbacks/count"

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        super().__init__(*args, schema=COUNT_SCHEMA, **kwargs)
        if self.config.get("filters"):
            self.path = "/projects/{project_id}/feedbacks/filter/count"
            self.http_method = "POST"

    @override
    def get_new_paginator(self) -> SinglePagePaginator:
        return SinglePagePaginator()

    @override
    def prepare_request_payload(
        self, context: Context | None, next_page_token: t.Any
    ) -> dict[str, t.Any] | None:
        return {"query": self.config["filters"]} if self.config.get("filters") else None

    @override
    def parse_response(self, response: requests.Response) -> Iterable[dict[str, t.Any]]:
        yield payload(response)

    def total(self, project_id: str) -> int:
        """The number of feedbacks the API counts for the project (the filtered ones)."""
        (page,) = self.request_records({"project_id": project_id})
        return int(page["total_count"])


def check_count(
    counter: FeedbackCountStream, report: StreamReport, project_id: str, read: int
) -> None:
    """Compare a complete read with the API's count: a difference is a warning, not a failure.

    Feedback created or deleted while the project was read shifts the count by as many:
    the next run (or reconcile) catches up, so the run goes on.
    """
    try:
        counted = counter.total(project_id)
    except UsersnapError as error:
        counter.logger.warning(
            "Project %s: read %d feedbacks; the API's count could not be read, so the read is "
            "not checked: %s",
            project_id,
            read,
            error,
        )
        return
    if counted == read:
        return
    report.count_mismatches[project_id] = (read, counted)
    counter.logger.warning(
        "Project %s: read %d feedbacks, the API counts %d. Feedback created or deleted "
        "during the read shifts the count by as many; a larger or lasting difference "
        "means feedback was missed: run the reconcile",
        project_id,
        read,
        counted,
    )
