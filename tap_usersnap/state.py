"""The tap's own part of the Singer state: comparable bookmarks, resume points, scopes."""

from __future__ import annotations

import hashlib
import json
import typing as t
from datetime import UTC, datetime

#: Partition-state key of an interrupted project: the last feedback written (``after``)
#: and the newest ``updated_at`` written so far (``newest``, the bookmark it will become);
#: for a range read, ``ranges``, each with its bounds and last feedback written.
RESUME_KEY = "resume"
#: Partition-state key of the settings a bookmark was made under: ``filters`` (their
#: fingerprint) and ``start_date``. A bookmark without it is trusted as it stands.
SCOPE_KEY = "scope"

API_FORM = "2024-01-01T00:00:00.000000Z"


def normalize_timestamp(value: str | None) -> str | None:
    """One fixed UTC format, so bookmarks compare as strings whatever the API sends."""
    if not value:
        return None
    if (
        len(value) == len(API_FORM)
        and value[-1] == "Z"
        and value[10] == "T"
        and value[19] == "."
        and value[4] == value[7] == "-"
        and value[13] == value[16] == ":"
    ):
        try:
            datetime.fromisoformat(value[:-1])  # in C: checks the digits and ranges
        except ValueError:
            pass  # the general path decides
        else:
            return value[:-1] + "+00:00"  # the API's usual form: only the zone differs
    return normalize_any_timestamp(value)


def normalize_any_timestamp(value: str) -> str:
    """The general path of :func:`normalize_timestamp`: any ISO 8601 form Python reads."""
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC).isoformat(timespec="microseconds")
    except OverflowError as exc:  # year 1 or 9999 in a zone that leaves the calendar in UTC
        msg = f"{value!r} is out of range in UTC"
        raise ValueError(msg) from exc


def filters_fingerprint(filters: list[dict[str, t.Any]] | None) -> str | None:
    """A short name of a filter set, the same whatever the order of its filters."""
    if not filters:
        return None
    canonical = sorted(json.dumps(item, sort_keys=True, separators=(",", ":")) for item in filters)
    return hashlib.sha256(json.dumps(canonical).encode()).hexdigest()[:12]


def scope_change(partition: dict[str, t.Any], scope: dict[str, str | None]) -> str | None:
    """Why the partition's bookmark does not cover what ``scope`` asks for, if it does not.

    A bookmark made under filters covers only what matched them; one made under a later
    ``start_date`` never covered what lies before it.
    """
    made_under = partition.get(SCOPE_KEY)
    if not isinstance(made_under, dict):
        return None
    if made_under.get("filters") != scope["filters"]:
        return "it was made under other filters"
    old_start, new_start = made_under.get("start_date"), scope["start_date"]
    if old_start and (new_start is None or new_start < old_start):
        return f"it was made with start_date {old_start}, now earlier"
    return None


def rescope(partition: dict[str, t.Any], scope: dict[str, str | None]) -> str | None:
    """Drop a bookmark and resume point the scope no longer matches; record the scope.

    Returns the reason a bookmark was dropped, if one was. Idempotent: the prefetcher and
    the sync both call it for the same partition.
    """
    reason = scope_change(partition, scope)
    if reason:
        for key in ("replication_key", "replication_key_value", RESUME_KEY):
            partition.pop(key, None)
    made_under = partition.get(SCOPE_KEY)
    bookmark = normalize_timestamp(partition.get("replication_key_value"))
    start = scope["start_date"]
    if isinstance(made_under, dict) and bookmark and (start is None or start <= bookmark):
        start = made_under.get("start_date")  # read down to the bookmark: the range stays whole
    partition[SCOPE_KEY] = {"filters": scope["filters"], "start_date": start}
    return reason


def state_problem(text: str) -> str | None:
    """What makes ``text`` no Singer state this tap can resume from, if anything."""
    try:
        state = json.loads(text)
    except ValueError as exc:
        return f"not valid JSON ({exc})"
    if not isinstance(state, dict) or not isinstance(state.get("bookmarks", {}), dict):
        return "not a Singer state: expected an object with a 'bookmarks' object"
    for stream, stream_state in state.get("bookmarks", {}).items():
        partitions = stream_state.get("partitions", []) if isinstance(stream_state, dict) else None
        if not isinstance(partitions, list) or not all(
            isinstance(p, dict) and isinstance(p.get("context"), dict) for p in partitions
        ):
            return f"bookmarks.{stream}: 'partitions' must be objects, each with a 'context'"
        for partition in [stream_state, *partitions]:
            try:
                normalize_timestamp(partition.get("replication_key_value"))
            except (TypeError, ValueError):
                value = partition.get("replication_key_value")
                return f"bookmarks.{stream}: replication_key_value {value!r} is not a date-time"
            if problem := resume_problem(partition.get(RESUME_KEY)):
                return f"bookmarks.{stream}: '{RESUME_KEY}' {problem}"
    return None


def resume_problem(resume: t.Any) -> str | None:
    """What makes ``resume`` no resume point, if anything (``None`` is none at all)."""
    if resume is None:
        return None
    if isinstance(resume, dict) and "ranges" in resume:
        ranges = resume["ranges"]
        if not isinstance(ranges, list) or not all(
            isinstance(part, dict)
            and all(isinstance(part.get(key), str | None) for key in ("gte", "lt", "after"))
            for part in ranges
        ):
            return "'ranges' must be objects, each with 'gte', 'lt' and 'after' a string or null"
    elif not isinstance(resume, dict) or not isinstance(resume.get("after"), str):
        return "must be an object naming a feedback id in 'after'"
    try:
        normalize_timestamp(resume.get("newest"))
    except (TypeError, ValueError):
        return f"has a 'newest' that is not a date-time: {resume.get('newest')!r}"
    return None
