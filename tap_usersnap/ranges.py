"""A project's full read in ``created_at`` order: contiguous ranges, each its own cursor chain.

The plain list is newest ``updated_at`` first: a feedback edited while it is read moves
above the cursor, and the read misses it (a reconcile would then remove its row). In
``created_at`` order, from the filter endpoint, an edit moves nothing, bar ties: a
reconcile reads every project of more than one page that way, then the plain list's top
again. A large project, against a slow API, is read as several ranges at the same time (one
chain reads at one page a round trip, whatever ``max_concurrency`` says); any other full
read stays on the plain list, whose paging is the documented one. Contiguous ranges
(``gte``/``lt``) cover every feedback exactly once. Their pages arrive interleaved, so an
interrupted range read resumes each range after the last feedback written from it. Its
bookmark is the newest ``updated_at`` of the plain list's first page, read before the
ranges start: whatever is edited or added while they are read is newer, and the next run
reads it.
"""

from __future__ import annotations

import functools
import itertools
import math
import time
import typing as t
from datetime import UTC, datetime

from tap_usersnap.errors import UsersnapError
from tap_usersnap.prefetch import Parallel
from tap_usersnap.reconcile import reconciled
from tap_usersnap.state import normalize_timestamp

if t.TYPE_CHECKING:
    import threading
    from collections.abc import Iterable, Iterator

    from singer_sdk.helpers.types import Context

    from tap_usersnap.streams import FeedbacksStream

#: Context key (internal): the ``created_at`` range a chain reads, ``(gte, lt)``; ``None``
#: leaves that side open.
CREATED_RANGE = "created_range"
#: Page key (internal) of the first item of a range read: ``{"newest": bookmark to be,
#: "ranges": [{"gte", "lt", "after"}, ...]}``, the resume point it starts from.
RANGE_READ = "range_read"
#: Page key (internal): the index of the range a page belongs to.
RANGE_INDEX = "range"
#: Page key (internal) of a full read's first item: the API's count, taken before the first
#: page, or why it could not be read (``str``).
COUNTED = "counted"
#: A project is split only if it holds this many feedbacks (25 pages of the largest size:
#: below, its chain is short, and a split costs two requests more) ...
MIN_FEEDBACKS_TO_SPLIT = 2_500
#: ... and only into ranges of at least this many pages each ...
MIN_PAGES_PER_RANGE = 4
#: ... and only if its first page took this long: below, the tap's own work on a page
#: (about 10 ms) is the bottleneck, and a chain read ahead keeps up with it.
MIN_PAGE_SECONDS_TO_SPLIT = 0.05
#: Ranges a project is split into, at most: a multiple of ``max_concurrency``.
RANGES_PER_CONCURRENCY = 2
NEWEST_FIRST = {"order_by_type": "created_at", "direction": "desc"}
OLDEST_FIRST = {"order_by_type": "created_at", "direction": "asc"}
#: The plain list's order, asked of the filter endpoint when filters are set.
NEWEST_UPDATED_FIRST = {"order_by_type": "updated_at", "direction": "desc"}
#: A range open at both ends: the whole project.
WHOLE: tuple[str | None, str | None] = (None, None)


def filter_body(
    filters: list[dict[str, str]] | None,
    order_by: dict[str, str] | None = None,
    created_range: tuple[str | None, str | None] = WHOLE,
) -> dict[str, t.Any]:
    """The body of a filter endpoint request: the configured filters, within a range, in order."""
    gte, lt = created_range
    query = [*(filters or [])]
    if gte:
        query.append({"filter_type": "created_at", "operator": "gte", "value": gte})
    if lt:
        query.append({"filter_type": "created_at", "operator": "lt", "value": lt})
    return {"query": query, "order_by": order_by} if order_by else {"query": query}


def split(oldest: str, newest: str, count: int) -> list[tuple[str | None, str | None]]:
    """``count`` contiguous ranges over ``[oldest, newest]``, open at both ends.

    Open ends keep what no bound foresaw: a feedback created during the read lands in
    the last range.
    """
    start = datetime.fromisoformat(t.cast("str", normalize_timestamp(oldest)))
    span = datetime.fromisoformat(t.cast("str", normalize_timestamp(newest))) - start
    bounds = [
        (start + span * i / count).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        for i in range(1, count)
    ]
    edges: list[str | None] = [None, *dict.fromkeys(bounds), None]
    return list(itertools.pairwise(edges))


