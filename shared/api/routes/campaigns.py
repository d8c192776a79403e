"""Campaigns: CRUD while DRAFT, the lifecycle actions (ready, trigger, pause, resume, cancel) through the
lifecycle service the scheduler also uses, and the summary report."""

from __future__ import annotations

from datetime import datetime, time
from typing import Annotated, Any

from pydantic import MISSING, AwareDatetime, Field, model_validator
from sqlalchemy.orm import Session

from shared.adapters import clients
from shared.api.crud import delete_row, get_row, list_page, save_row
from shared.api.errors import BadRequest, Conflict, NotFound
from shared.api.models import Page, PageQuery, RequestModel, ResourceId, ResponseModel
from shared.api.registry import Context, route
from shared.api.routes.users import Topic
from shared.db.models import Campaign, Segment, Template
from shared.domain.enums import CampaignStatus
from shared.domain.quiet_hours import load_timezone
from shared.services import campaign_lifecycle as lifecycle

Name = Annotated[str, Field(min_length=1, max_length=200)]
Rate = Annotated[int, Field(ge=1, le=500, description="Hard ceiling on sends per second for this campaign.")]
Timezone = Annotated[str, Field(min_length=1, max_length=64, description="IANA zone for users without one.")]


class CampaignIn(RequestModel):
    name: Name
    template_id: ResourceId
    segment_id: ResourceId
    topic: Topic | None = Field(default=None, description="Only subscribers of this topic are reached.")
    schedule_time: AwareDatetime | None = Field(
        default=None, description="Started by the scheduler when due."
    )
    rate_limit_per_second: Rate = 80
    quiet_hours_start: time | None = None
    quiet_hours_end: time | None = None
    timezone: Timezone = "UTC"

    @model_validator(mode="after")
    def _quiet_hours_pair(self) -> CampaignIn:
        if (self.quiet_hours_start is None) != (self.quiet_hours_end is None):
            raise ValueError("quiet_hours_start and quiet_hours_end go together: give both or neither")
        return self


class CampaignPatch(RequestModel):
    name: Name | MISSING = MISSING
    template_id: ResourceId | MISSING = MISSING
    segment_id: ResourceId | MISSING = MISSING
    topic: Topic | MISSING | None = MISSING
    schedule_time: AwareDatetime | MISSING | None = MISSING
    rate_limit_per_second: Rate | MISSING = MISSING
    quiet_hours_start: time | MISSING | None = MISSING
    quiet_hours_end: time | MISSING | None = MISSING
    timezone: Timezone | MISSING = MISSING


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
    quiet_hours_start: time | None
    quiet_hours_end: time | None
    timezone: str
    started_at: datetime | None
    completed_at: datetime | None
    created_at: datetime
    updated_at: datetime


class CampaignPage(Page[CampaignOut]):
    pass


class CampaignListQuery(PageQuery):
    status: CampaignStatus | None = None


def _validate(session: Session, row: Campaign, values: dict[str, Any]) -> dict[str, Any]:
    """References exist, the timezone is real and quiet hours come in pairs, judged on the merged row."""
    if "timezone" in values:
        load_timezone(values["timezone"])
    for field, model in (("template_id", Template), ("segment_id", Segment)):
        if field in values and session.get(model, values[field]) is None:
            raise BadRequest(
                "invalid_reference",
                f"{field} {values[field]} does not exist",
                field=field,
                value=values[field],
            )
    start = values.get("quiet_hours_start", row.quiet_hours_start)
    end = values.get("quiet_hours_end", row.quiet_hours_end)
    if (start is None) != (end is None):
        raise BadRequest(
            "invalid_quiet_hours",
            "quiet_hours_start and quiet_hours_end go together",
            field="quiet_hours_end",
        )
    return values


@route(
    "POST",
    "/v1/campaigns",
    summary="Create a campaign (DRAFT)",
    tag="campaigns",
    body=CampaignIn,
    response=CampaignOut,
    status=201,
)
def create_campaign(context: Context, body: CampaignIn) -> CampaignOut:
    with context.uow() as uow:
        row = Campaign()
        row = save_row(uow.session, row, _validate(uow.session, row, body.model_dump()))
        uow.commit()
    return CampaignOut.model_validate(row)


@route(
    "GET",
    "/v1/campaigns",
    summary="List campaigns",
    tag="campaigns",
    query=CampaignListQuery,
    response=CampaignPage,
)
def list_campaigns(context: Context, query: CampaignListQuery) -> CampaignPage:
    where = [] if query.status is None else [Campaign.status == query.status.value]
    with context.uow() as uow:
        return list_page(uow.session, Campaign, CampaignPage, query, where)


@route("GET", "/v1/campaigns/{campaign_id}", summary="One campaign", tag="campaigns", response=CampaignOut)
def get_campaign(context: Context, campaign_id: ResourceId) -> CampaignOut:
    with context.uow() as uow:
        return CampaignOut.model_validate(get_row(uow.session, Campaign, campaign_id))


