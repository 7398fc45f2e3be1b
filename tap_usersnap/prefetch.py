"""Fetch upcoming projects in background threads while the current one is emitted.

The SDK syncs a parent's children one project at a time. Announcing every project's
fetch up front lets a bounded pool of workers overlap the API's latency, while the
main thread still consumes (and writes records and state) strictly in the SDK's order.
Pages fetched ahead share one budget, so memory stays flat whatever the number of
projects, when the target reads slower than the API answers.
"""

from __future__ import annotations

import queue
import threading
import typing as t
from collections import OrderedDict
from collections.abc import Generator

if t.TYPE_CHECKING:
    from collections.abc import Callable, Hashable, Iterable, Iterator

_END = object()
_POLL_SECONDS = 0.1
_IDLE_SECONDS = 1.0
#: Pages each worker may fetch ahead of the job being consumed, on average.
PAGES_AHEAD_PER_WORKER = 2


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


class Parallel:
    """Producers whose items may interleave, run at once (after ``head``) by one job.

    ``tail``, if set, runs once every producer has finished well. Iterated outside a
    prefetcher, it runs as a job of its own.
    """

    def __init__(
        self, producers: list[Callable[[], Iterable[t.Any]]], head: Iterable[t.Any] = ()
    ) -> None:
        self.producers = producers
        self.head = list(head)
        self.tail: Callable[[], Iterable[t.Any]] | None = None

    def __iter__(self) -> Iterator[t.Any]:
        job = _Job(lambda: self, len(self.producers), PageBudget(len(self.producers)))
        threading.Thread(target=job.run, name="usersnap-fetch", daemon=True).start()
        return job.take()


class PageBudget:
    """Pages buffered by jobs nobody consumes yet, across all jobs: at most ``pages``.

    The job being consumed needs no share (its own queue bounds it): otherwise jobs
    waiting for their turn could hold the whole budget while the consumer waits for it.
    """

    def __init__(self, pages: int) -> None:
        self.pages = pages
        self.held = 0
        self.peak = 0
        self._changed = threading.Condition()

    def acquire(self, job: _Job) -> bool:
        """Wait for a share; False once ``job`` is taken (needs none) or cancelled."""
        with self._changed:
            while self.held >= self.pages:
                if job.taken or job.cancelled.is_set():
                    return False
                self._changed.wait(_POLL_SECONDS)
            self.held += 1
            self.peak = max(self.peak, self.held)
            return True

    def release(self) -> None:
        """A page that held a share was read (or dropped): another job may buffer one."""
        with self._changed:
            self.held -= 1
            self._changed.notify()

    def wake(self) -> None:
        """A job was taken or cancelled: whoever waits for it stops waiting."""
        with self._changed:
            self._changed.notify_all()


class _Job:
    """One producer, run by a worker, feeding a small queue the consumer reads from.

    Each queued item is ``(item, holds_a_share)``: the consumer returns the share.
    """

    def __init__(
        self, produce: Callable[[], Iterable[t.Any]], depth: int, budget: PageBudget
    ) -> None:
        self._produce = produce
        self._queue: queue.Queue[tuple[t.Any, bool]] = queue.Queue(maxsize=depth)
        self._budget = budget
        self.cancelled = threading.Event()
        self.taken = False

    def run(self) -> None:
        if self._feed(self._produce):
            self._put(_END)

    def _feed(self, produce: Callable[[], Iterable[t.Any]]) -> bool:
        """Queue what ``produce`` makes; False if it failed or the job was cancelled."""
        items: Iterable[t.Any] = ()
        try:
            items = produce()
            if isinstance(items, Parallel):
                return self._feed_parallel(items)
            for item in items:
                if not self._put(item):
                    return False
        except BaseException as exc:
            self._put(_Failure(exc))
            return False
        finally:
            if isinstance(items, Generator):
                items.close()  # a cancelled producer sends no further request
        return True

    def _feed_parallel(self, parallel: Parallel) -> bool:
        for item in parallel.head:
            if not self._put(item):
                return False
        fed: list[bool] = []
        threads = [
            threading.Thread(
                target=lambda produce=produce: fed.append(self._feed(produce)),
                name="usersnap-fetch-part",
                daemon=True,
            )
            for produce in parallel.producers
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if not all(fed):
            return False
        return parallel.tail is None or self._feed(parallel.tail)

    def _put(self, item: object) -> bool:
        share = item is not _END and not self.taken and self._budget.acquire(self)
        while not self.cancelled.is_set():
            try:
                self._queue.put((item, share), timeout=_POLL_SECONDS)
            except queue.Full:
                continue
            if self.cancelled.is_set():
                self._drain()  # cancelled while putting: nobody will read it
            return True
        if share:
            self._budget.release()
        return False

    def take(self) -> Iterator[t.Any]:
        """The items, for the consumer: from now on they need no share of the budget."""
        self.taken = True
        self._budget.wake()
        return self._items()

    def _items(self) -> Iterator[t.Any]:
        try:
            while True:
                item, share = self._queue.get()
                if share:
                    self._budget.release()
                if item is _END:
                    return
                if isinstance(item, _Failure):
                    raise item.error
                yield item
        finally:
            self.cancel()

    def cancel(self) -> None:
        """Stop producing, and return the shares of what nobody will read."""
        self.cancelled.set()
        self._budget.wake()
        self._drain()

    def _drain(self) -> None:
        while True:
            try:
                _item, share = self._queue.get_nowait()
            except queue.Empty:
                return
            if share:
                self._budget.release()


class Prefetcher:
    """A bounded pool running announced fetches ahead of their consumption.

    Each job's queue holds at most ``depth`` pages, and all jobs not yet taken together
    at most ``budget`` pages (default: ``PAGES_AHEAD_PER_WORKER`` a worker), so memory
    stays flat whatever the size and number of projects. Jobs start in the order they
    were announced, which must be the order they are consumed in: then a job the
    consumer waits for is always running.
    Taking a job cancels every earlier one nobody took (a stream map filtered it out).
    """

    def __init__(self, workers: int, depth: int = 4, budget: int | None = None) -> None:
        self.workers = workers
        self._depth = depth
        self.budget = PageBudget(budget or workers * PAGES_AHEAD_PER_WORKER)
        self._pending: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._announced: OrderedDict[Hashable, _Job] = OrderedDict()
        self._running = 0
        self._lock = threading.Lock()

    def announce(self, key: Hashable, produce: Callable[[], Iterable[t.Any]]) -> None:
        """Start ``produce`` as soon as a worker is free; its items wait for ``take``."""
        job = _Job(produce, self._depth, self.budget)
        self._announced[key] = job
        with self._lock:
            self._pending.put(job)
            if self._running < self.workers:
                self._running += 1
                threading.Thread(target=self._work, name="usersnap-fetch", daemon=True).start()

    def take(self, key: Hashable) -> Iterator[t.Any] | None:
        """The items of an announced job, or None if ``key`` was never announced."""
        if key not in self._announced:
            return None
        while (earlier := next(iter(self._announced))) != key:
            self._announced.pop(earlier).cancel()
        return self._announced.pop(key).take()

    def _work(self) -> None:
        """Run jobs until none is left for a while (idle workers do not linger)."""
        while True:
            try:
                job = self._pending.get(timeout=_IDLE_SECONDS)
            except queue.Empty:
                with self._lock:
                    if self._pending.empty():
                        self._running -= 1
                        return
                continue
            if not job.cancelled.is_set():
                job.run()
