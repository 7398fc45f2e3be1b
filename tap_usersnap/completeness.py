"""Completeness: a full read of a project against the API's own count, taken before it."""

from __future__ import annotations

import sys
import typing as t

from singer_sdk.pagination import SinglePagePaginator

from tap_usersnap.client import UsersnapStream
from tap_usersnap.envelope import payload
from tap_usersnap.ranges import filter_body
from tap_usersnap.state import normalize_timestamp

if sys.version_info >= (3, 12):
    from typing import override
else:
    from typing_extensions import override

if t.TYPE_CHECKING:
    import logging
    from collections.abc import Iterable

    import requests
    from singer_sdk.helpers.types import Context

    from tap_usersnap.run_report import StreamReport
    from tap_usersnap.tap import TapUsersnap


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
        return filter_body(self.config["filters"]) if self.config.get("filters") else None

    @override
    def parse_response(self, response: requests.Response) -> Iterable[dict[str, t.Any]]:
        yield payload(response)

    def total(self, project_id: str) -> int:
        """The number of feedbacks the API counts for the project (the filtered ones)."""
        (page,) = self.request_records({"project_id": project_id})
        return int(page["total_count"])


class ReadTally:
    """What a full read has seen, for its count check (``check_count``).

    Under a reconcile, whose count guards what is removed: the distinct feedbacks, by id,
    with the ``updated_at`` sent, so that one read again unchanged (the second look at the
    list's top, a cursor restart) is neither sent nor counted twice; that holds every id of
    the project. Otherwise memory stays flat whatever the project's size: a chain of pages
    (the list, or a range) comes newest first by its key (``updated_at``, or a range's
    ``created_at``), and a feedback counts only below the last one counted, or at its key
    with an id not seen there. What a chain reads again (from its first page after a cursor
    restart, or from a moved cursor the API finds where it is now) is not counted twice.
    A feedback without a readable key (rare) is kept by id. The number can only fall short
    (a feedback first read after an edit moved it above where its chain had got to), so the
    check may warn wrongly, never keep a miss quiet.
    """

    def __init__(self, *, distinct: bool) -> None:
        self._sent: dict[str, str | None] | None = {} if distinct else None
        self._chains: dict[int | None, _ChainTally] = {}

    def unchanged(self, feedback_id: str, updated_at: str | None) -> bool:
        """Whether this feedback was sent already in this read, as it is now."""
        return self._sent is not None and self._sent.get(feedback_id, "") == updated_at

    def add(self, feedback: dict[str, t.Any], chain: int | None) -> None:
        """A feedback read (sent, or older than ``start_date``) by ``chain`` (a range's index)."""
        feedback_id = feedback["feedback_id"]
        if self._sent is not None:
            self._sent[feedback_id] = feedback["updated_at"]
            return
        if chain is None:
            key = feedback["updated_at"]  # comparable already
        else:
            try:
                key = normalize_timestamp(feedback.get("created_at"))
            except (TypeError, ValueError, OverflowError):
                key = None
        if (tally := self._chains.get(chain)) is None:
            tally = self._chains[chain] = _ChainTally()
        tally.add(feedback_id, key)

    def __len__(self) -> int:
        if self._sent is not None:
            return len(self._sent)
        return sum(tally.count for tally in self._chains.values())


class _ChainTally:
    """One chain's number: its last key counted and the ids counted at that key."""

    def __init__(self) -> None:
        self.count = 0
        self._last: str | None = None
        self._at_last: set[str] = set()
        self._unplaced: set[str] = set()  # null keys: rare, so kept by id

    def add(self, feedback_id: str, key: str | None) -> None:
        if key is None:  # no place in the order: counted once, by id
            if feedback_id not in self._unplaced:
                self._unplaced.add(feedback_id)
                self.count += 1
        elif self._last is None or key < self._last:
            self._last, self._at_last = key, {feedback_id}
            self.count += 1
        elif key == self._last and feedback_id not in self._at_last:
            self._at_last.add(feedback_id)
            self.count += 1


def check_count(
    logger: logging.Logger, report: StreamReport, project_id: str, read: int, counted: int | str
) -> str | None:
    """Compare a full read with the API's count, taken before it: what the read may have missed.

    ``read`` counts feedbacks read (``ReadTally``: each once), ``counted`` is the count or
    why it could not be read.
    Feedback created during the read is not in the count: more read than counted is fine.
    Fewer is a warning, not a failure (feedback deleted during the read, or missed): the
    reason is returned, and a reconcile removes nothing from feedbacks.
    """
    if isinstance(counted, str):
        logger.warning(
            "Project %s: read %d feedbacks; the API's count could not be read, so the read is "
            "not checked: %s",
            project_id,
            read,
            counted,
        )
        return f"project {project_id}: read {read}, the count could not be read"
    if read >= counted:
        return None
    report.count_mismatches[project_id] = (read, counted)
    logger.warning(
        "Project %s: read %d feedbacks, the API counted %d before the read. Feedback deleted "
        "during the read lowers the read by as many; a larger or lasting difference means "
        "feedback was missed: read the project in full again (the next reconcile, or a run "
        "without its state)",
        project_id,
        read,
        counted,
    )
    return f"project {project_id}: read {read} of {counted}"


def check_projects_read(tap: TapUsersnap) -> None:
    """Name the per-project streams that read fewer projects than ``GET /projects`` listed.

    The SDK syncs no child of a project record that a stream map filters or removes
    (``projects: null``, a ``__filter__``): that project's lists are not read, the run still
    ends well, and a reconcile would remove their rows. Such reads count as incomplete.
    """
    listed = tap.run_report.projects_total
    if not listed:
        return
    short = {
        stream.name: f"read {stream.stream_report.projects} of the {listed} projects listed"
        for stream in tap.streams.values()
        if isinstance(stream, UsersnapStream)
        and stream.parent_stream_type is not None
        and stream.selected
        and stream.stream_report.projects < listed
    }
    for name, why in short.items():
        tap.incomplete_reads.setdefault(name, {})["projects"] = why
    if short:
        tap.logger.warning(
            "%s: a stream map that filters or removes the projects stream (such as "
            "'projects: null') also skips their lists. To leave the projects stream out, "
            "deselect it instead",
            "; ".join(f"{name} {why}" for name, why in short.items()),
        )
