"""SQL for inbound WhatsApp messages: the raw event first, then what it says about its sender."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from shared.db.models import InboundEvent, User
from shared.db.queries.conversation import answered_message


def insert_inbound_event(
    session: Session,
    *,
    message_sid: str | None,
    from_phone: str | None,
    body: str | None,
    raw_payload: dict[str, Any],
    idempotency_token: str | None,
    outcome: str,
    received_at: datetime,
    wa_id: str | None = None,
    profile_name: str | None = None,
    body_normalized: str | None = None,
    channel: str | None = None,
) -> int | None:
    """The new row's id, or None when this MessageSid was already recorded (Twilio redelivered it).

    ON CONFLICT on the unique MessageSid rather than a prior SELECT, so two concurrent deliveries of one
    event cannot both pass. A NULL MessageSid (a malformed webhook) never conflicts and is always kept.
    The message it answers is found by a subquery of this same statement: the webhook, which answers a
    STOP, pays no round trip for it (docs/architecture.md, "Conversations").
    """
    statement = (
        insert(InboundEvent)
        .values(
            message_sid=message_sid,
            from_phone=from_phone,
            body=body,
            raw_payload=raw_payload,
            idempotency_token=idempotency_token,
            outcome=outcome,
            received_at=received_at,
            wa_id=wa_id,
            profile_name=profile_name,
            body_normalized=body_normalized,
            channel=channel,
            in_reply_to_message_id=answered_message(from_phone, received_at),
        )
        .on_conflict_do_nothing(index_elements=[InboundEvent.message_sid])
        .returning(InboundEvent.id)
    )
    return session.execute(statement).scalar_one_or_none()


def recorded_outcome(session: Session, message_sid: str) -> str | None:
    """What the first delivery of this event was made of, so a redelivery can answer the same."""
    statement = select(InboundEvent.outcome).where(InboundEvent.message_sid == message_sid)
    return session.execute(statement).scalar_one_or_none()


def record_sender_activity(session: Session, phone_e164: str, at: datetime) -> None:
    """Create an unknown sender (not opted in: the column default) and open their 24-hour window.

    GREATEST ignores NULL and keeps a later time already recorded, so a delayed or redelivered webhook
    never shortens the window.
    """
    statement = (
        insert(User)
        .values(phone_e164=phone_e164, last_inbound_at=at)
        .on_conflict_do_update(
            index_elements=[User.phone_e164],
            set_={"last_inbound_at": func.greatest(User.last_inbound_at, at), "updated_at": func.now()},
        )
    )
    session.execute(statement)
