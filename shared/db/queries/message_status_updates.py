"""SQL that moves a message's status from Twilio's status callbacks: forward by rank only."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select, update
from sqlalchemy.orm import Session

from shared.db.models import Message
from shared.domain.enums import MessageStatus


@dataclass(frozen=True)
class CallbackTarget:
    id: int
    status: MessageStatus
    recipient_phone: str
    provider_sid: str | None


def lock_message_for_callback(
    session: Session, provider_sid: str, message_id: int | None
) -> CallbackTarget | None:
    """The message a callback is about, locked until commit.

    By SID first (the unique index on provider_sid); else by our id from the callback URL, but only while
    the row has no SID yet: that is an AMBIGUOUS send whose create response was lost. A row that already
    holds another SID is a different send and must not be touched.

    The row lock serializes the callbacks of one message (Twilio sends them concurrently), so each
    update below sees the status the previous one left.
    """
    columns = (Message.id, Message.status, Message.recipient_phone, Message.provider_sid)
    row = session.execute(
        select(*columns).where(Message.provider_sid == provider_sid).with_for_update()
    ).one_or_none()
    if row is None and message_id is not None:
        row = session.execute(
            select(*columns).where(Message.id == message_id, Message.provider_sid.is_(None)).with_for_update()
        ).one_or_none()
    if row is None:
        return None
    return CallbackTarget(row.id, MessageStatus(row.status), row.recipient_phone, row.provider_sid)


def attach_provider_sid(session: Session, message_id: int, provider_sid: str) -> None:
    session.execute(
        update(Message)
        .where(Message.id == message_id, Message.provider_sid.is_(None))
        .values(provider_sid=provider_sid, updated_at=func.now())
    )


def apply_callback_status(
    session: Session,
    message_id: int,
    *,
    new_status: MessageStatus,
    replaces: Collection[MessageStatus],
    timestamp_columns: Collection[str],
    at: datetime,
    error_code: int | None,
    reason: str | None,
) -> MessageStatus:
    """Move to `new_status` if the current status is one it `replaces`; returns the status after.

    One UPDATE, and the row is always touched: the status CASE guards the rank (a late `sent` never
    overwrites `delivered`; final states stay final), while the timestamps are facts and are filled even
    when the status does not move (a `sent` arriving after `delivered` still tells when it was sent).
    COALESCE keeps the first report's time when callbacks repeat or arrive out of order.
    """
    moves = Message.status.in_([s.value for s in replaces])
    values: dict[str, Any] = {
        "status": case((moves, new_status.value), else_=Message.status),
        "updated_at": func.now(),
    }
    for column in timestamp_columns:
        values[column] = func.coalesce(getattr(Message, column), at)
    if error_code is not None:
        values["error_code"] = case((moves, error_code), else_=Message.error_code)
    if reason is not None:
        values["status_reason"] = case((moves, reason), else_=Message.status_reason)
    statement = update(Message).where(Message.id == message_id).values(values).returning(Message.status)
    return MessageStatus(session.execute(statement).scalar_one())
