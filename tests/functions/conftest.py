"""What every test of the functions shares: the outside services the health report reads are fakes here
(a running, empty send queue; an empty dead-letter subscription), so a request never waits for Google's
credential lookup. Their real clients are tested against the emulators (tests/emulators/
test_cloud_tasks_queue_stats.py, test_dead_letter_drain.py).

Each test's runtime is made afresh by its settings fixture, after these fixtures run, so they replace the
factories a runtime builds these two clients with (shared.bootstrap), not a runtime."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest

from shared import bootstrap
from shared.adapters.pubsub import PulledMessage
from shared.adapters.tasks import QueueStatus
from shared.config import Settings


class FakeQueue:
    def __init__(self, status: QueueStatus | None = None) -> None:
        self.current = status or QueueStatus("RUNNING", 0, None, 0, 0)

    def status(self) -> QueueStatus:
        return self.current


class FakeDeadLetters:
    subscription = "projects/test-project/subscriptions/campaign-recipients-dead-letter-hold"

    def __init__(self) -> None:
        self.waiting: list[PulledMessage] = []
        self.acked: list[str] = []

    def pull(self, max_messages: int) -> list[PulledMessage]:
        return self.waiting[:max_messages]

    def ack(self, ack_ids: Sequence[str]) -> None:
        self.acked.extend(ack_ids)
        self.waiting = [m for m in self.waiting if m.ack_id not in ack_ids]


# A MonkeyPatch of their own, not the shared `monkeypatch` fixture: an autouse fixture sets up first, and
# would otherwise move every test's other monkeypatching to after its settings fixture's teardown.
@pytest.fixture(autouse=True)
def fake_queue() -> Iterator[FakeQueue]:
    queue = FakeQueue()

    def inspector(settings: Settings) -> FakeQueue:
        return queue

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(bootstrap, "make_queue_inspector", inspector)
        yield queue


@pytest.fixture(autouse=True)
def fake_dead_letters() -> Iterator[FakeDeadLetters]:
    source = FakeDeadLetters()

    def subscriber(settings: Settings) -> FakeDeadLetters:
        return source

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(bootstrap, "make_dead_letter_source", subscriber)
        yield source
