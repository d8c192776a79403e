"""The campaigns service on real PostgreSQL, called as both adapters call it: each rule refuses with its
domain error (what was wrong, where), and an action answers with the campaign as it now is."""

from __future__ import annotations

from collections.abc import Callable
from datetime import time
from typing import Any

import pytest
from sqlalchemy import Engine, select, text

from shared.clock import FixedClock
from shared.db.models import Campaign
from shared.db.unit_of_work import UnitOfWork
from shared.domain.enums import CampaignStatus
from shared.domain.errors import (
    CampaignNotDraft,
    InvalidCursor,
    InvalidQuietHours,
    InvalidReference,
    InvalidTimezone,
    InvalidTransition,
    NotFound,
)
from shared.services import campaigns
from shared.services.campaigns import CampaignIn, CampaignPatch
from tests.integration.pipeline_support import RecordingPublisher
from tests.seeding import T0, add_campaign, add_users

CLOCK = FixedClock(T0)


def _new_campaign(engine: Engine, **fields: Any) -> CampaignIn:
    """Valid input naming the template and segment of an existing campaign's."""
    existing = add_campaign(engine, status="DRAFT")
    with engine.connect() as conn:
        refs = conn.execute(
            select(Campaign.template_id, Campaign.segment_id).where(Campaign.id == existing)
        ).one()
    return CampaignIn.model_validate(
        {"name": "autumn", "template_id": refs.template_id, "segment_id": refs.segment_id, **fields}
    )


def test_a_created_campaign_is_a_draft_with_its_settings(engine: Engine) -> None:
    values = _new_campaign(engine, timezone="America/Lima", rate_limit_per_second=12)

    row = campaigns.create_campaign(UnitOfWork(engine), values, default_quiet_hours=None)

    assert (row.status, row.timezone, row.rate_limit_per_second) == ("DRAFT", "America/Lima", 12)
    assert campaigns.get_campaign(UnitOfWork(engine), row.id).name == "autumn"


@pytest.mark.parametrize("field", ["template_id", "segment_id"])
def test_a_reference_to_a_missing_row_is_refused_naming_the_field(engine: Engine, field: str) -> None:
    values = _new_campaign(engine).model_copy(update={field: 999_999})

    with pytest.raises(InvalidReference) as refused:
        campaigns.create_campaign(UnitOfWork(engine), values, default_quiet_hours=None)

    assert refused.value.details == {"field": field, "value": 999_999}
    assert refused.value.message == f"{field} 999999 does not exist"


def test_an_unknown_timezone_is_refused(engine: Engine) -> None:
    with pytest.raises(InvalidTimezone):
        campaigns.create_campaign(
            UnitOfWork(engine), _new_campaign(engine, timezone="Mars/Base"), default_quiet_hours=None
        )


def test_quiet_hours_are_judged_on_the_merged_row(engine: Engine) -> None:
    values = _new_campaign(engine, quiet_hours_start="22:00", quiet_hours_end="08:00")
    campaign_id = campaigns.create_campaign(UnitOfWork(engine), values, default_quiet_hours=None).id

    with pytest.raises(InvalidQuietHours) as refused:
        campaigns.change_campaign(UnitOfWork(engine), campaign_id, CampaignPatch(quiet_hours_end=None))

    assert refused.value.details == {"field": "quiet_hours_end"}
    changed = campaigns.change_campaign(
        UnitOfWork(engine), campaign_id, CampaignPatch(quiet_hours_start=time(21, 0))
    )
    assert (changed.quiet_hours_start, changed.quiet_hours_end) == (time(21, 0), time(8, 0))


@pytest.mark.parametrize("status", ["READY", "RUNNING", "COMPLETED"])
def test_only_a_draft_can_be_changed_or_deleted(engine: Engine, status: str) -> None:
    campaign_id = add_campaign(engine, status=status)

    with pytest.raises(CampaignNotDraft) as refused:
        campaigns.change_campaign(UnitOfWork(engine), campaign_id, CampaignPatch(name="renamed"))
    assert refused.value.details == {"status": status}
    with pytest.raises(CampaignNotDraft):
        campaigns.delete_campaign(UnitOfWork(engine), campaign_id)
    assert campaigns.get_campaign(UnitOfWork(engine), campaign_id).name == "spring sale"


