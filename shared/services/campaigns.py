"""Campaigns as an operator handles them: create, change and delete while DRAFT, read and list, and the
lifecycle actions (ready, trigger, pause, resume, cancel) through the lifecycle service the scheduler
also uses, each answered with the campaign as it now is.

Rules: a campaign's template and segment exist, its timezone is an IANA zone, its quiet hours come in
pairs; only a DRAFT campaign changes; an action the state machine refuses is a conflict, except a repeat
(pausing a paused campaign changes nothing and is no error).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import time
from typing import Annotated, Any

from pydantic import MISSING, AwareDatetime, Field, model_validator
from sqlalchemy.orm import Session

from shared.adapters.pubsub import Publisher
from shared.clock import Clock
from shared.db.models import Campaign, Segment, Template
from shared.db.pagination import Page
from shared.db.queries.rows import delete_row, get_row, save_row
from shared.db.unit_of_work import UnitOfWork
from shared.domain.enums import CampaignStatus
from shared.domain.errors import (
    CampaignNotDraft,
    InvalidQuietHours,
    InvalidReference,
    InvalidTransition,
    NotFound,
)
from shared.domain.quiet_hours import load_timezone
from shared.services import campaign_lifecycle as lifecycle
from shared.services import crud
from shared.services.inputs import Name, RequestModel, ResourceId, Topic

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


@dataclass(frozen=True)
class ActionResult:
    campaign: Campaign
    # False when the campaign already was where the action leads.
    changed: bool
    # The audience frozen by a trigger.
    recipients: int | None = None
    # Anything the operator should know (e.g. pages whose publishing is retried).
    message: str | None = None


def create_campaign(uow: UnitOfWork, values: CampaignIn) -> Campaign:
    with uow:
        row = Campaign()
        row = save_row(uow.session, row, _checked(uow.session, row, values.model_dump()))
        uow.commit()
    return row


def list_campaigns(
    uow: UnitOfWork, *, limit: int, cursor: str | None, status: CampaignStatus | None = None
) -> Page[Campaign]:
    where = [] if status is None else [Campaign.status == status.value]
    return crud.read_page(uow, Campaign, limit=limit, cursor=cursor, where=where)


def get_campaign(uow: UnitOfWork, campaign_id: int) -> Campaign:
    return crud.read(uow, Campaign, campaign_id)


def change_campaign(uow: UnitOfWork, campaign_id: int, patch: CampaignPatch) -> Campaign:
    with uow:
        row = _draft(uow.session, campaign_id, "changed")
        row = save_row(uow.session, row, _checked(uow.session, row, patch.model_dump()))
        uow.commit()
    return row


def delete_campaign(uow: UnitOfWork, campaign_id: int) -> None:
    with uow:
        delete_row(uow.session, _draft(uow.session, campaign_id, "deleted"))
        uow.commit()


def mark_ready(uow: UnitOfWork, campaign_id: int, clock: Clock) -> ActionResult:
    result = lifecycle.mark_ready(uow, campaign_id, clock)
    return _settled(uow, campaign_id, result, "mark ready", already_done=CampaignStatus.READY)


def trigger_campaign(
    uow: UnitOfWork, publisher: Publisher, campaign_id: int, clock: Clock, page_size: int
) -> ActionResult:
    # Triggering a DRAFT means "send it now": it is made READY first, through the same transition.
    lifecycle.mark_ready(uow, campaign_id, clock)
    result = lifecycle.start_campaign(uow, publisher, campaign_id, clock, page_size)
    if result.status is None:
        raise NotFound("campaign", campaign_id)
    if not result.started:
        raise InvalidTransition(
            f"cannot trigger: {result.problem}", status=result.status.value, action="trigger"
        )
    campaign = get_campaign(uow, campaign_id)
    return ActionResult(campaign, changed=True, recipients=result.recipients, message=result.problem)


def pause_campaign(uow: UnitOfWork, campaign_id: int, clock: Clock) -> ActionResult:
    result = lifecycle.pause_campaign(uow, campaign_id, clock)
    return _settled(uow, campaign_id, result, "pause", already_done=CampaignStatus.PAUSED)


def resume_campaign(uow: UnitOfWork, publisher: Publisher, campaign_id: int, clock: Clock) -> ActionResult:
    result = lifecycle.resume_campaign(uow, publisher, campaign_id, clock)
    # Where a resume leads depends on where the pause came from, so no state counts as "already resumed".
    return _settled(uow, campaign_id, result, "resume", already_done=None)


def cancel_campaign(uow: UnitOfWork, campaign_id: int, clock: Clock) -> ActionResult:
    result = lifecycle.cancel_campaign(uow, campaign_id, clock)
    return _settled(uow, campaign_id, result, "cancel", already_done=CampaignStatus.CANCELLED)


def _checked(session: Session, row: Campaign, values: dict[str, Any]) -> dict[str, Any]:
    """References exist, the timezone is real and quiet hours come in pairs, judged on the merged row."""
    if "timezone" in values:
        load_timezone(values["timezone"])
    for field, model in (("template_id", Template), ("segment_id", Segment)):
        if field in values and session.get(model, values[field]) is None:
            raise InvalidReference(
                f"{field} {values[field]} does not exist", field=field, value=values[field]
            )
    start = values.get("quiet_hours_start", row.quiet_hours_start)
    end = values.get("quiet_hours_end", row.quiet_hours_end)
    if (start is None) != (end is None):
        raise InvalidQuietHours("quiet_hours_start and quiet_hours_end go together", field="quiet_hours_end")
    return values


def _draft(session: Session, campaign_id: int, action: str) -> Campaign:
    row = get_row(session, Campaign, campaign_id, lock=True)
    if row.status != CampaignStatus.DRAFT.value:
        raise CampaignNotDraft(
            f"only a DRAFT campaign can be {action}; this one is {row.status}", status=row.status
        )
    return row


def _settled(
    uow: UnitOfWork,
    campaign_id: int,
    result: lifecycle.TransitionResult,
    action: str,
    already_done: CampaignStatus | None,
) -> ActionResult:
    """A refused transition is a conflict, unless the campaign already is where the action leads (a repeat)."""
    if result.status is None:
        raise NotFound("campaign", campaign_id)
    if not result.changed and result.status is not already_done:
        raise InvalidTransition(
            f"cannot {action} a campaign that is {result.status.value}",
            status=result.status.value,
            action=action,
        )
    return ActionResult(get_campaign(uow, campaign_id), result.changed)