def _draft(session: Session, campaign_id: int, action: str) -> Campaign:
    row = get_row(session, Campaign, campaign_id, lock=True)
    if row.status != CampaignStatus.DRAFT.value:
        raise Conflict(
            "campaign_not_draft",
            f"only a DRAFT campaign can be {action}; this one is {row.status}",
            status=row.status,
        )
    return row


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
    with context.uow() as uow:
        row = _draft(uow.session, campaign_id, "changed")
        row = save_row(uow.session, row, _validate(uow.session, row, body.model_dump()))
        uow.commit()
    return CampaignOut.model_validate(row)


@route(
    "DELETE",
    "/v1/campaigns/{campaign_id}",
    summary="Delete a DRAFT campaign",
    tag="campaigns",
    status=204,
    extra_errors=(409,),
)
def delete_campaign(context: Context, campaign_id: ResourceId) -> None:
    with context.uow() as uow:
        delete_row(uow.session, _draft(uow.session, campaign_id, "deleted"))
        uow.commit()


class CampaignActionOut(ResponseModel):
    campaign: CampaignOut
    changed: bool = Field(description="False when the campaign was already in the requested state.")
    recipients: int | None = Field(default=None, description="Audience frozen by trigger.")
    message: str | None = Field(default=None, description="Anything the operator should know (e.g. a retry).")


def _action_reply(
    context: Context,
    campaign_id: int,
    result: lifecycle.TransitionResult,
    action: str,
    already_done: CampaignStatus | None,
) -> CampaignActionOut:
    """A refused transition is a 409, unless the campaign already is where the action leads (a repeat)."""
    if result.status is None:
        raise NotFound("campaign", campaign_id)
    if not result.changed and result.status is not already_done:
        raise Conflict(
            "invalid_transition",
            f"cannot {action} a campaign that is {result.status.value}",
            status=result.status.value,
            action=action,
        )
    return CampaignActionOut(campaign=get_campaign(context, campaign_id), changed=result.changed)


@route(
    "POST",
    "/v1/campaigns/{campaign_id}/ready",
    summary="DRAFT -> READY (the scheduler starts it when due)",
    tag="campaigns",
    response=CampaignActionOut,
    extra_errors=(409,),
)
def ready_campaign(context: Context, campaign_id: ResourceId) -> CampaignActionOut:
    result = lifecycle.mark_ready(context.uow(), campaign_id, context.clock)
    return _action_reply(context, campaign_id, result, "mark ready", already_done=CampaignStatus.READY)


@route(
    "POST",
    "/v1/campaigns/{campaign_id}/trigger",
    summary="Start now: freeze the audience and send",
    tag="campaigns",
    response=CampaignActionOut,
    extra_errors=(409,),
)
def trigger_campaign(context: Context, campaign_id: ResourceId) -> CampaignActionOut:
    # Triggering a DRAFT means "send it now": it is made READY first, through the same transition.
    lifecycle.mark_ready(context.uow(), campaign_id, context.clock)
    result = lifecycle.start_campaign(
        context.uow(), clients.publisher(), campaign_id, context.clock, context.settings.fanout_page_size
    )
    if result.status is None:
        raise NotFound("campaign", campaign_id)
    if not result.started:
        raise Conflict(
            "invalid_transition",
            f"cannot trigger: {result.problem}",
            status=result.status.value,
            action="trigger",
        )
    return CampaignActionOut(
        campaign=get_campaign(context, campaign_id),
        changed=True,
        recipients=result.recipients,
        message=result.problem,
    )


@route(
    "POST",
    "/v1/campaigns/{campaign_id}/pause",
    summary="Pause: no new send starts",
    tag="campaigns",
    response=CampaignActionOut,
    extra_errors=(409,),
)
def pause_campaign(context: Context, campaign_id: ResourceId) -> CampaignActionOut:
    result = lifecycle.pause_campaign(context.uow(), campaign_id, context.clock)
    return _action_reply(context, campaign_id, result, "pause", already_done=CampaignStatus.PAUSED)


@route(
    "POST",
    "/v1/campaigns/{campaign_id}/resume",
    summary="Resume where it was paused",
    tag="campaigns",
    response=CampaignActionOut,
    extra_errors=(409,),
)
def resume_campaign(context: Context, campaign_id: ResourceId) -> CampaignActionOut:
    result = lifecycle.resume_campaign(context.uow(), clients.publisher(), campaign_id, context.clock)
    # Where a resume leads depends on where the pause came from, so no state counts as "already resumed".
    return _action_reply(context, campaign_id, result, "resume", already_done=None)


@route(
    "POST",
    "/v1/campaigns/{campaign_id}/cancel",
    summary="Cancel: everything not yet sent is withheld",
    tag="campaigns",
    response=CampaignActionOut,
    extra_errors=(409,),
)
def cancel_campaign(context: Context, campaign_id: ResourceId) -> CampaignActionOut:
    result = lifecycle.cancel_campaign(context.uow(), campaign_id, context.clock)
    return _action_reply(context, campaign_id, result, "cancel", already_done=CampaignStatus.CANCELLED)
