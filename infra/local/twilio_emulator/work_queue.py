"""Delayed tasks run by a fixed pool of worker threads, so a burst of sends never means a burst of threads."""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

Task = Callable[[], None]


class DelayedWorkQueue:
    def __init__(self, workers: int) -> None:
        self._lock = threading.Lock()
        self._due = threading.Condition(self._lock)
        self._idle = threading.Condition(self._lock)
        self._heap: list[tuple[float, int, Task]] = []
        self._order = itertools.count()  # ties on due time run in submission order
        self._running = 0
        self._stopping = False
        self._threads = [
            threading.Thread(target=self._work, name=f"twilio-emulator-callbacks-{i}", daemon=True)
            for i in range(workers)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            self._due.notify_all()
        for thread in self._threads:
            thread.join(timeout=5)

    def submit(self, delay: float, task: Task) -> None:
        with self._lock:
            heapq.heappush(self._heap, (time.monotonic() + delay, next(self._order), task))
            self._due.notify()

    def clear(self) -> None:
        """Drop every task not yet started."""
        with self._lock:
            self._heap.clear()
            self._idle.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """True once nothing is pending or running; False if that did not happen within `timeout`."""
        with self._lock:
            return self._idle.wait_for(lambda: not self._heap and not self._running, timeout)

    def _work(self) -> None:
        while True:
            task = self._next_task()
            if task is None:
                return
            try:
                task()
            except Exception:
                log.exception("twilio emulator background task failed")
            finally:
                with self._lock:
                    self._running -= 1
                    self._idle.notify_all()

    def _next_task(self) -> Task | None:
        with self._lock:
            while not self._stopping:
                if not self._heap:
                    self._due.wait()
                    continue
                wait = self._heap[0][0] - time.monotonic()
                if wait > 0:
                    self._due.wait(wait)
                    continue
                self._running += 1
                return heapq.heappop(self._heap)[2]
            return None
