"""Builders and recording fakes for the campaign pipeline's integration tests (real PostgreSQL).

Only the outside services are faked (Pub/Sub publish, Cloud Tasks create): each fake records what was
asked of it, so a test asserts on what would have been published or scheduled.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, insert, select

from shared.adapters.tasks import SendTask
from shared.db.models import Campaign, Message, Subscription
from shared.services.page_publishing import PageMessage


def subscribe(engine: Engine, phones: Sequence[str], topic: str) -> None:
    with engine.begin() as conn:
        conn.execute(insert(Subscription), [{"user_phone": p, "topic": topic} for p in phones])


def messages_of(engine: Engine, campaign_id: int) -> list[Any]:
    with engine.connect() as conn:
        statement = (
            select(Message).where(Message.campaign_id == campaign_id).order_by(Message.recipient_phone)
        )
        return list(conn.execute(statement))


def campaign_row(engine: Engine, campaign_id: int) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(Campaign).where(Campaign.id == campaign_id)).one()


@dataclass
class RecordingPublisher:
    payloads: list[bytes] = field(default_factory=list)
    fail: bool = False

    def publish(self, payloads: Sequence[bytes]) -> None:
        if self.fail:
            raise RuntimeError("pub/sub unavailable")
        self.payloads.extend(payloads)

    def pages(self) -> list[PageMessage]:
        return [PageMessage.decode(p) for p in self.payloads]


@dataclass
class RecordingTasks:
    tasks: list[SendTask] = field(default_factory=list)
    fail: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def schedule(self, tasks: Sequence[SendTask]) -> None:
        if self.fail:
            raise RuntimeError("cloud tasks unavailable")
        with self._lock:
            self.tasks.extend(tasks)

    def exists(self, task: SendTask) -> bool:
        """A recorded task counts as still in its queue (tests drop it from `tasks` to lose it)."""
        with self._lock:
            return any((t.message_id, t.generation) == (task.message_id, task.generation) for t in self.tasks)

    def by_message(self) -> dict[int, list[SendTask]]:
        grouped: dict[int, list[SendTask]] = {}
        for task in self.tasks:
            grouped.setdefault(task.message_id, []).append(task)
        return grouped