def test_a_deleted_draft_is_gone_and_its_template_and_segment_stay(engine: Engine) -> None:
    campaign_id = add_campaign(engine, status="DRAFT")

    campaigns.delete_campaign(UnitOfWork(engine), campaign_id)

    with pytest.raises(NotFound) as missing:
        campaigns.get_campaign(UnitOfWork(engine), campaign_id)
    assert missing.value.details == {"resource": "campaign", "key": str(campaign_id)}
    with engine.connect() as conn:
        counts = conn.execute(
            text("SELECT (SELECT count(*) FROM templates), (SELECT count(*) FROM segments)")
        )
        assert tuple(counts.one()) == (1, 1)


def test_a_refused_transition_is_a_conflict_naming_the_status_and_action(engine: Engine) -> None:
    campaign_id = add_campaign(engine, status="COMPLETED")

    with pytest.raises(InvalidTransition) as refused:
        campaigns.pause_campaign(UnitOfWork(engine), campaign_id, CLOCK)

    assert refused.value.message == "cannot pause a campaign that is COMPLETED"
    assert refused.value.details == {"status": "COMPLETED", "action": "pause"}


def test_repeating_an_action_changes_nothing_and_is_no_error(engine: Engine) -> None:
    campaign_id = add_campaign(engine, status="READY")

    first = campaigns.pause_campaign(UnitOfWork(engine), campaign_id, CLOCK)
    again = campaigns.pause_campaign(UnitOfWork(engine), campaign_id, CLOCK)

    assert (first.changed, first.campaign.status) == (True, "PAUSED")
    assert (again.changed, again.campaign.status) == (False, "PAUSED")


def test_a_resume_is_never_a_repeat(engine: Engine) -> None:
    campaign_id = add_campaign(engine, status="READY")

    with pytest.raises(InvalidTransition):
        campaigns.resume_campaign(UnitOfWork(engine), RecordingPublisher(), campaign_id, CLOCK)


def test_trigger_makes_a_draft_ready_and_starts_it_with_its_audience(engine: Engine) -> None:
    add_users(engine, 3)
    campaign_id = add_campaign(engine, status="DRAFT")
    publisher = RecordingPublisher()

    result = campaigns.trigger_campaign(UnitOfWork(engine), publisher, campaign_id, CLOCK, page_size=2)

    assert (result.changed, result.recipients, result.message) == (True, 3, None)
    assert result.campaign.status == CampaignStatus.RUNNING
    assert len(publisher.pages()) == 2
    with pytest.raises(InvalidTransition) as again:
        campaigns.trigger_campaign(UnitOfWork(engine), publisher, campaign_id, CLOCK, page_size=2)
    assert again.value.details == {"status": "RUNNING", "action": "trigger"}


@pytest.mark.parametrize(
    "action",
    [
        lambda uow: campaigns.mark_ready(uow, 424242, CLOCK),
        lambda uow: campaigns.pause_campaign(uow, 424242, CLOCK),
        lambda uow: campaigns.cancel_campaign(uow, 424242, CLOCK),
        lambda uow: campaigns.trigger_campaign(uow, RecordingPublisher(), 424242, CLOCK, page_size=10),
        lambda uow: campaigns.resume_campaign(uow, RecordingPublisher(), 424242, CLOCK),
    ],
    ids=["ready", "pause", "cancel", "trigger", "resume"],
)
def test_an_action_on_a_missing_campaign_is_not_found(
    engine: Engine, action: Callable[[UnitOfWork], object]
) -> None:
    with pytest.raises(NotFound, match="campaign 424242 does not exist"):
        action(UnitOfWork(engine))


def test_the_list_pages_by_id_and_filters_by_status(engine: Engine) -> None:
    ids = [add_campaign(engine, status=status) for status in ("DRAFT", "READY", "DRAFT")]

    first = campaigns.list_campaigns(UnitOfWork(engine), limit=2, cursor=None)
    rest = campaigns.list_campaigns(UnitOfWork(engine), limit=2, cursor=first.next_cursor)
    drafts = campaigns.list_campaigns(UnitOfWork(engine), limit=10, cursor=None, status=CampaignStatus.DRAFT)

    assert [c.id for c in first.items + rest.items] == ids and rest.next_cursor is None
    assert [c.id for c in drafts.items] == [ids[0], ids[2]]
    with pytest.raises(InvalidCursor):
        campaigns.list_campaigns(UnitOfWork(engine), limit=2, cursor="not-a-cursor")