def full_read(
    stream: FeedbacksStream, context: Context, slots: threading.Semaphore
) -> Iterable[t.Any]:
    """The pages of a whole project: its first page alone if that is all, else ranges.

    First the API's count, once, before any page: feedback created during the read is not
    in it, and the read is checked against it (``completeness.check_count``). Then the plain
    list's first page, in any case: if it says there is no more, it is the project (one
    response: nothing can move); else the read goes on from it, or it is the bookmark to be
    and ranges read it all.
    """
    try:
        counted: int | str = stream.count(context)
    except UsersnapError as error:
        counted = str(error)
    return itertools.chain(
        [{"feedbacks": [], "has_more": True, COUNTED: counted}],
        _pages(stream, context, slots, counted if isinstance(counted, int) else None),
    )


def _pages(
    stream: FeedbacksStream, context: Context, slots: threading.Semaphore, total: int | None
) -> Iterable[t.Any]:
    chain = stream.pages(context, None, None)
    started = time.perf_counter()
    first = next(chain, None)
    if first is None or not first["has_more"]:
        return [] if first is None else [first]
    parts = _ranges(stream, context, total, time.perf_counter() - started)
    if parts == [WHOLE] and not reconciled(stream):
        # No row goes for what this read misses: what is edited meanwhile is newer than its
        # bookmark, and the next run reads it. The plain list is the documented way to page.
        return itertools.chain([first], chain)
    chain.close()
    newest = max((f["updated_at"] for f in first["feedbacks"] if f["updated_at"]), default=None)
    resume = {
        "newest": newest,
        "ranges": [{"gte": gte, "lt": lt, "after": None} for gte, lt in parts],
    }
    ranges = read_ranges(stream, context, resume, slots)
    if reconciled(stream) and newest:
        # What was edited or created meanwhile is newer than the first page: in whatever
        # order the API breaks created_at ties (undocumented), or entering the filters'
        # set, it is read again from the top of the plain list.
        ranges.tail = functools.partial(stream.pages, context, newest, None)
    return ranges


def _ranges(
    stream: FeedbacksStream, context: Context, total: int | None, first_page_seconds: float
) -> list[tuple[str | None, str | None]]:
    """One range, or several when the project is large and the API slow enough to pay off."""
    if total is None or total < MIN_FEEDBACKS_TO_SPLIT:
        return [WHOLE]
    if first_page_seconds < MIN_PAGE_SECONDS_TO_SPLIT:
        return [WHOLE]
    pages = math.ceil(total / int(stream.config["page_size"]))
    most = RANGES_PER_CONCURRENCY * int(stream.config["max_concurrency"])
    count = min(most, pages // MIN_PAGES_PER_RANGE)
    if count < 2:
        return [WHOLE]
    oldest = stream.first_created(context, OLDEST_FIRST)
    newest = stream.first_created(context, NEWEST_FIRST)
    if not oldest or not newest:
        return [WHOLE]
    stream.logger.info(
        "Project %s: reading about %d pages as %d parallel created_at ranges",
        context["project_id"],
        pages,
        count,
    )
    return split(oldest, newest, count)


def read_ranges(
    stream: FeedbacksStream, context: Context, resume: dict[str, t.Any], slots: threading.Semaphore
) -> Parallel:
    """Every range after its resume cursor, at once; ``resume`` goes first, for the state."""
    return Parallel(
        [
            functools.partial(_range_pages, stream, context, index, part, slots)
            for index, part in enumerate(resume["ranges"])
        ],
        head=[{"feedbacks": [], "has_more": True, RANGE_READ: resume}],
    )


def _range_pages(
    stream: FeedbacksStream,
    context: Context,
    index: int,
    part: dict[str, t.Any],
    slots: threading.Semaphore,
) -> Iterator[dict[str, t.Any]]:
    """One range's pages, tagged with its index; a slot is held only during a request."""
    range_context = {**context, CREATED_RANGE: (part["gte"], part["lt"])}
    pages = stream.pages(range_context, None, part["after"])
    try:
        while True:
            with slots:
                page = next(pages, None)
            if page is None:
                return
            page[RANGE_INDEX] = index
            yield page
    finally:
        pages.close()
