"""The filter endpoint's body: conditions compiled to row predicates, and the sort order."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from tap_usersnap.sandbox.errors import validation_error
from tap_usersnap.sandbox.generate import Row
from tap_usersnap.sandbox.timestamps import format_ts, parse_ts

FILTER_TYPES = frozenset(
    ("assignee", "created_at", "email", "feedback_number", "nps", "one_to_five", "state", "thumb")
)
OPERATORS = frozenset(("eq", "neq", "in", "not_in", "gt", "gte", "lt", "lte", "like", "ilike"))
ORDER_TYPES = frozenset(("created_at", "rating", "updated_at", "likes"))


def _like(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    """Translate an SQL LIKE pattern (% and _, backslash escapes) to a regex."""
    out = []
    chars = iter(pattern)
    for ch in chars:
        if ch == "\\":
            out.append(re.escape(next(chars, "\\")))
        elif ch == "%":
            out.append(".*")
        elif ch == "_":
            out.append(".")
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out), re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def _field_getter(filter_type: str, rating_kind: str) -> Callable[[Row], Any]:
    """How each filter type reads a row; None behaves like SQL NULL (matches nothing)."""
    if filter_type == "assignee":
        return lambda r: r.assignee
    if filter_type == "created_at":
        return lambda r: r.created_us
    if filter_type == "email":
        return lambda r: r.email
    if filter_type == "feedback_number":
        return lambda r: r.number
    if filter_type == "state":
        return lambda r: r.status
    if filter_type == rating_kind:
        return lambda r: r.rating
    return lambda _r: None  # a rating kind this project does not collect


def _created_text(us: int) -> str:
    """created_at as LIKE patterns see it."""
    return format_ts(us, 3)


def _parse_value(filter_type: str, raw: str) -> Any:
    """Convert a filter value string to the field's type."""
    try:
        if filter_type == "created_at":
            return parse_ts(raw)
        if filter_type in ("feedback_number", "nps", "one_to_five", "thumb"):
            return int(raw)
    except ValueError as exc:
        raise validation_error("value", f"{raw!r} is not valid for {filter_type}") from exc
    return raw


def _condition(item: Any, rating_kind: str) -> Callable[[Row], bool]:
    """Compile one query item into a row predicate."""
    if not isinstance(item, dict):
        raise validation_error("query", "items must be objects")
    ftype, op, value = item.get("filter_type"), item.get("operator"), item.get("value")
    if ftype not in FILTER_TYPES:
        raise validation_error("filter_type", f"unknown filter_type {ftype!r}")
    if op not in OPERATORS:
        raise validation_error("operator", f"unknown operator {op!r}")
    if value is None or isinstance(value, dict | list):
        raise validation_error("value", "a string value is required")
    raw = str(value).lower() if isinstance(value, bool) else str(value)
    get = _field_getter(ftype, rating_kind)
    if op in ("like", "ilike"):
        rx = _like(raw, op == "ilike")
        text = _created_text if ftype == "created_at" else str
        return lambda r: (v := get(r)) is not None and rx.fullmatch(text(v)) is not None
    if op in ("in", "not_in"):
        wanted = {_parse_value(ftype, part.strip()) for part in raw.split(",")}
        if op == "in":
            return lambda r: (v := get(r)) is not None and v in wanted
        return lambda r: (v := get(r)) is not None and v not in wanted
    target = _parse_value(ftype, raw)
    compare: Callable[[Any], bool] = {
        "eq": lambda v: v == target,
        "neq": lambda v: v != target,
        "gt": lambda v: v > target,
        "gte": lambda v: v >= target,
        "lt": lambda v: v < target,
        "lte": lambda v: v <= target,
    }[op]
    return lambda r: (v := get(r)) is not None and compare(v)


_ORDER_FIELD = {"updated_at": 0, "created_at": 1, "rating": 2, "likes": 3}
FilterSpec = tuple[
    Callable[[Row], bool],
    Callable[[tuple[int, int, int, int], str], tuple[int, int, str]],
    bool,
]


def parse_filter(body: Any, rating_kind: str) -> FilterSpec:
    """Validate a filter body; return (predicate, sort key from a snapshot, descending?)."""
    if not isinstance(body, dict):
        raise validation_error("body", "a JSON object is required")
    query = body.get("query") or []
    if not isinstance(query, list):
        raise validation_error("query", "must be a list")
    conditions = [_condition(item, rating_kind) for item in query]
    order = body.get("order_by") or {}
    if not isinstance(order, dict):
        raise validation_error("order_by", "must be an object")
    order_type = order.get("order_by_type") or "updated_at"
    direction = order.get("direction") or "desc"
    if order_type not in ORDER_TYPES:
        raise validation_error("order_by_type", f"unknown order_by_type {order_type!r}")
    if direction not in ("asc", "desc"):
        raise validation_error("direction", f"unknown direction {direction!r}")
    field = _ORDER_FIELD[order_type]

    def key_of(snap: tuple[int, int, int, int], fid: str) -> tuple[int, int, str]:
        return (snap[field], snap[0], fid)

    def match(row: Row) -> bool:
        return all(cond(row) for cond in conditions)

    return match, key_of, direction == "desc"
