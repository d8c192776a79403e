"""SQL for the health report beyond the ledger's own reports: messages stuck past their expected time,
the webhooks' refusals, and the dead-lettered pages (docs/architecture.md, "Health checks").

Each count is bounded by an index range: the partial indexes on QUEUED (scheduled_at), ACCEPTED/SENT
(updated_at) and SENDING/AMBIGUOUS (claimed_at) hold only the rows in those states, webhook_errors holds
one row per minute, webhook and status, and the hour's receipts and inbound events are read through their
received_at indexes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from shared.db.models import DeadLetter, DeliveryReceipt, InboundEvent, Message, WebhookError
from shared.domain.enums import MessageStatus


@dataclass(frozen=True)
class Stuck:
    count: int
    oldest: datetime | None


def queued_overdue(session: Session, before: datetime) -> Stuck:
    """QUEUED with a send time before `before` (ix_messages_queued_scheduled_at)."""
    count, oldest = session.execute(
        select(func.count(), func.min(Message.scheduled_at)).where(
            Message.status == MessageStatus.QUEUED.value, Message.scheduled_at < before
        )
    ).one()
    return Stuck(int(count), oldest)


def accepted_silent(session: Session, before: datetime) -> Stuck:
    """ACCEPTED (Twilio took it, no callback since) and unchanged since before `before`
    (ix_messages_in_flight_updated_at)."""
    count, oldest = session.execute(
        select(func.count(), func.min(Message.updated_at)).where(
            Message.status == MessageStatus.ACCEPTED.value, Message.updated_at < before
        )
    ).one()
    return Stuck(int(count), oldest)


def ambiguous_overdue(session: Session, before: datetime) -> Stuck:
    """AMBIGUOUS since a claim before `before` (ix_messages_unsettled_claimed_at)."""
    count, oldest = session.execute(
        select(func.count(), func.min(Message.claimed_at)).where(
            Message.status == MessageStatus.AMBIGUOUS.value, Message.claimed_at < before
        )
    ).one()
    return Stuck(int(count), oldest)


def count_webhook_error(
    session: Session, minute: datetime, webhook: str, status: int, count: int = 1
) -> None:
    statement = insert(WebhookError).values(minute=minute, webhook=webhook, status=status, count=count)
    session.execute(
        statement.on_conflict_do_update(
            index_elements=[WebhookError.minute, WebhookError.webhook, WebhookError.status],
            set_={"count": WebhookError.count + statement.excluded.count},
        )
    )


def webhook_errors_since(session: Session, since: datetime) -> dict[tuple[str, int], int]:
    """Refusals since `since` by (webhook, status) (the primary key's minute range)."""
    rows = session.execute(
        select(WebhookError.webhook, WebhookError.status, func.sum(WebhookError.count))
        .where(WebhookError.minute >= since)
        .group_by(WebhookError.webhook, WebhookError.status)
    ).all()
    return {(webhook, status): int(n) for webhook, status, n in rows}


def webhook_successes_since(session: Session, since: datetime) -> dict[str, int]:
    """What each webhook stored since `since`: a receipt per status callback, an event per inbound
    message (their received_at indexes). A repeated callback answered 200 without a new row is not
    counted, so the error rate errs high, never low."""
    receipts = session.execute(
        select(func.count()).select_from(DeliveryReceipt).where(DeliveryReceipt.received_at >= since)
    ).scalar_one()
    inbound = session.execute(
        select(func.count()).select_from(InboundEvent).where(InboundEvent.received_at >= since)
    ).scalar_one()
    return {"status_webhook": int(receipts), "inbound_webhook": int(inbound)}


def prune_webhook_errors(session: Session, before: datetime) -> int:
    """Counters older than any report reads (the sweep calls it); returns how many rows went."""
    result = session.execute(delete(WebhookError).where(WebhookError.minute < before))
    return int(getattr(result, "rowcount", 0) or 0)


def store_dead_letter(
    session: Session,
    *,
    pubsub_message_id: str,
    subscription: str,
    data: bytes,
    attributes: dict[str, Any],
    published_at: datetime | None,
    delivery_attempt: int | None,
    received_at: datetime,
) -> bool:
    """One row per Pub/Sub message: a redelivered one (its ack was lost) is stored once. True if new."""
    statement = (
        insert(DeadLetter)
        .values(
            pubsub_message_id=pubsub_message_id,
            subscription=subscription,
            data=data,
            attributes=attributes,
            published_at=published_at,
            delivery_attempt=delivery_attempt,
            received_at=received_at,
        )
        .on_conflict_do_nothing(index_elements=[DeadLetter.pubsub_message_id])
        .returning(DeadLetter.id)
    )
    return session.execute(statement).first() is not None


def dead_letters_since(session: Session, since: datetime) -> tuple[int, datetime | None]:
    """Dead letters received since `since`, and the newest (ix_dead_letters_received_at)."""
    count, newest = session.execute(
        select(func.count(), func.max(DeadLetter.received_at)).where(DeadLetter.received_at >= since)
    ).one()
    return int(count), newest
