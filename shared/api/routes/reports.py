"""Reports: one campaign's summary, the monitoring dashboard, health, and recent inbound messages (masked)."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from shared.api.crud import get_row
from shared.api.models import Page, PageQuery, ResourceId, ResponseModel
from shared.api.pagination import decode_cursor, page_of
from shared.api.registry import Context, route
from shared.db.models import Campaign
from shared.db.queries import reports
from shared.domain.enums import CampaignStatus, MessageStatus
from shared.log import mask_phone
from shared.services.health import Level, check_health, worst

# Twilio accepted these and they did arrive: the numerator of the delivery rate.
_DELIVERED = (MessageStatus.DELIVERED.value, MessageStatus.READ.value)


class ErrorCodeCount(ResponseModel):
    error_code: int
    count: int


class CampaignSummaryOut(ResponseModel):
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


@route(
    "GET",
    "/v1/campaigns/{campaign_id}/summary",
    summary="Progress and outcome of one campaign",
    tag="campaigns",
    response=CampaignSummaryOut,
)
def campaign_summary(context: Context, campaign_id: ResourceId) -> CampaignSummaryOut:
    with context.uow() as uow:
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
        return CampaignSummaryOut(
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


class ActiveCampaign(ResponseModel):
    id: int
    name: str
    started_at: datetime | None


class DashboardOut(ResponseModel):
    active_campaigns: list[ActiveCampaign] = Field(description="RUNNING campaigns, oldest start first.")
    opted_in_users: int
    sent_today: int = Field(description="Today is the UTC day.")
    delivered_today: int
    failed_today: int
    inbound_last_hour: int


@route(
    "GET",
    "/v1/monitoring/dashboard",
    summary="Live counts for the operator dashboard",
    tag="monitoring",
    response=DashboardOut,
)
def dashboard(context: Context) -> DashboardOut:
    with context.uow() as uow:
        return DashboardOut.model_validate(reports.dashboard(uow.session, context.clock.now()))


class HealthCheckOut(ResponseModel):
    name: str
    level: Level
    value: str = Field(description="What was measured.")
    threshold: str = Field(description="What decides the level.")
    detail: str
    at: datetime | None = Field(description="When the measured event happened (the last scheduler tick).")


class HealthOut(ResponseModel):
    status: Level = Field(description="The worst level of any check.")
    checked_at: datetime
    checks: list[HealthCheckOut]


@route(
    "GET",
    "/v1/monitoring/health",
    summary="Each health check with its level and threshold; `status` is the worst of them",
    tag="monitoring",
    response=HealthOut,
)
def health(context: Context) -> HealthOut:
    """Always 200 when the API can answer: the report is the answer. A probe alerts on `status`, and a
    503 stays what it means everywhere else in this API (the database unreachable: retry)."""
    checks = check_health(context.uow(), context.clock)
    return HealthOut(
        status=worst(checks),
        checked_at=context.clock.now(),
        checks=[HealthCheckOut.model_validate(c, from_attributes=True) for c in checks],
    )


class InboundOut(ResponseModel):
    id: int
    from_phone: str | None = Field(description="Masked: the last four digits only.")
    body: str | None = Field(description="Phone numbers inside are masked too.")
    outcome: str | None
    received_at: datetime


class InboundPage(Page[InboundOut]):
    pass


@route(
    "GET",
    "/v1/monitoring/inbound",
    summary="Recent inbound messages, newest first, phones masked",
    tag="monitoring",
    query=PageQuery,
    response=InboundPage,
)
def recent_inbound(context: Context, query: PageQuery) -> InboundPage:
    before = decode_cursor(query.cursor, [int])
    with context.uow() as uow:
        rows = reports.recent_inbound(
            uow.session, before_id=before[0] if before else None, limit=query.limit + 1
        )
    items, cursor = page_of(rows, query.limit, key=lambda row: [row.id])
    masked = [
        InboundOut(
            id=row.id,
            from_phone=None if row.from_phone is None else mask_phone(row.from_phone),
            body=None if row.body is None else mask_phone(row.body),
            outcome=row.outcome,
            received_at=row.received_at,
        )
        for row in items
    ]
    return InboundPage(items=masked, next_cursor=cursor)
