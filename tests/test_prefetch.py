"""The prefetcher: order, errors, cancellation, bounded memory."""

from __future__ import annotations

import threading
import time

import pytest

from tap_usersnap.prefetch import Prefetcher


def test_items_arrive_in_order_per_job():
    prefetcher = Prefetcher(workers=2)
    for key in ("a", "b", "c"):
        prefetcher.announce(key, lambda key=key: (f"{key}{i}" for i in range(5)))
    assert [list(prefetcher.take(key)) for key in ("a", "b", "c")] == [
        [f"{key}{i}" for i in range(5)] for key in ("a", "b", "c")
    ]


def test_unannounced_key_is_none():
    assert Prefetcher(workers=1).take("nothing") is None


@pytest.mark.parametrize("eager", [True, False], ids=["raises-when-called", "raises-midway"])
def test_a_producer_error_reaches_the_consumer(eager: bool):
    def produce():
        if eager:
            raise RuntimeError("SITE_NOT_FOUND")
        yield 1
        raise RuntimeError("SITE_NOT_FOUND")

    prefetcher = Prefetcher(workers=1)
    prefetcher.announce("a", produce)
    items = prefetcher.take("a")
    with pytest.raises(RuntimeError, match="SITE_NOT_FOUND"):
        list(items)


def test_queues_are_bounded_and_an_abandoned_job_stops_producing():
    produced: list[int] = []
    closed = threading.Event()

    def produce():
        try:
            for i in range(1000):
                produced.append(i)
                yield i
        finally:
            closed.set()

    prefetcher = Prefetcher(workers=1, depth=3)
    prefetcher.announce("a", produce)
    time.sleep(0.3)
    assert len(produced) <= 3 + 1  # the queue, plus the item waiting to be put
    items = prefetcher.take("a")
    assert next(items) == 0
    items.close()
    assert closed.wait(2)
    assert len(produced) < 10


def test_taking_a_later_job_cancels_earlier_ones_nobody_took():
    finished = threading.Event()

    def endless():
        try:
            while True:
                yield "x"
        finally:
            finished.set()

    prefetcher = Prefetcher(workers=1, depth=1)
    prefetcher.announce("skipped", endless)
    prefetcher.announce("wanted", lambda: iter(["y"]))
    assert list(prefetcher.take("wanted")) == ["y"]
    assert finished.wait(2)


def _wait_until_quiet(produced: list[int], seconds: float = 0.3) -> None:
    """Until producers stop producing (they wait for the budget), or a few seconds pass."""
    for _ in range(int(10 / seconds)):
        before = len(produced)
        time.sleep(seconds)
        if len(produced) == before:
            return


def test_pages_buffered_across_jobs_never_exceed_the_budget():
    produced: list[int] = []

    def small_project():
        for i in range(3):
            produced.append(i)
            yield i

    prefetcher = Prefetcher(workers=3, depth=4, budget=5)
    for key in range(40):
        prefetcher.announce(key, small_project)
    _wait_until_quiet(produced)
    # Each worker holds at most the page it is waiting to buffer; nothing is taken yet.
    assert len(produced) <= 5 + 3
    assert prefetcher.budget.peak == 5
    taken = [list(prefetcher.take(key)) for key in range(40)]
    assert taken == [[0, 1, 2]] * 40
    assert prefetcher.budget.peak == 5
    assert prefetcher.budget.held == 0


def test_the_job_being_consumed_is_never_starved_by_jobs_ahead():
    """Later jobs hold the whole budget: the job taken still gets its pages, in order."""
    prefetcher = Prefetcher(workers=4, depth=2, budget=3)
    for key in range(10):
        prefetcher.announce(key, lambda key=key: (f"{key}-{i}" for i in range(20)))
    time.sleep(0.3)
    consumed: list[list[str]] = []
    consumer = threading.Thread(
        target=lambda: consumed.extend(list(prefetcher.take(key)) for key in range(10)),
        daemon=True,
    )
    consumer.start()
    consumer.join(10)  # a deadlock would never end
    assert consumed == [[f"{key}-{i}" for i in range(20)] for key in range(10)]
    assert prefetcher.budget.held == 0


def test_a_cancelled_job_returns_its_shares():
    prefetcher = Prefetcher(workers=2, depth=4, budget=4)
    prefetcher.announce("skipped", lambda: iter(range(4)))
    prefetcher.announce("wanted", lambda: iter(range(2)))
    time.sleep(0.3)
    assert list(prefetcher.take("wanted")) == [0, 1]
    assert prefetcher.budget.held == 0
