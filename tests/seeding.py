"""Rows the tests start from, written straight into PostgreSQL: users, campaigns, queued messages. One
builder per kind of row for tests/integration, tests/functions and tests/e2e alike, so a change to the
schema is made here once."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from time import time_ns
from typing import Any

from sqlalchemy import Engine, insert, update

from shared.db.models import Campaign, Message, Segment, Sender, Template, User

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
    name: str = "spring sale",
    **columns: Any,
) -> int:
    """A campaign with a template and a segment of its own (everyone, unless `definition` says); `columns`
    sets any other campaign column (sender_pool, transactional, frequency_cap_policy, ends_at...)."""
    suffix = time_ns()
    with engine.begin() as conn:
        template_id = conn.execute(
            insert(Template).returning(Template.id),
            [
                {
                    "name": f"t{suffix}",
                    "content": content,
                    "content_sid": content_sid,
                    "content_variables": content_variables or {},
                }
            ],
        ).scalar_one()
        segment_id = conn.execute(
            insert(Segment).returning(Segment.id),
            [{"name": f"s{suffix}", "definition": definition or EVERYONE}],
        ).scalar_one()
        return int(
            conn.execute(
                insert(Campaign).returning(Campaign.id),
                [
                    {
                        "name": name,
                        "template_id": template_id,
                        "segment_id": segment_id,
                        "status": status,
                        "rate_limit_per_second": rate,
                        "quiet_hours_start": quiet[0] if quiet else None,
                        "quiet_hours_end": quiet[1] if quiet else None,
                        "timezone": timezone,
                        "topic": topic,
                        "schedule_time": schedule_time,
                        **columns,
                    }
                ],
            ).scalar_one()
        )


def add_sender(
    engine: Engine,
    address: str,
    *,
    pool: str = "main",
    rate: int = 80,
    state: str = "active",
    paused_reason: str | None = None,
    paused_by: str | None = None,
) -> int:
    """One sender of a pool (paused, with a reason and by whom, when `state` says); its id."""
    with engine.begin() as conn:
        return int(
            conn.execute(
                insert(Sender).returning(Sender.id),
                [
                    {
                        "address": address,
                        "pool": pool,
                        "rate_limit_per_second": rate,
                        "state": state,
                        "paused_reason": paused_reason,
                        "paused_by": paused_by,
                        "paused_at": T0 if state == "paused" else None,
                    }
                ],
            ).scalar_one()
        )


def queued_message(
    engine: Engine, *, inbound_ago: timedelta | None = timedelta(hours=1), **campaign: Any
) -> int:
    """One QUEUED message of a RUNNING campaign to a user who wrote to us `inbound_ago` before T0."""
    (recipient,) = add_users(engine, 1)
    campaign_id = add_campaign(engine, status="RUNNING", **campaign)
    with engine.begin() as conn:
        if inbound_ago is not None:
            conn.execute(update(User).values(last_inbound_at=T0 - inbound_ago))
        return int(
            conn.execute(
                insert(Message).returning(Message.id),
                [
                    {
                        "campaign_id": campaign_id,
                        "recipient_phone": recipient,
                        "body": "Hi U0",
                        "content_variables": {"1": "U0"},
                        "scheduled_at": T0,
                    }
                ],
            ).scalar_one()
        )


def add_senders(engine: Engine, pool: str, count: int, *, rate: int = 20, first: int = 1) -> list[str]:
    """`count` active WhatsApp senders of `pool` (whatsapp:+1415555000<first>...)."""
    addresses = [f"whatsapp:+141555500{first + i:02d}" for i in range(count)]
    with engine.begin() as conn:
        conn.execute(
            insert(Sender), [{"address": a, "pool": pool, "rate_limit_per_second": rate} for a in addresses]
        )
    return addresses


def add_message(engine: Engine, campaign_id: int, phone: str, **columns: Any) -> int:
    """A message of `campaign_id` to an existing user: QUEUED for T0 unless `columns` say otherwise."""
    row = {"campaign_id": campaign_id, "recipient_phone": phone, "body": "Hi", "scheduled_at": T0, **columns}
    with engine.begin() as conn:
        return int(conn.execute(insert(Message).returning(Message.id), [row]).scalar_one())
