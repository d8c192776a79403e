"""SQL for delivery receipts: every status callback Twilio sends, kept raw."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from shared.db.models import DeliveryReceipt


def insert_receipt(
    session: Session,
    *,
    message_sid: str | None,
    message_status: str | None,
    message_id: int | None,
    error_code: int | None,
    raw_payload: dict[str, Any],
    idempotency_token: str | None,
) -> int | None:
    """The new receipt's id, or None when (MessageSid, MessageStatus) was already recorded.

    Twilio repeats callbacks; the unique key turns a repeat into a no-op even when two copies race.
    NULLs never conflict, so a malformed callback is always kept for audit.
    """
    statement = (
        insert(DeliveryReceipt)
        .values(
            message_sid=message_sid,
            message_status=message_status,
            message_id=message_id,
            error_code=error_code,
            raw_payload=raw_payload,
            idempotency_token=idempotency_token,
        )
        .on_conflict_do_nothing(index_elements=[DeliveryReceipt.message_sid, DeliveryReceipt.message_status])
        .returning(DeliveryReceipt.id)
    )
    return session.execute(statement).scalar_one_or_none()
