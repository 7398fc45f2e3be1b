"""Property: a full sync plus any number of incremental syncs rebuilds the source exactly."""

from __future__ import annotations

import typing as t

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tap_usersnap.sandbox import Sandbox
from tap_usersnap.streams import normalize_timestamp
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
