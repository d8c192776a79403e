"""SQL for the message ledger on the send path: fan-out inserts, the claim before a Twilio call, and every
move a send can make afterwards. Each UPDATE names the status it expects (compare-and-set), so a
duplicate task, a late status callback or a racing cancel can never be overwritten."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any, cast

from sqlalchemy import Table, bindparam, select, text, update
from sqlalchemy.orm import Session

from shared.db.models import CampaignRecipient, Message, User
from shared.db.queries.prepared import run_prepared
from shared.db.unit_of_work import UnitOfWork
from shared.domain.enums import CampaignStatus, MessageStatus


@dataclass(frozen=True)
class Recipient:
    phone: str
    attributes: dict[str, Any]
    consent_state: str


def page_recipients(session: Session, campaign_id: int, first: str, last: str) -> list[Recipient]:
    """The page's frozen recipients with their current attributes and consent, in one query: a range scan
    on campaign_recipients' primary key joined to users by theirs."""
    statement = (
        select(User.phone_e164, User.attributes, User.consent_state)
        .join(CampaignRecipient, CampaignRecipient.phone == User.phone_e164)
        .where(CampaignRecipient.campaign_id == campaign_id, CampaignRecipient.phone.between(first, last))
        .order_by(CampaignRecipient.phone)
    )
    return [Recipient(*row) for row in session.execute(statement)]


# One statement whatever the page size: the rows travel as one JSON parameter that jsonb_to_recordset
# unpacks in the server. A multi-row VALUES of the same rows was recompiled by SQLAlchemy for every page
# (seven bind parameters per row) and cost more than the database's own work; it also ran while the
# campaign's planning cursor was locked, holding up the page fanned out beside it.
_INSERT_NEW = text(
    """
    INSERT INTO messages
        (campaign_id, recipient_phone, body, content_variables, status, status_reason, scheduled_at, sender)
    SELECT :campaign_id, r.recipient_phone, r.body, r.content_variables, r.status, r.status_reason,
           r.scheduled_at, r.sender
    FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(
        recipient_phone text, body text, content_variables jsonb, status text, status_reason text,
        scheduled_at timestamptz, sender text
    )
    ON CONFLICT (campaign_id, recipient_phone) DO NOTHING
    RETURNING recipient_phone, id, created_at
    """
)


@dataclass(frozen=True)
class NewMessage:
    recipient_phone: str
    body: str | None
    content_variables: dict[str, str] | None
    status: MessageStatus
    status_reason: str | None
    scheduled_at: datetime | None
    # A pool campaign's sender, as fan-out chose it (docs/architecture.md, "Sender pools").
    sender: str | None = None


def insert_new(
    session: Session, campaign_id: int, rows: Sequence[NewMessage]
) -> dict[str, tuple[int, datetime]]:
    """Rows already there are left alone by the unique (campaign_id, recipient_phone) key. Returns
    (id, created_at) of the rows this call created, by phone."""
    if not rows:
        return {}
    payload = json.dumps(
        [
            {
                "recipient_phone": row.recipient_phone,
                "body": row.body,
                "content_variables": row.content_variables,
                "status": row.status.value,
                "status_reason": row.status_reason,
                "scheduled_at": row.scheduled_at.isoformat() if row.scheduled_at else None,
                "sender": row.sender,
            }
            for row in rows
        ]
    )
    result = session.execute(_INSERT_NEW, {"campaign_id": campaign_id, "rows": payload})
    return {phone: (mid, created) for phone, mid, created in result}


@dataclass(frozen=True)
class QueuedMessage:
    id: int
    generation: int
    created_at: datetime
    # None while parked (no task exists for it: written or claimed while the campaign was paused).
    scheduled_at: datetime | None
    user_timezone: Any
    sender: str | None
    recipient_phone: str


def queued_in_page(session: Session, campaign_id: int, first: str, last: str) -> list[QueuedMessage]:
    """The page's QUEUED messages: a range scan on the (campaign_id, recipient_phone) unique index."""
    statement = (
        select(
            Message.id,
            Message.generation,
            Message.created_at,
            Message.scheduled_at,
            User.attributes["timezone"].astext,
            Message.sender,
            Message.recipient_phone,
        )
        .join(User, User.phone_e164 == Message.recipient_phone)
        .where(
            Message.campaign_id == campaign_id,
            Message.recipient_phone.between(first, last),
            Message.status == MessageStatus.QUEUED.value,
        )
        .order_by(Message.recipient_phone)
    )
    return [QueuedMessage(*row) for row in session.execute(statement)]


