"""SQL for a Twilio status callback: keep the receipt and move the message forward by rank, in one statement.

A callback is one round trip (shared.db.queries.prepared): the webhook answers thousands of these a second,
and each extra statement cost more than the rest of the request.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from shared.db.unit_of_work import UnitOfWork
from shared.domain.enums import MessageStatus

# target: the message, locked. By SID first (the unique index on provider_sid); else by our id from the
#   callback URL, but only while the row has no SID yet: that is an AMBIGUOUS send whose create response
#   was lost. A row that already holds another SID is a different send and is not touched. The row lock
#   serializes the callbacks of one message (Twilio sends them concurrently); FOR UPDATE returns the
#   latest version of the row, so `before` is the status this callback really replaces.
# receipt: Twilio repeats callbacks; the unique (MessageSid, MessageStatus) turns a repeat into a no-op even
#   when two copies race. NULLs never conflict, so a malformed callback (act false) is always kept.
# moved: only for a new receipt. The status CASE guards the rank (a late `sent` never overwrites
#   `delivered`; final states stay final), while the timestamps are facts and are filled even when the
#   status does not move; COALESCE keeps the first report's time. The UPDATE reads the row version the
#   lock returned (READ COMMITTED re-evaluates it), never an older snapshot.
_RECORD_CALLBACK = """
WITH target AS (
    SELECT id, status, recipient_phone
    FROM messages
    WHERE :act AND (provider_sid = :sid OR (id = :message_id AND provider_sid IS NULL))
    ORDER BY provider_sid IS NULL
    LIMIT 1
    FOR UPDATE
), receipt AS (
    INSERT INTO delivery_receipts
        (message_sid, message_status, message_id, error_code, raw_payload, idempotency_token)
    VALUES (:sid, :twilio_status, (SELECT id FROM target), :error_code, CAST(:raw AS jsonb), :token)
    ON CONFLICT (message_sid, message_status) DO NOTHING
    RETURNING id
), moved AS (
    UPDATE messages AS m
    SET provider_sid = coalesce(m.provider_sid, :sid),
        status = CASE WHEN m.status = ANY(CAST(:replaces AS text[])) THEN :new_status ELSE m.status END,
        error_code = CASE WHEN m.status = ANY(CAST(:replaces AS text[]))
            THEN coalesce(:failure_code, m.error_code) ELSE m.error_code END,
        status_reason = CASE WHEN m.status = ANY(CAST(:replaces AS text[]))
            THEN coalesce(:failure_reason, m.status_reason) ELSE m.status_reason END,
        sent_at = CASE WHEN :proves_sent THEN coalesce(m.sent_at, :at) ELSE m.sent_at END,
        delivered_at = CASE WHEN :proves_delivered THEN coalesce(m.delivered_at, :at) ELSE m.delivered_at END,
        read_at = CASE WHEN :proves_read THEN coalesce(m.read_at, :at) ELSE m.read_at END,
        failed_at = CASE WHEN :proves_failed THEN coalesce(m.failed_at, :at) ELSE m.failed_at END,
        updated_at = now()
    FROM target
    WHERE m.id = target.id AND EXISTS (SELECT FROM receipt)
        AND (CAST(:new_status AS text) IS NOT NULL OR m.provider_sid IS NULL)
    RETURNING m.status
)
SELECT (SELECT id FROM receipt), target.id, target.status, target.recipient_phone, (SELECT status FROM moved)
FROM (VALUES (1)) AS one LEFT JOIN target ON true
"""
_TIMESTAMPS = ("sent_at", "delivered_at", "read_at", "failed_at")


@cache
def _text_array(statuses: frozenset[MessageStatus]) -> str:
    """A PostgreSQL array literal, built once per status: the driver's own list conversion escapes every
    element on every call, and cost more than the rest of the parameters together."""
    return "{" + ",".join(sorted(s.value for s in statuses)) + "}"


@dataclass(frozen=True)
class CallbackRecord:
    receipt_id: int | None  # None: this (MessageSid, MessageStatus) was already recorded
    message_id: int | None  # None: no message matches the callback (or it was not looked up)
    before: MessageStatus | None
    recipient_phone: str | None
    after: MessageStatus | None  # None when the message was not updated


@dataclass(frozen=True)
class StatusMove:
    """What a callback's status does to a message: the status it moves to, from which statuses."""

    new_status: MessageStatus
    replaces: Collection[MessageStatus]
    timestamp_columns: Collection[str]
    at: datetime
    failure_code: int | None
    failure_reason: str | None


def record_callback(
    uow: UnitOfWork,
    *,
    message_sid: str | None,
    twilio_status: str | None,
    message_id: int | None,
    error_code: int | None,
    raw_payload: str,
    idempotency_token: str | None,
    move: StatusMove | None,
    act: bool,
) -> CallbackRecord:
    """Keep the receipt; if it is new and `act`, match the message, attach the SID and apply `move`.

    `raw_payload` is JSON text. `move` None (a status we do not act on) still reconciles the SID. One
    statement: inside `with uow:` it joins that transaction, else it is its own.
    """
    columns = move.timestamp_columns if move else ()
    params: dict[str, Any] = {
        "act": act,
        "sid": message_sid,
        "message_id": message_id,
        "twilio_status": twilio_status,
        "error_code": error_code,
        "raw": raw_payload,
        "token": idempotency_token,
        "new_status": move.new_status.value if move else None,
        "replaces": _text_array(frozenset(move.replaces)) if move else "{}",
        "failure_code": move.failure_code if move else None,
        "failure_reason": move.failure_reason if move else None,
        "at": move.at if move else None,
        **{f"proves_{name.removesuffix('_at')}": name in columns for name in _TIMESTAMPS},
    }
    ((receipt_id, target_id, before, phone, after),) = uow.prepared(_RECORD_CALLBACK, params)
    return CallbackRecord(
        receipt_id,
        target_id,
        MessageStatus(before) if before else None,
        phone,
        MessageStatus(after) if after else None,
    )
