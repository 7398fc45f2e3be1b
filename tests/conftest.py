"""Fixtures: Usersnap sandboxes on loopback."""

from __future__ import annotations

import typing as t

import pytest

from tap_usersnap.sandbox import Sandbox
from tests.helpers import JWT_ID, JWT_SECRET
from tests.warehouse_helpers import WAREHOUSE_COUNTS

if t.TYPE_CHECKING:
    from collections.abc import Callable, Iterator


@pytest.fixture(autouse=True)
def secret_never_printed(
    capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> Iterator[None]:
    """Across the whole suite, the JWT secret appears in no output and no log record."""
    yield
    out, err = capfd.readouterr()
    for where, text in (("stdout", out), ("stderr", err), ("logs", caplog.text)):
        assert JWT_SECRET not in text, f"the JWT secret leaked into {where}"


@pytest.fixture(scope="session")
def shared_sandbox() -> Iterator[Sandbox]:
    """A read-only sandbox for tests that do not change data or faults."""
    with Sandbox(
        jwt_id=JWT_ID,
        jwt_secret=JWT_SECRET,
        projects=3,
        feedbacks_per_project=[250, 120, 37],
        seed=7,
    ) as sandbox:
        yield sandbox


@pytest.fixture
def make_sandbox() -> Iterator[Callable[..., Sandbox]]:
    """Fresh sandboxes a test may change, fault and count requests on."""
    started: list[Sandbox] = []

    def make(**kwargs: t.Any) -> Sandbox:
        options = {"projects": 3, "feedbacks_per_project": [250, 120, 37], "seed": 11, **kwargs}
        sandbox = Sandbox(jwt_id=JWT_ID, jwt_secret=JWT_SECRET, **options)
        sandbox.start()
        started.append(sandbox)
        return sandbox

    yield make
    for sandbox in started:
        sandbox.stop()


@pytest.fixture
def sandbox(make_sandbox: Callable[..., Sandbox]) -> Sandbox:
    return make_sandbox()


@pytest.fixture
def wh_sandbox() -> Iterator[Sandbox]:
    """The sandbox the Meltano pipelines load into the warehouses."""
    with Sandbox(
        jwt_id=JWT_ID,
        jwt_secret=JWT_SECRET,
        projects=3,
        feedbacks_per_project=WAREHOUSE_COUNTS,
        seed=7,
    ) as sandbox:
        yield sandbox
