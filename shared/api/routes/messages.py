"""Messages: the per-recipient ledger, filtered by campaign and status, and one message with its
receipts and audit events, over the messages service."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from shared.api.models import Page, PageQuery, ResponseModel
from shared.api.registry import Context, route
from shared.domain.enums import MessageStatus
from shared.services import messages as service
from shared.services.inputs import RequestModel, ResourceId


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
    page = service.list_messages(
        context.uow(),
        limit=query.limit,
        cursor=query.cursor,
        campaign_id=query.campaign_id,
        status=query.status,
    )
    return MessagePage.model_validate(page, from_attributes=True)


class StatusCountsQuery(RequestModel):
    campaign_id: ResourceId | None = Field(default=None, description="Only this campaign's messages.")


class StatusCountsOut(ResponseModel):
    campaign_id: int | None = Field(description="The campaign counted; null: every campaign.")
    total: int
    counts: dict[MessageStatus, int] = Field(description="Messages per status; every status is present.")


@route(
    "GET",
    "/v1/messages/status-counts",
    summary="How many messages are in each status, of one campaign or of all",
    tag="messages",
    query=StatusCountsQuery,
    response=StatusCountsOut,
)
def message_status_counts(context: Context, query: StatusCountsQuery) -> StatusCountsOut:
    return StatusCountsOut.model_validate(service.status_counts(context.uow(), query.campaign_id))


@route(
    "GET",
    "/v1/messages/{message_id}",
    summary="One message with its receipts and audit events",
    tag="messages",
    response=MessageDetailOut,
)
def get_message(context: Context, message_id: ResourceId) -> MessageDetailOut:
    detail = service.get_message(context.uow(), message_id)
    return MessageDetailOut.model_validate(
        {
            **MessageOut.model_validate(detail.message).model_dump(),
            "receipts": [ReceiptOut.model_validate(r) for r in detail.receipts],
            "audit_events": [AuditEventOut.model_validate(a) for a in detail.audit_events],
        }
    )
