"""Properties: syncs rebuild the source exactly; timestamps normalise one way."""

from __future__ import annotations

import typing as t
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tap_usersnap.sandbox import Sandbox
from tap_usersnap.state import normalize_any_timestamp, normalize_timestamp
from tests.helpers import JWT_ID, JWT_SECRET, base_config, sandbox_feedbacks, sync

change_rounds = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=2),  # project index
        st.integers(min_value=0, max_value=30),  # feedbacks changed
        st.integers(min_value=0, max_value=12),  # feedbacks added
    ),
    max_size=4,
)


def comparable(feedback: dict[str, t.Any]) -> tuple[t.Any, ...]:
    return (
        normalize_timestamp(feedback["updated_at"]),
        feedback["status_type"],
        feedback["priority"],
        feedback["labels"],
        feedback["ordered_inputs"],
    )


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(min_value=0, max_value=10_000),
    sizes=st.lists(st.integers(min_value=0, max_value=160), min_size=1, max_size=3),
    page_size=st.sampled_from([1, 3, 7, 10, 25, 50, 100]),
    rounds=change_rounds,
)
def test_syncs_rebuild_the_source(
    seed: int, sizes: list[int], page_size: int, rounds: list[tuple[int, int, int]]
):
    with Sandbox(
        jwt_id=JWT_ID,
        jwt_secret=JWT_SECRET,
        projects=len(sizes),
        feedbacks_per_project=sizes,
        seed=seed,
    ) as sandbox:
        config = base_config(sandbox.url, page_size=page_size)
        replica: dict[str, dict[str, t.Any]] = {}
        result = sync(config)
        for record in result.records.get("feedbacks", []):
            replica[record["feedback_id"]] = record
        project_ids = sandbox.store.project_ids()
        for project_index, changed, added in rounds:
            project_id = project_ids[project_index % len(project_ids)]
            existing = len(sandbox.store.feedbacks(project_id))
            sandbox.store.change_feedbacks(project_id, min(changed, existing))
            sandbox.store.add_feedbacks(project_id, added)
            result = sync(config, state=result.state)
            for record in result.records.get("feedbacks", []):
                replica[record["feedback_id"]] = record

        source = sandbox_feedbacks(sandbox)
        assert set(replica) == set(source)
        for feedback_id, feedback in source.items():
            assert comparable(replica[feedback_id]) == comparable(feedback)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-03-05T10:11:12.123456Z", "2024-03-05T10:11:12.123456+00:00"),
        ("2024-03-05 10:11:12.123456Z", "2024-03-05T10:11:12.123456+00:00"),
        ("2024-03-05T12:11:12.123456+02:00", "2024-03-05T10:11:12.123456+00:00"),
        ("2024-03-05T10:11:12Z", "2024-03-05T10:11:12.000000+00:00"),
        ("2024-03-05T10:11:12.1Z", "2024-03-05T10:11:12.100000+00:00"),
        ("2024-03-05T10:11:12", "2024-03-05T10:11:12.000000+00:00"),
        ("2024-03-05", "2024-03-05T00:00:00.000000+00:00"),
        ("2024-03-05T00:30:00.000000-01:00", "2024-03-05T01:30:00.000000+00:00"),
        ("0999-01-01T00:00:00.000000Z", "0999-01-01T00:00:00.000000+00:00"),
        ("0999-01-01T00:00:00+00:00", "0999-01-01T00:00:00.000000+00:00"),
        ("2024-W10-2T10:11:12.123456Z", "2024-03-05T10:11:12.123456+00:00"),
        ("", None),
        (None, None),
    ],
)
def test_normalize_timestamp_examples(value: str | None, expected: str | None):
    assert normalize_timestamp(value) == expected


def outcome(normalize: t.Callable[[str], str | None], value: str) -> tuple[str, t.Any]:
    try:
        return "value", normalize(value)
    except ValueError:
        return "error", ValueError


def one_char_changed(value: str) -> st.SearchStrategy[str]:
    return st.tuples(st.integers(0, len(value) - 1), st.characters()).map(
        lambda change: value[: change[0]] + change[1] + value[change[0] + 1 :]
    )


moments = st.datetimes(
    min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
)
timestamps = st.one_of(
    moments.map(lambda m: m.strftime("%Y-%m-%dT%H:%M:%S.%fZ")),
    moments.map(lambda m: m.isoformat(timespec="microseconds").replace("+00:00", "Z")),
    st.tuples(moments, st.sampled_from(["T", " ", "t", "_"])).map(
        lambda m: m[0].isoformat(sep=m[1], timespec="microseconds").replace("+00:00", "Z")
    ),
    moments.map(lambda m: m.strftime("%G-W%V-%uT%H:%M:%S.%fZ")),  # ISO week dates, same length
    st.from_regex(r"\A[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z\Z"),
    st.just("2024-03-05T10:11:12.123456Z").flatmap(one_char_changed),
    st.text(min_size=27, max_size=27),
)


@settings(max_examples=1500, deadline=None)
@given(value=timestamps)
def test_the_fast_path_agrees_with_the_general_one(value: str):
    assert outcome(normalize_timestamp, value) == outcome(normalize_any_timestamp, value)
