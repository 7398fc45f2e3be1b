"""Fetch upcoming projects in background threads while the current one is emitted.

The SDK syncs a parent's children one project at a time. Announcing every project's
fetch up front lets a bounded pool of workers overlap the API's latency, while the
main thread still consumes (and writes records and state) strictly in the SDK's order.
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


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


class _Job:
    """One producer, run by a worker, feeding a small queue the consumer reads from."""

    def __init__(self, produce: Callable[[], Iterable[t.Any]], depth: int) -> None:
        self._produce = produce
        self._queue: queue.Queue[t.Any] = queue.Queue(maxsize=depth)
        self.cancelled = threading.Event()

    def run(self) -> None:
        items: Iterable[t.Any] = ()
        try:
            items = self._produce()
            for item in items:
                if not self._put(item):
                    return
            self._put(_END)
        except BaseException as exc:
            self._put(_Failure(exc))
        finally:
            if isinstance(items, Generator):
                items.close()  # a cancelled producer sends no further request

    def _put(self, item: object) -> bool:
        while not self.cancelled.is_set():
            try:
                self._queue.put(item, timeout=_POLL_SECONDS)
            except queue.Full:
                continue
            return True
        return False

    def items(self) -> Iterator[t.Any]:
        try:
            while (item := self._queue.get()) is not _END:
                if isinstance(item, _Failure):
                    raise item.error
                yield item
        finally:
            self.cancelled.set()


class Prefetcher:
    """A bounded pool running announced fetches ahead of their consumption.

    Each job's queue holds at most ``depth`` pages, so memory stays flat whatever the
    size of a project. Jobs start in the order they were announced, which must be the
    order they are consumed in: then a job the consumer waits for is always running.
    Taking a job cancels every earlier one nobody took (a stream map filtered it out).
    """

    def __init__(self, workers: int, depth: int = 4) -> None:
        self.workers = workers
        self._depth = depth
        self._pending: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._announced: OrderedDict[Hashable, _Job] = OrderedDict()
        self._running = 0
        self._lock = threading.Lock()

    def announce(self, key: Hashable, produce: Callable[[], Iterable[t.Any]]) -> None:
        """Start ``produce`` as soon as a worker is free; its items wait for ``take``."""
        job = _Job(produce, self._depth)
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
            self._announced.pop(earlier).cancelled.set()
        return self._announced.pop(key).items()

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