def schedule_parked(session: Session, times: Mapping[int, datetime]) -> None:
    """Give parked messages (QUEUED, no task: scheduled_at NULL) their new send time, in one executemany.
    The NULL test keeps a message that already has a task from being given a time that task lacks."""
    if not times:
        return
    statement = (
        update(cast(Table, Message.__table__))
        .where(Message.id == bindparam("mid"), Message.scheduled_at.is_(None))
        .values(scheduled_at=bindparam("at"))
    )
    session.execute(statement, [{"mid": mid, "at": at} for mid, at in times.items()])


@dataclass(frozen=True)
class SendContext:
    id: int
    campaign_id: int
    recipient_phone: str
    body: str | None
    content_variables: dict[str, str] | None
    status: MessageStatus
    generation: int
    retry_count: int
    claimed_at: datetime | None
    slot_at: datetime | None
    scheduled_at: datetime | None
    created_at: datetime
    consent_state: str
    last_inbound_at: datetime | None
    user_timezone: Any
    campaign_status: CampaignStatus
    rate_limit_per_second: int
    quiet_hours_start: time | None
    quiet_hours_end: time | None
    campaign_timezone: str
    content_sid: str | None
    # Sender pools (docs/architecture.md, "Sender pools"): the campaign's pool (None: the configured
    # sender), the message's chosen sender with its state and ceiling, and when the user last wrote to it.
    sender_pool: str | None
    sender: str | None
    sender_state: str | None
    sender_rate: int | None
    sender_last_inbound_at: datetime | None
    # Frequency caps (docs/architecture.md, "Frequency caps").
    transactional: bool
    frequency_cap_policy: str
    ends_at: datetime | None
    # Whether any frequency cap is configured: without one the send path takes no cap lock, runs no count.
    caps_configured: bool
    # The summed ceilings of the campaign's pool's active senders (None without a pool).
    pool_rate: int | None
    # The active sender of the pool the user last wrote to, if any: it wins over the message's sender.
    pool_wrote_to: str | None


# The send path's statements are prepared once per connection (shared.db.queries.prepared): unnamed, each
# cost three round trips and a fresh plan of the four-table join, which made the database round trips
# most of a send's CPU.
_LOCK_FOR_SEND = """
SELECT m.id, m.campaign_id, m.recipient_phone, m.body, m.content_variables, m.status, m.generation,
       m.retry_count, m.claimed_at, m.slot_at, m.scheduled_at, m.created_at,
       u.consent_state, u.last_inbound_at, u.attributes ->> 'timezone',
       c.status, c.rate_limit_per_second, c.quiet_hours_start, c.quiet_hours_end, c.timezone, t.content_sid,
       c.sender_pool, m.sender, s.state, s.rate_limit_per_second, us.last_inbound_at,
       c.transactional, c.frequency_cap_policy, c.ends_at, EXISTS (SELECT 1 FROM frequency_caps),
       (SELECT sum(p.rate_limit_per_second) FROM senders AS p WHERE p.pool = c.sender_pool AND p.state = 'active'),
       (SELECT w.sender FROM user_senders AS w
        JOIN senders AS ws ON ws.address = w.sender AND ws.pool = c.sender_pool AND ws.state = 'active'
        WHERE w.user_phone = m.recipient_phone
        ORDER BY w.last_inbound_at DESC, w.sender DESC LIMIT 1)
FROM messages AS m
JOIN users AS u ON u.phone_e164 = m.recipient_phone
JOIN campaigns AS c ON c.id = m.campaign_id
JOIN templates AS t ON t.id = c.template_id
LEFT JOIN senders AS s ON s.address = m.sender AND s.pool = c.sender_pool
LEFT JOIN user_senders AS us ON us.user_phone = m.recipient_phone AND us.sender = m.sender
WHERE m.id = :message_id
FOR UPDATE OF m
"""


def lock_for_send(session: Session, message_id: int) -> SendContext | None:
    """The message with everything the send-time checks need, the message row (only) locked.

    Locking it before deciding makes every later UPDATE a safe compare-and-set, and a duplicate task
    waits here, then sees the row already moved on. Users and campaigns are read, not locked: at the claim
    the send holds the advisory locks of shared.db.queries.send_guard, which every consent change, pause
    and cancel must take before it commits, so what this reads then is final for the call that follows."""
    rows = run_prepared(session.connection(), _LOCK_FOR_SEND, {"message_id": message_id}, autocommit=False)
    if not rows:
        return None
    values = list(rows[0])
    values[5] = MessageStatus(values[5])
    values[15] = CampaignStatus(values[15])
    return SendContext(*values)


# Only from QUEUED and this task's generation, although the caller holds the row lock: a claim must never
# be able to send twice.
_CLAIM = """
UPDATE messages
SET status = :sending, attempts = attempts + 1, claimed_at = :now, slot_at = NULL, updated_at = now()
WHERE id = :message_id AND status = :queued AND generation = :generation
RETURNING id
"""


