"""Campaigns as an operator handles them: create, change and delete while DRAFT, read and list, and the
lifecycle actions (ready, trigger, pause, resume, cancel) through the lifecycle service the scheduler
also uses, each answered with the campaign as it now is.

Rules: a campaign's template and segment exist, its timezone is an IANA zone, its quiet hours come in
pairs, and a campaign created without any gets the deployment's default (`DEFAULT_QUIET_HOURS`; explicit
nulls turn them off); a segment may come inline (`segment`, a DSL definition) instead of by id, and is then
saved as a segment named after the campaign in the same transaction; only a DRAFT campaign changes; an action the state machine refuses is a conflict, except a repeat
(pausing a paused campaign changes nothing and is no error).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time
from typing import Annotated, Any

from pydantic import MISSING, AwareDatetime, Field, model_validator
from sqlalchemy.orm import Session

from shared.adapters.pubsub import Publisher
from shared.clock import Clock
from shared.db.models import Campaign, Segment, Template
from shared.db.pagination import Page
from shared.db.queries.rows import delete_row, get_row, save_row
from shared.db.queries.segments import names_starting_with
from shared.db.queries.sender_admin import pool_exists
from shared.db.unit_of_work import UnitOfWork
from shared.domain.enums import CampaignStatus, FrequencyCapPolicy, QuietHoursSource
from shared.domain.errors import (
    CampaignNotDraft,
    DomainError,
    InvalidQuietHours,
    InvalidReference,
    InvalidSegment,
    InvalidTransition,
    NameTaken,
    NotFound,
)
from shared.domain.quiet_hours import QuietHours, load_timezone
from shared.domain.segments import parse_segment
from shared.services import campaign_lifecycle as lifecycle
from shared.services import crud
from shared.services.inputs import Name, RequestModel, ResourceId, Topic
from shared.services.segments import Definition

Rate = Annotated[int, Field(ge=1, le=500, description="Hard ceiling on sends per second for this campaign.")]
# Segment names are 1..200 characters (a CHECK), as campaign names are.
SEGMENT_NAME_MAX = 200
Timezone = Annotated[str, Field(min_length=1, max_length=64, description="IANA zone for users without one.")]
SenderPool = Annotated[
    str,
    Field(
        min_length=1,
        max_length=100,
        description="The pool of senders it goes out over (a pool with at least one sender); null: the "
        "configured sender (TWILIO_FROM or the Messaging Service).",
    ),
]
TRANSACTIONAL_DOC = "Exempt from the per-user frequency caps (an order update, not marketing)."
CAP_POLICY_DOC = (
    "What a message the frequency caps hold back becomes: `defer` (sent when the caps allow, skipped if "
    "that is after ends_at) or `skip` (SKIPPED, status_reason frequency_cap)."
)
ENDS_AT_DOC = "No message is sent after this instant; in the future, and after schedule_time if any."


QUIET_HOURS_DOC = (
    "Local wall-clock time in each recipient's timezone. Leave both quiet-hours fields out for the "
    "deployment's default (DEFAULT_QUIET_HOURS, 22:00-08:00 unless configured); give both as null for none."
)


class CampaignIn(RequestModel):
    name: Name
    template_id: ResourceId
    segment_id: ResourceId | None = Field(default=None, description="An existing segment; or give `segment`.")
    segment: Definition | None = Field(
        default=None,
        description="Instead of `segment_id`: a segment definition, saved as a segment named after the "
        "campaign (with ' (2)', ' (3)', ... when that name is taken).",
    )
    topic: Topic | None = Field(default=None, description="Only subscribers of this topic are reached.")
    schedule_time: AwareDatetime | None = Field(
        default=None, description="Started by the scheduler when due."
    )
    rate_limit_per_second: Rate = 80
    quiet_hours_start: time | MISSING | None = Field(default=MISSING, description=QUIET_HOURS_DOC)
    quiet_hours_end: time | MISSING | None = Field(default=MISSING, description=QUIET_HOURS_DOC)
    timezone: Timezone = "UTC"
    sender_pool: SenderPool | None = None
    transactional: bool = Field(default=False, description=TRANSACTIONAL_DOC)
    frequency_cap_policy: FrequencyCapPolicy = Field(
        default=FrequencyCapPolicy.DEFER, description=CAP_POLICY_DOC
    )
    ends_at: AwareDatetime | None = Field(default=None, description=ENDS_AT_DOC)

    @model_validator(mode="after")
    def _one_segment(self) -> CampaignIn:
        if (self.segment_id is None) == (self.segment is None):
            given = "both" if self.segment is not None else "neither"
            raise ValueError(
                f"segment_id and segment: give exactly one (an existing segment's id, or a definition); "
                f"{given} was given"
            )
        return self

    @model_validator(mode="after")
    def _quiet_hours_pair(self) -> CampaignIn:
        start, end = self.quiet_hours_start, self.quiet_hours_end
        if (start is MISSING) != (end is MISSING) or (start is None) != (end is None):
            raise ValueError(
                "quiet_hours_start and quiet_hours_end go together: give both times, both null for no "
                "quiet hours, or leave both out for the default"
            )
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
    sender_pool: SenderPool | MISSING | None = MISSING
    transactional: bool | MISSING = Field(default=MISSING, description=TRANSACTIONAL_DOC)
    frequency_cap_policy: FrequencyCapPolicy | MISSING = Field(default=MISSING, description=CAP_POLICY_DOC)
    ends_at: AwareDatetime | MISSING | None = Field(default=MISSING, description=ENDS_AT_DOC)


@dataclass(frozen=True)
class ActionResult:
    campaign: Campaign
    # False when the campaign already was where the action leads.
    changed: bool
    # The audience frozen by a trigger.
    recipients: int | None = None
    # Anything the operator should know (e.g. pages whose publishing is retried).
    message: str | None = None


def create_campaign(
    uow: UnitOfWork,
    values: CampaignIn,
    *,
    default_quiet_hours: QuietHours | None,
    now: datetime | None = None,
) -> Campaign:
    """A DRAFT campaign. Quiet hours left out are `default_quiet_hours` (the DEFAULT_QUIET_HOURS setting,
    None when it is off), recorded as such; an inline segment is saved in the same transaction. `ends_at`
    must be after `now` (the caller's clock; None skips that check) and after the schedule time."""
    fields = values.model_dump(exclude={"segment"})
    fields["frequency_cap_policy"] = values.frequency_cap_policy.value
    if "quiet_hours_start" in fields:
        fields["quiet_hours_source"] = QuietHoursSource.EXPLICIT.value
    else:
        window = default_quiet_hours
        fields["quiet_hours_start"] = None if window is None else window.start
        fields["quiet_hours_end"] = None if window is None else window.end
        fields["quiet_hours_source"] = QuietHoursSource.DEFAULT.value
    with uow:
        row = Campaign()
        if values.segment is not None:
            _check_template(uow.session, fields)
            fields["segment_id"] = _inline_segment(uow.session, values.name, values.segment).id
        row = save_row(uow.session, row, _checked(uow.session, row, fields, now))
        uow.commit()
    return row


def list_campaigns(
    uow: UnitOfWork, *, limit: int, cursor: str | None, status: CampaignStatus | None = None
) -> Page[Campaign]:
    where = [] if status is None else [Campaign.status == status.value]
    return crud.read_page(uow, Campaign, limit=limit, cursor=cursor, where=where)


def get_campaign(uow: UnitOfWork, campaign_id: int) -> Campaign:
    return crud.read(uow, Campaign, campaign_id)


def change_campaign(
    uow: UnitOfWork, campaign_id: int, patch: CampaignPatch, now: datetime | None = None
) -> Campaign:
    fields = patch.model_dump()
    if isinstance(fields.get("frequency_cap_policy"), FrequencyCapPolicy):
        fields["frequency_cap_policy"] = fields["frequency_cap_policy"].value
    if "quiet_hours_start" in fields or "quiet_hours_end" in fields:
        fields["quiet_hours_source"] = QuietHoursSource.EXPLICIT.value
    with uow:
        row = _draft(uow.session, campaign_id, "changed")
        row = save_row(uow.session, row, _checked(uow.session, row, fields, now))
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


def _inline_segment(session: Session, campaign_name: str, definition: dict[str, Any]) -> Segment:
    """The campaign's inline definition saved as a segment named after it: the campaign's name, or the
    first of "name (2)", "name (3)", ... not taken. A name another request takes at the same instant is a
    conflict (409) to retry."""
    try:
        parse_segment(definition)
    except InvalidSegment as exc:
        path = exc.details.get("path", "")
        where = f"segment.{path}" if path else "segment"
        problem = exc.message.removeprefix(f"{path or 'segment'}: ")
        raise InvalidSegment(f"{where}: {problem}", path=where, field="segment") from None
    name = _free_segment_name(session, campaign_name)
    try:
        return save_row(session, Segment(), {"name": name, "definition": definition})
    except NameTaken:
        raise NameTaken(
            f"the segment name {name!r} was taken by another request at the same moment; send it again",
            field="segment",
            value=name,
        ) from None


def _free_segment_name(session: Session, campaign_name: str) -> str:
    taken = names_starting_with(session, campaign_name[: SEGMENT_NAME_MAX - len(" (99999)")])
    if campaign_name not in taken:
        return campaign_name
    for number in range(2, len(taken) + 3):
        suffix = f" ({number})"
        candidate = campaign_name[: SEGMENT_NAME_MAX - len(suffix)] + suffix
        if candidate not in taken:
            return candidate
    raise AssertionError("unreachable: len(taken) + 1 candidates cannot all be taken")


def _check_template(session: Session, values: dict[str, Any]) -> None:
    if session.get(Template, values["template_id"]) is None:
        raise InvalidReference(
            f"template_id {values['template_id']} does not exist",
            field="template_id",
            value=values["template_id"],
        )


def _checked(
    session: Session, row: Campaign, values: dict[str, Any], now: datetime | None = None
) -> dict[str, Any]:
    """References exist (a sender pool has a sender), the timezone is real, quiet hours come in pairs and
    the end time is in the future and after the schedule time, judged on the merged row."""
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
    pool = values.get("sender_pool")
    if pool is not None and not pool_exists(session, pool):
        raise InvalidReference(
            f"sender_pool {pool!r} has no senders: add one first (POST /v1/senders), or leave it out for the "
            "configured sender",
            field="sender_pool",
            value=pool,
        )
    _check_ends_at(values, row, now)
    return values


def _check_ends_at(values: dict[str, Any], row: Campaign, now: datetime | None) -> None:
    ends_at = values.get("ends_at", row.ends_at)
    if ends_at is None or ("ends_at" not in values and "schedule_time" not in values):
        return
    if "ends_at" in values and now is not None and ends_at <= now:
        raise InvalidEndTime(
            f"ends_at {ends_at.isoformat()} is not in the future", field="ends_at", value=ends_at.isoformat()
        )
    schedule_time = values.get("schedule_time", row.schedule_time)
    if schedule_time is not None and ends_at <= schedule_time:
        raise InvalidEndTime(
            f"ends_at {ends_at.isoformat()} must be after schedule_time {schedule_time.isoformat()}",
            field="ends_at",
            value=ends_at.isoformat(),
        )


class InvalidEndTime(DomainError):
    code = "invalid_end_time"


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
