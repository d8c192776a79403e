"""The per-recipient ledger as an operator reads it: messages by campaign and status, and one message with
its receipts and audit events ("why did this person (not) get this message?")."""

from __future__ import annotations

from dataclasses import dataclass

from shared.db.models import AuditEvent, Campaign, DeliveryReceipt, Message
from shared.db.pagination import Page
from shared.db.queries import reports
from shared.db.queries.rows import get_row, keep_loaded
from shared.db.unit_of_work import UnitOfWork
from shared.domain.enums import MessageStatus
from shared.domain.errors import InvalidReference
from shared.services import crud


@dataclass(frozen=True)
class MessageDetail:
    message: Message
    # Every status callback Twilio sent for it, in arrival order.
    receipts: list[DeliveryReceipt]
    # The decisions recorded about it, in order.
    audit_events: list[AuditEvent]


def list_messages(
    uow: UnitOfWork,
    *,
    limit: int,
    cursor: str | None,
    campaign_id: int | None = None,
    status: MessageStatus | None = None,
) -> Page[Message]:
    where = []
    if campaign_id is not None:
        where.append(Message.campaign_id == campaign_id)
    if status is not None:
        where.append(Message.status == status.value)
    return crud.read_page(uow, Message, limit=limit, cursor=cursor, where=where)


@dataclass(frozen=True)
class StatusCounts:
    campaign_id: int | None
    total: int
    # Every status, zero included.
    counts: dict[MessageStatus, int]


def status_counts(uow: UnitOfWork, campaign_id: int | None = None) -> StatusCounts:
    """Messages per status, of one campaign or of all; a campaign_id naming no campaign is refused."""
    with uow:
        if campaign_id is None:
            found = reports.status_counts_overall(uow.session)
        elif uow.session.get(Campaign, campaign_id) is None:
            raise InvalidReference(
                f"campaign_id {campaign_id} does not exist", field="campaign_id", value=campaign_id
            )
        else:
            found = reports.status_counts(uow.session, campaign_id)
    counts = {status: found.get(status.value, 0) for status in MessageStatus}
    return StatusCounts(campaign_id=campaign_id, total=sum(counts.values()), counts=counts)


def get_message(uow: UnitOfWork, message_id: int) -> MessageDetail:
    with uow:
        detail = MessageDetail(
            message=get_row(uow.session, Message, message_id),
            receipts=reports.message_receipts(uow.session, message_id),
            audit_events=reports.message_audit(uow.session, message_id),
        )
        keep_loaded(uow.session)
    return detail