def claim(session: Session, message_id: int, generation: int, now: datetime) -> bool:
    """QUEUED -> SENDING in the caller's transaction, just before the Twilio call (`claimed_at` is when)."""
    params = {
        "message_id": message_id,
        "generation": generation,
        "now": now,
        "sending": MessageStatus.SENDING.value,
        "queued": MessageStatus.QUEUED.value,
    }
    return bool(run_prepared(session.connection(), _CLAIM, params, autocommit=False))


_HOLD_SLOT = """
UPDATE messages SET slot_at = :slot, updated_at = now()
WHERE id = :message_id AND status = :queued AND generation = :generation
RETURNING id
"""


def hold_slot(session: Session, message_id: int, generation: int, slot: datetime) -> bool:
    """Remember the rate slot reserved for this send (the row stays QUEUED: nothing is claimed before the
    slot), so a retry of the same task uses it rather than taking another."""
    params = {
        "message_id": message_id,
        "generation": generation,
        "slot": slot,
        "queued": MessageStatus.QUEUED.value,
    }
    return bool(run_prepared(session.connection(), _HOLD_SLOT, params, autocommit=False))


_MESSAGES = cast(Table, Message.__table__)


def set_fields(session: Session, message_id: int, expected: MessageStatus, **values: Any) -> bool:
    """Compare-and-set on the status: change the row only if it is still `expected`.

    On the table, not the mapped class: the ORM's bulk UPDATE would first evaluate the criteria against
    every object in the session (there are none) at a measurable cost per send."""
    statement = (
        update(_MESSAGES)
        .where(Message.id == message_id, Message.status == expected.value)
        .values(**values)
        .returning(Message.id)
    )
    return session.execute(statement).first() is not None


def rate_limit_deferral(wait: timedelta) -> dict[str, Any]:
    """SET items for `set_fields`: one more deferral for a rate slot, `wait` ahead."""
    return {
        "rate_limit_deferrals": _MESSAGES.c.rate_limit_deferrals + 1,
        "rate_limit_wait_seconds": _MESSAGES.c.rate_limit_wait_seconds + max(wait.total_seconds(), 0.0),
    }


def frequency_cap_deferral() -> dict[str, Any]:
    """SET items for `set_fields`: one more deferral by the per-user frequency caps."""
    return {"frequency_cap_deferrals": _MESSAGES.c.frequency_cap_deferrals + 1}


# A status callback may commit first (Twilio can call back before our commit): a row it already moved on
# keeps its status (never downgraded); only the SID is filled in.
_RECORD_ACCEPTED = """
UPDATE messages
SET provider_sid = :sid,
    status = CASE WHEN status = ANY(CAST(:early AS text[])) THEN :accepted ELSE status END,
    status_reason = NULL,
    error_code = NULL,
    updated_at = :now
WHERE id = :message_id
RETURNING id
"""
_EARLY = "{" + ",".join((MessageStatus.SENDING.value, MessageStatus.AMBIGUOUS.value)) + "}"


def record_accepted(uow: UnitOfWork, message_id: int, sid: str, now: datetime) -> bool:
    """Twilio accepted: keep the SID and move SENDING (or AMBIGUOUS) to ACCEPTED, in one statement that is
    its own transaction (the claim it follows is already committed): call it outside `with uow:`."""
    params = {
        "message_id": message_id,
        "sid": sid,
        "now": now,
        "early": _EARLY,
        "accepted": MessageStatus.ACCEPTED.value,
    }
    return bool(uow.prepared(_RECORD_ACCEPTED, params))


def park_all_queued(session: Session, campaign_id: int, now: datetime) -> int:
    """Resume: every QUEUED message of the campaign under a new generation and without a send time, so the
    republished pages plan them again and create tasks with new names. Their old tasks may have been
    dropped after their retries (a name reused within about an hour is refused as ALREADY_EXISTS, which
    would leave the message with no task at all)."""
    statement = (
        update(Message)
        .where(Message.campaign_id == campaign_id, Message.status == MessageStatus.QUEUED.value)
        .values(generation=Message.generation + 1, scheduled_at=None, slot_at=None, updated_at=now)
    )
    return session.execute(statement).rowcount  # type: ignore[attr-defined, no-any-return]


def withhold_queued(session: Session, campaign_id: int, reason: str, now: datetime) -> int:
    """Cancel: every message still waiting is withheld with the reason, in one UPDATE over the
    (campaign_id, status) index. Messages already SENDING finish; their outcome is recorded normally."""
    statement = (
        update(Message)
        .where(Message.campaign_id == campaign_id, Message.status == MessageStatus.QUEUED.value)
        .values(status=MessageStatus.WITHHELD.value, status_reason=reason, updated_at=now)
    )
    return session.execute(statement).rowcount  # type: ignore[attr-defined, no-any-return]
