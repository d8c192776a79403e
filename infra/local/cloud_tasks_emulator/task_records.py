"""What the emulator keeps about each task beyond the Task message, and the names it still reserves."""

import time
from dataclasses import dataclass, field

from google.cloud import tasks_v2

from infra.local.cloud_tasks_emulator.http_dispatch import AttemptOutcome


@dataclass
class TaskRecord:
    task: tasks_v2.Task
    eta: float
    heap_seq: int | None = None  # the live heap entry's sequence number; None while not waiting
    first_attempt_at: float | None = None
    execution_count: int = 0
    previous: AttemptOutcome | None = None
    in_flight: int = 0


@dataclass
class TaskTombstones:
    """Names of finished or deleted tasks, refused by CreateTask for `ttl` seconds like the service does."""

    ttl: float
    _expiry: dict[str, float] = field(default_factory=dict)

    def add(self, name: str) -> None:
        self._expiry[name] = time.monotonic() + self.ttl

    def __contains__(self, name: str) -> bool:
        # Entries are added with one ttl, so insertion order is expiry order: drop the expired prefix.
        now = time.monotonic()
        while self._expiry:
            oldest = next(iter(self._expiry))
            if self._expiry[oldest] > now:
                break
            del self._expiry[oldest]
        return name in self._expiry
