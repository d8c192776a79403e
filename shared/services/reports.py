"""Reports an operator reads: one campaign's summary from its message ledger, today's figures for the
overview, and recent inbound messages with phone numbers masked."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from shared.db.models import Campaign
from shared.db.pagination import Page, decode_cursor, page_of
from shared.db.queries import reports
from shared.db.queries.rows import get_row
from shared.db.unit_of_work import UnitOfWork
from shared.domain.enums import CampaignStatus, MessageStatus
from shared.log import mask_phone

# Twilio accepted these and they did arrive: the numerator of the delivery rate.
_DELIVERED = (MessageStatus.DELIVERED.value, MessageStatus.READ.value)


class ErrorCodeCount(BaseModel):
    error_code: int
    count: int


class CampaignSummary(BaseModel):
    campaign_id: int
    status: CampaignStatus
    messages: int = Field(description="Rows in the ledger so far (the audience, once fan-out is done).")
    counts: dict[MessageStatus, int] = Field(description="Messages per status; every status is present.")
    handed_to_twilio: int = Field(description="Messages Twilio accepted (they have a provider SID).")
    delivery_rate: float | None = Field(description="(delivered + read) / handed to Twilio; null before any.")
    read_rate: float | None = Field(description="read / handed to Twilio; null before any.")
    skipped_by_reason: dict[str, int]
    withheld_by_reason: dict[str, int]
    deferred: int = Field(description="Sends moved out of quiet hours (a message may be deferred twice).")
    deferred_by_reason: dict[str, int]
    top_error_codes: list[ErrorCodeCount]
    started_at: datetime | None
    completed_at: datetime | None
    first_sent_at: datetime | None
    last_sent_at: datetime | None
    send_rate_per_second: float | None = Field(description="Sent messages over the first-to-last send span.")
    repairs: dict[str, int] = Field(
        description="What the sweeper and reconciliation did for this campaign, by kind: senders gone "
        "(repair.marked_ambiguous), tasks re-created, pages republished, sends found at Twilio "
        "(reconcile.found) or sent again (reconcile.resent), and conflicts left to an operator."
    )


@dataclass(frozen=True)
class InboundMessage:
    id: int
    from_phone: str | None
    body: str | None
    outcome: str | None
    received_at: datetime


def campaign_summary(uow: UnitOfWork, campaign_id: int) -> CampaignSummary:
    with uow:
        session = uow.session
        campaign = get_row(session, Campaign, campaign_id)
        counts = reports.status_counts(session, campaign_id)
        window = reports.send_window(session, campaign_id)
        deferred = reports.deferrals(session, campaign_id)
        handed = int(window.handed_to_twilio)
        span = (
            (window.last_sent_at - window.first_sent_at).total_seconds()
            if window.first_sent_at is not None
            else 0.0
        )
        return CampaignSummary(
            campaign_id=campaign_id,
            status=CampaignStatus(campaign.status),
            messages=sum(counts.values()),
            counts={status: counts.get(status.value, 0) for status in MessageStatus},
            handed_to_twilio=handed,
            delivery_rate=sum(counts.get(s, 0) for s in _DELIVERED) / handed if handed else None,
            read_rate=counts.get(MessageStatus.READ.value, 0) / handed if handed else None,
            skipped_by_reason=reports.reasons(session, campaign_id, MessageStatus.SKIPPED),
            withheld_by_reason=reports.reasons(session, campaign_id, MessageStatus.WITHHELD),
            deferred=sum(deferred.values()),
            deferred_by_reason=deferred,
            top_error_codes=[
                ErrorCodeCount(error_code=code, count=n)
                for code, n in reports.top_error_codes(session, campaign_id)
            ],
            started_at=campaign.started_at,
            completed_at=campaign.completed_at,
            first_sent_at=window.first_sent_at,
            last_sent_at=window.last_sent_at,
            # A rate needs a span: one send, or all in the same instant, has none.
            send_rate_per_second=int(window.sent) / span if span > 0 else None,
            repairs=reports.repairs_of_campaign(session, campaign_id),
        )


def overview(uow: UnitOfWork, now: datetime) -> dict[str, Any]:
    """Active campaigns (READY and RUNNING), campaigns per state, users and opted-in users, and today's
    (UTC) sends, deliveries and failures, and the last hour's inbound messages."""
    with uow:
        return reports.dashboard(uow.session, now)


def recent_inbound(uow: UnitOfWork, *, limit: int, cursor: str | None) -> Page[InboundMessage]:
    """Newest first; phone numbers masked, in the sender and inside the text."""
    before = decode_cursor(cursor, [int])
    with uow:
        rows = reports.recent_inbound(uow.session, before_id=before[0] if before else None, limit=limit + 1)
    page = page_of(rows, limit, key=lambda row: [row.id])
    masked = [
        InboundMessage(
            id=row.id,
            from_phone=None if row.from_phone is None else mask_phone(row.from_phone),
            body=None if row.body is None else mask_phone(row.body),
            outcome=row.outcome,
            received_at=row.received_at,
        )
        for row in page.items
    ]
    return Page(masked, page.next_cursor)
