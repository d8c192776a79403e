"""Messages: the per-recipient ledger, filtered by campaign and status, and one message with its
receipts and audit events ("why did this person (not) get this message?")."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shared.api.crud import get_row, list_page
from shared.api.models import Page, PageQuery, ResourceId, ResponseModel
from shared.api.registry import Context, route
from shared.db.models import Message
from shared.db.queries import reports
from shared.domain.enums import MessageStatus


class MessageOut(ResponseModel):
    id: int
    campaign_id: int
    recipient_phone: str
    status: MessageStatus
    status_reason: str | None
    body: str | None
    content_variables: dict[str, Any] | None
    provider_sid: str | None
    attempts: int
    error_code: int | None
    scheduled_at: datetime | None
    sent_at: datetime | None
    delivered_at: datetime | None
    read_at: datetime | None
    failed_at: datetime | None
    created_at: datetime
    updated_at: datetime


class ReceiptOut(ResponseModel):
    id: int
    message_sid: str | None
    message_status: str | None
    error_code: int | None
    raw_payload: dict[str, Any]
    received_at: datetime


class AuditEventOut(ResponseModel):
    id: int
    occurred_at: datetime
    kind: str
    source: str | None
    detail: dict[str, Any]


class MessageDetailOut(MessageOut):
    receipts: list[ReceiptOut]
    audit_events: list[AuditEventOut]


class MessagePage(Page[MessageOut]):
    pass


class MessageListQuery(PageQuery):
    campaign_id: ResourceId | None = None
    status: MessageStatus | None = None


@route(
    "GET",
    "/v1/messages",
    summary="List messages by id, filtered by campaign and status",
    tag="messages",
    query=MessageListQuery,
    response=MessagePage,
)
def list_messages(context: Context, query: MessageListQuery) -> MessagePage:
    where = []
    if query.campaign_id is not None:
        where.append(Message.campaign_id == query.campaign_id)
    if query.status is not None:
        where.append(Message.status == query.status.value)
    with context.uow() as uow:
        return list_page(uow.session, Message, MessagePage, query, where)


@route(
    "GET",
    "/v1/messages/{message_id}",
    summary="One message with its receipts and audit events",
    tag="messages",
    response=MessageDetailOut,
)
def get_message(context: Context, message_id: ResourceId) -> MessageDetailOut:
    with context.uow() as uow:
        row = get_row(uow.session, Message, message_id)
        return MessageDetailOut.model_validate(
            {
                **MessageOut.model_validate(row).model_dump(),
                "receipts": [
                    ReceiptOut.model_validate(r) for r in reports.message_receipts(uow.session, message_id)
                ],
                "audit_events": [
                    AuditEventOut.model_validate(a) for a in reports.message_audit(uow.session, message_id)
                ],
            }
        )
