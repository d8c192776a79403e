"""SQL for a user's conversation (docs/architecture.md, "Conversations"): which campaign message an
inbound message answers, and the timeline of both, newest first, by keyset.

Both read one index each: outbound `ix_messages_recipient_phone_at` (recipient_phone,
coalesce(sent_at, created_at), id), inbound `ix_events_inbound_from_phone_received_at` (from_phone,
received_at, id). The expression is a sent message's sent_at, and its queued time until then.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, ScalarSelect, func, select, text
from sqlalchemy.orm import Session

from shared.db.models import Message
from shared.domain.enums import MessageStatus

# An inbound message answers the last message sent to its sender within this long before it.
REPLY_WINDOW = timedelta(hours=72)
# "Sent": Twilio reported it sent (its `sent` callback, or `delivered`/`read`, which prove it), so it can
# have reached the phone; sent_at is then set. ACCEPTED (Twilio has it, no report yet) does not count, nor
# a message that failed or went undelivered, even after a `sent` report: it never reached the phone.
ANSWERABLE = (MessageStatus.SENT, MessageStatus.DELIVERED, MessageStatus.READ)
MESSAGE_AT = func.coalesce(Message.sent_at, Message.created_at)

# Rows of one kind sort before the other at the same instant: inbound (1) above outbound (0), newest first.
OUTBOUND, INBOUND = 0, 1


def answered_message(phone_e164: str | None, at: datetime) -> ScalarSelect[Any]:
    """The id of the message an inbound message from `phone_e164` at `at` answers, as a scalar subquery
    for the inbound INSERT itself (no round trip of its own): one backward range scan of
    ix_messages_recipient_phone_at, stopping at the first sent message."""
    return (
        select(Message.id)
        .where(
            Message.recipient_phone == phone_e164,
            at - REPLY_WINDOW < MESSAGE_AT,
            at >= MESSAGE_AT,
            Message.sent_at.is_not(None),
            Message.status.in_([status.value for status in ANSWERABLE]),
        )
        .order_by(MESSAGE_AT.desc(), Message.id.desc())
        .limit(1)
        .scalar_subquery()
    )


_OUTBOUND = """
SELECT 0 AS kind, m.id, coalesce(m.sent_at, m.created_at) AS at
FROM messages m
WHERE m.recipient_phone = :phone {before}
ORDER BY coalesce(m.sent_at, m.created_at) DESC, m.id DESC
LIMIT :limit"""
_OUTBOUND_BEFORE = """AND coalesce(m.sent_at, m.created_at) <= :at
    AND (coalesce(m.sent_at, m.created_at) < :at OR :kind > 0 OR m.id < :id)"""
_INBOUND = """
SELECT 1 AS kind, e.id, e.received_at AS at
FROM events_inbound e
WHERE e.from_phone = :phone {before}
ORDER BY e.received_at DESC, e.id DESC
LIMIT :limit"""
_INBOUND_BEFORE = """AND e.received_at <= :at
    AND (e.received_at < :at OR (:kind = 1 AND e.id < :id))"""
# Each branch takes at most `limit` rows from its index; the merge keeps the newest `limit`. Names and
# the answered message are joined to those rows only.
_TIMELINE = """
WITH page AS (
    SELECT * FROM (({outbound}) UNION ALL ({inbound})) both_kinds
    ORDER BY at DESC, kind DESC, id DESC
    LIMIT :limit
)
SELECT p.kind, p.id, p.at,
       m.status, m.status_reason, m.error_code, m.body AS message_body, m.campaign_id,
       c.name AS campaign_name, t.name AS template_name,
       m.scheduled_at, m.sent_at, m.delivered_at, m.read_at, m.failed_at,
       e.body AS inbound_body, e.outcome, e.channel, e.profile_name, e.in_reply_to_message_id,
       rc.id AS reply_campaign_id, rc.name AS reply_campaign_name
FROM page p
LEFT JOIN messages m ON p.kind = 0 AND m.id = p.id
LEFT JOIN campaigns c ON c.id = m.campaign_id
LEFT JOIN templates t ON t.id = c.template_id
LEFT JOIN events_inbound e ON p.kind = 1 AND e.id = p.id
LEFT JOIN messages rm ON rm.id = e.in_reply_to_message_id
LEFT JOIN campaigns rc ON rc.id = rm.campaign_id
ORDER BY p.at DESC, p.kind DESC, p.id DESC"""


def timeline(
    session: Session, phone_e164: str, *, before: tuple[datetime, int, int] | None, limit: int
) -> Sequence[Row[Any]]:
    """Up to `limit` rows of both kinds, newest first, strictly after the keyset `before` (at, kind, id)."""
    outbound = _OUTBOUND.format(before=_OUTBOUND_BEFORE if before else "")
    inbound = _INBOUND.format(before=_INBOUND_BEFORE if before else "")
    params: dict[str, Any] = {"phone": phone_e164, "limit": limit}
    if before is not None:
        params |= {"at": before[0], "kind": before[1], "id": before[2]}
    statement = text(_TIMELINE.format(outbound=outbound, inbound=inbound))
    return session.execute(statement, params).all()
