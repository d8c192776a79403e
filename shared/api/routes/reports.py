"""Reports: one campaign's summary, the monitoring dashboard, health, and recent inbound messages (masked),
over the reports and health services."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime

from flask import Response
from pydantic import Field

from shared.api.models import Page, PageQuery, ResponseModel
from shared.api.registry import Context, route
from shared.domain.enums import CampaignStatus
from shared.services import reports as service
from shared.services.health import Level, Thresholds, check_health, worst
from shared.services.inputs import ResourceId
from shared.services.reports import CampaignSummary


class CampaignSummaryOut(CampaignSummary):
    pass


@route(
    "GET",
    "/v1/campaigns/{campaign_id}/summary",
    summary="Progress and outcome of one campaign",
    tag="campaigns",
    response=CampaignSummaryOut,
)
def campaign_summary(context: Context, campaign_id: ResourceId) -> CampaignSummaryOut:
    summary = service.campaign_summary(context.uow(), campaign_id)
    return CampaignSummaryOut.model_validate(summary.model_dump())


log = logging.getLogger(__name__)

EXPORT_CONTENT = {
    "text/csv": {
        "schema": {"type": "string"},
        "example": ",".join(service.EXPORT_COLUMNS) + "\r\n",
    }
}


@route(
    "GET",
    "/v1/campaigns/{campaign_id}/messages.csv",
    summary="Every message of one campaign with its outcome, one CSV row per recipient (full phone numbers)",
    tag="campaigns",
    raw_response=EXPORT_CONTENT,
)
def campaign_export(context: Context, campaign_id: ResourceId) -> Response:
    """Streamed a page at a time (a 100k-message campaign is never held in memory); the phone numbers are
    complete because an operator acts on them, and they are never logged."""
    rows = service.export_messages(context.uow(), campaign_id)
    log.info("campaign messages exported", extra={"campaign_id": campaign_id})
    return csv_download(rows, f"campaign-{campaign_id}-messages.csv")


def csv_download(rows: Iterator[str], filename: str) -> Response:
    return Response(
        rows,
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"},
    )


class ActiveCampaign(ResponseModel):
    id: int
    name: str
    status: CampaignStatus
    started_at: datetime | None
    schedule_time: datetime | None


class DashboardOut(ResponseModel):
    active_campaigns: list[ActiveCampaign] = Field(
        description="Active campaigns (RUNNING, oldest start first, then READY by schedule time), at most 100."
    )
    active_campaign_count: int = Field(description="READY + RUNNING: started, or due to start at their time.")
    campaigns_by_state: dict[CampaignStatus, int] = Field(description="Every state is present.")
    total_users: int
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
    return DashboardOut.model_validate(service.overview(context.uow(), context.clock.now()))


class HealthCheckOut(ResponseModel):
    name: str
    level: Level
    value: str = Field(description="What was measured.")
    threshold: str = Field(description="What decides the level.")
    detail: str
    at: datetime | None = Field(
        description="When the measured event happened: the last scheduler tick, the send queue's oldest "
        "waiting task's schedule time, the oldest stuck message, the newest dead letter."
    )


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
    checks = check_health(
        context.uow(),
        context.clock,
        Thresholds.from_settings(context.settings),
        lambda: context.runtime.queue_inspector,
    )
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
    page = service.recent_inbound(context.uow(), limit=query.limit, cursor=query.cursor)
    return InboundPage.model_validate(page, from_attributes=True)
