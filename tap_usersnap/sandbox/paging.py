"""Keyset pagination: page bounds over sorted keys, the list response body, list parameters."""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from typing import Any

from tap_usersnap.sandbox.errors import validation_error


def page_bounds(
    keys: list[Any], anchor: Any, before: bool, limit: int, desc: bool
) -> tuple[int, int, bool]:
    """Slice bounds of one page over ascending keys, read in desc or asc order.

    The anchor need not be in the list (a record changed since it was served): bisect finds
    where it was. has_more says whether records follow the page's last one in reading order.
    """
    n = len(keys)
    if desc:
        if anchor is not None and before:
            lo = bisect_right(keys, anchor)
            return lo, min(n, lo + limit), lo > 0
        hi = n if anchor is None else bisect_left(keys, anchor)
        lo = max(0, hi - limit)
        return lo, hi, lo > 0
    if anchor is not None and before:
        hi = bisect_left(keys, anchor)
        return max(0, hi - limit), hi, hi < n
    lo = 0 if anchor is None else bisect_right(keys, anchor)
    hi = min(n, lo + limit)
    return lo, hi, hi < n


def page_data(records: list[dict[str, Any]], limit: int, has_more: bool) -> dict[str, Any]:
    """The list response data; next is set whenever the page is non-empty, like the real API."""
    nxt = prev = None
    if records:
        last, first = records[-1]["feedback_id"], records[0]["feedback_id"]
        nxt = {"query_string": f"limit={limit}&after={last}", "limit": limit, "after": last}
        prev = {"query_string": f"limit={limit}&before={first}", "limit": limit, "before": first}
    return {
        "has_more": has_more,
        "count": len(records),
        "feedbacks": records,
        "next": nxt,
        "previous": prev,
    }


@dataclass(frozen=True)
class PageRequest:
    """Validated list parameters shared by the list and filter endpoints."""

    limit: int
    after: str | None
    before: str | None

    @classmethod
    def from_query(cls, query: dict[str, list[str]]) -> PageRequest:
        """Validate limit/after/before the way the API does (limit 1..100, default 10)."""
        raw = query.get("limit", ["10"])[-1]
        try:
            limit = int(raw)
        except ValueError:
            raise validation_error("limit", "must be an integer between 1 and 100") from None
        if not 1 <= limit <= 100:
            raise validation_error("limit", "must be an integer between 1 and 100")
        after = query.get("after", [""])[-1] or None
        before = query.get("before", [""])[-1] or None
        if after and before:
            raise validation_error("after", "after and before are mutually exclusive")
        return cls(limit, after, before)
