"""Campaigns: CRUD while DRAFT and the lifecycle actions (ready, trigger, pause, resume, cancel), over the
campaigns service the dashboard also calls."""

from __future__ import annotations

from datetime import datetime, time
from typing import Annotated

from pydantic import Field, WithJsonSchema, computed_field

from shared.api.models import Page, PageQuery, ResponseModel
from shared.api.registry import Context, route
from shared.domain.enums import CampaignStatus, FrequencyCapPolicy, QuietHoursSource
from shared.domain.quiet_hours import describe_source
from shared.services import campaigns as service
from shared.services.campaigns import CampaignIn, CampaignPatch
from shared.services.inputs import ResourceId

# Quiet hours are local wall-clock times, stored without a zone: documented as what is sent ("22:00:00"),
# not as JSON Schema's `format: time`, which is RFC 3339's full-time and requires an offset.
LocalTime = Annotated[
    time,
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?$",
            "description": "Local wall-clock time in each recipient's timezone, HH:MM:SS.",
        }
    ),
]


class CampaignOut(ResponseModel):
    id: int
    name: str
    template_id: int
    segment_id: int
    topic: str | None
    status: CampaignStatus
    paused_from: CampaignStatus | None
    schedule_time: datetime | None
    rate_limit_per_second: int
    quiet_hours_start: LocalTime | None
    quiet_hours_end: LocalTime | None
    quiet_hours_source: QuietHoursSource = Field(
        description="`default`: the request left quiet hours out and DEFAULT_QUIET_HOURS applied; "
        "`explicit`: the request gave them (or null: none)."
    )
    timezone: str
    sender_pool: str | None = Field(
        description="The pool of senders it goes out over; null: the configured sender."
    )
    transactional: bool = Field(description="Exempt from the per-user frequency caps.")
    frequency_cap_policy: FrequencyCapPolicy = Field(
        description="`defer` or `skip` a message the frequency caps hold back."
    )
    ends_at: datetime | None = Field(description="No message is sent after this instant.")
    started_at: datetime | None
    completed_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @computed_field(  # type: ignore[prop-decorator]
        description="The quiet hours in words, and whether they came from the default."
    )
    @property
    def quiet_hours_note(self) -> str:
        return describe_source(self.quiet_hours_start, self.quiet_hours_end, self.quiet_hours_source)


class CampaignPage(Page[CampaignOut]):
    pass


class CampaignListQuery(PageQuery):
    status: CampaignStatus | None = None


class CampaignActionOut(ResponseModel):
    campaign: CampaignOut
    changed: bool = Field(description="False when the campaign was already in the requested state.")
    recipients: int | None = Field(default=None, description="Audience frozen by trigger.")
    message: str | None = Field(default=None, description="Anything the operator should know (e.g. a retry).")


@route(
    "POST",
    "/v1/campaigns",
    summary="Create a campaign (DRAFT); quiet hours left out get DEFAULT_QUIET_HOURS",
    tag="campaigns",
    body=CampaignIn,
    response=CampaignOut,
    status=201,
    extra_errors=(409,),
)
def create_campaign(context: Context, body: CampaignIn) -> CampaignOut:
    campaign = service.create_campaign(
        context.uow(),
        body,
        default_quiet_hours=context.settings.default_quiet_hours_window,
        now=context.clock.now(),
    )
    return CampaignOut.model_validate(campaign)


@route(
    "GET",
    "/v1/campaigns",
    summary="List campaigns",
    tag="campaigns",
    query=CampaignListQuery,
    response=CampaignPage,
)
def list_campaigns(context: Context, query: CampaignListQuery) -> CampaignPage:
    page = service.list_campaigns(context.uow(), limit=query.limit, cursor=query.cursor, status=query.status)
    return CampaignPage.model_validate(page, from_attributes=True)


@route("GET", "/v1/campaigns/{campaign_id}", summary="One campaign", tag="campaigns", response=CampaignOut)
def get_campaign(context: Context, campaign_id: ResourceId) -> CampaignOut:
    return CampaignOut.model_validate(service.get_campaign(context.uow(), campaign_id))


@route(
    "PATCH",
    "/v1/campaigns/{campaign_id}",
    summary="Change a DRAFT campaign",
    tag="campaigns",
    body=CampaignPatch,
    response=CampaignOut,
    extra_errors=(409,),
)
def patch_campaign(context: Context, campaign_id: ResourceId, body: CampaignPatch) -> CampaignOut:
    campaign = service.change_campaign(context.uow(), campaign_id, body, now=context.clock.now())
    return CampaignOut.model_validate(campaign)


@route(
    "DELETE",
    "/v1/campaigns/{campaign_id}",
    summary="Delete a DRAFT campaign",
    tag="campaigns",
    status=204,
    extra_errors=(409,),
)
def delete_campaign(context: Context, campaign_id: ResourceId) -> None:
    service.delete_campaign(context.uow(), campaign_id)


@route(
    "POST",
    "/v1/campaigns/{campaign_id}/ready",
    summary="DRAFT -> READY (the scheduler starts it when due)",
    tag="campaigns",
    response=CampaignActionOut,
    extra_errors=(409,),
)
def ready_campaign(context: Context, campaign_id: ResourceId) -> CampaignActionOut:
    return CampaignActionOut.model_validate(service.mark_ready(context.uow(), campaign_id, context.clock))


@route(
    "POST",
    "/v1/campaigns/{campaign_id}/trigger",
    summary="Start now: freeze the audience and send",
    tag="campaigns",
    response=CampaignActionOut,
    extra_errors=(409,),
)
def trigger_campaign(context: Context, campaign_id: ResourceId) -> CampaignActionOut:
    page_size = context.settings.fanout_page_size
    result = service.trigger_campaign(context.uow(), context.publisher, campaign_id, context.clock, page_size)
    return CampaignActionOut.model_validate(result)


@route(
    "POST",
    "/v1/campaigns/{campaign_id}/pause",
    summary="Pause: no new send starts",
    tag="campaigns",
    response=CampaignActionOut,
    extra_errors=(409,),
)
def pause_campaign(context: Context, campaign_id: ResourceId) -> CampaignActionOut:
    return CampaignActionOut.model_validate(service.pause_campaign(context.uow(), campaign_id, context.clock))


@route(
    "POST",
    "/v1/campaigns/{campaign_id}/resume",
    summary="Resume where it was paused",
    tag="campaigns",
    response=CampaignActionOut,
    extra_errors=(409,),
)
def resume_campaign(context: Context, campaign_id: ResourceId) -> CampaignActionOut:
    result = service.resume_campaign(context.uow(), context.publisher, campaign_id, context.clock)
    return CampaignActionOut.model_validate(result)


@route(
    "POST",
    "/v1/campaigns/{campaign_id}/cancel",
    summary="Cancel: everything not yet sent is withheld",
    tag="campaigns",
    response=CampaignActionOut,
    extra_errors=(409,),
)
def cancel_campaign(context: Context, campaign_id: ResourceId) -> CampaignActionOut:
    return CampaignActionOut.model_validate(
        service.cancel_campaign(context.uow(), campaign_id, context.clock)
    )
