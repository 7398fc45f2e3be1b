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
