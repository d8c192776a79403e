"""Builders and recording fakes for the campaign pipeline's integration tests (real PostgreSQL).

Only the outside services are faked (Pub/Sub publish, Cloud Tasks create): each fake records what was
asked of it, so a test asserts on what would have been published or scheduled.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from typing import Any

from sqlalchemy import Engine, insert, select

from shared.adapters.tasks import SendTask
from shared.db.models import Campaign, Message, Segment, Subscription, Template, User
from shared.services.page_publishing import PageMessage

EVERYONE: dict[str, Any] = {"operator": "AND", "conditions": []}
T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def phone(n: int) -> str:
    """Numbered phones with gaps between them (the last digit is 0), so a test can slot one in between."""
    return f"+14155{n:05d}0"


def add_users(
    engine: Engine, count: int, *, consent: str = "OPT_IN", start: int = 0, **attributes: Any
) -> list[str]:
    phones = [phone(start + i) for i in range(count)]
    with engine.begin() as conn:
        conn.execute(
            insert(User),
            [
                {
                    "phone_e164": p,
                    "consent_state": consent,
                    "attributes": {"first_name": f"U{i}", **attributes},
                }
                for i, p in enumerate(phones)
            ],
        )
    return phones


def add_campaign(
    engine: Engine,
    *,
    content: str = "Hi {first_name}",
    content_sid: str | None = None,
    content_variables: dict[str, str] | None = None,
    definition: dict[str, Any] | None = None,
    status: str = "READY",
    rate: int = 80,
    quiet: tuple[time, time] | None = None,
    timezone: str = "UTC",
    topic: str | None = None,
    schedule_time: datetime | None = None,
) -> int:
    with engine.begin() as conn:
        template_id = conn.execute(
            insert(Template).returning(Template.id),
            [
                {
                    "name": f"t{datetime.now().timestamp()}",
                    "content": content,
                    "content_sid": content_sid,
                    "content_variables": content_variables or {},
                }
            ],
        ).scalar_one()
        segment_id = conn.execute(
            insert(Segment).returning(Segment.id),
            [{"name": f"s{datetime.now().timestamp()}", "definition": definition or EVERYONE}],
        ).scalar_one()
        return int(
            conn.execute(
                insert(Campaign).returning(Campaign.id),
                [
                    {
                        "name": "spring sale",
                        "template_id": template_id,
                        "segment_id": segment_id,
                        "status": status,
                        "rate_limit_per_second": rate,
                        "quiet_hours_start": quiet[0] if quiet else None,
                        "quiet_hours_end": quiet[1] if quiet else None,
                        "timezone": timezone,
                        "topic": topic,
                        "schedule_time": schedule_time,
                    }
                ],
            ).scalar_one()
        )


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
