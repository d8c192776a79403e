"""The templates and segments services on real PostgreSQL: content and definitions checked by the domain
rules, names unique, nothing a campaign still uses deleted or changed under it, audience previews."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, select

from shared.db.models import Campaign
from shared.db.unit_of_work import UnitOfWork
from shared.domain.errors import InUse, InvalidSegment, InvalidTemplate, NameTaken, NotFound, TemplateInUse
from shared.services import segments, templates
from shared.services.segments import PreviewIn, SegmentIn, SegmentPatch
from shared.services.templates import TemplateIn, TemplatePatch
from tests.integration.pipeline_support import subscribe
from tests.seeding import add_campaign, add_users

LIMA = {"attribute": "city", "operator": "equals", "value": "Lima"}


def _template_of(engine: Engine, campaign_id: int) -> int:
    with engine.connect() as conn:
        return conn.execute(select(Campaign.template_id).where(Campaign.id == campaign_id)).scalar_one()


def test_a_template_with_bad_braces_is_refused_and_not_saved(engine: Engine) -> None:
    with pytest.raises(InvalidTemplate):
        templates.create_template(UnitOfWork(engine), TemplateIn(name="greeting", content="Hi {first_name"))

    assert templates.list_templates(UnitOfWork(engine), limit=10, cursor=None).items == []


def test_a_second_template_of_the_same_name_is_a_conflict_naming_it(engine: Engine) -> None:
    templates.create_template(UnitOfWork(engine), TemplateIn(name="greeting", content="Hi"))

    with pytest.raises(NameTaken) as taken:
        templates.create_template(UnitOfWork(engine), TemplateIn(name="greeting", content="Hello"))

    assert taken.value.message == "a template named 'greeting' already exists"
    assert taken.value.details == {"field": "name", "value": "greeting"}


@pytest.mark.parametrize("status", ["READY", "RUNNING", "PAUSED"])
def test_a_template_a_live_campaign_sends_from_cannot_change(engine: Engine, status: str) -> None:
    template_id = _template_of(engine, add_campaign(engine, status=status, content="Hi {first_name}"))

    with pytest.raises(TemplateInUse):
        templates.change_template(UnitOfWork(engine), template_id, TemplatePatch(content="Bye"))

    assert templates.get_template(UnitOfWork(engine), template_id).content == "Hi {first_name}"


@pytest.mark.parametrize("status", ["DRAFT", "COMPLETED", "CANCELLED"])
def test_a_template_of_a_campaign_not_sending_can_change(engine: Engine, status: str) -> None:
    template_id = _template_of(engine, add_campaign(engine, status=status))

    changed = templates.change_template(UnitOfWork(engine), template_id, TemplatePatch(content="Bye"))

    assert changed.content == "Bye"


def test_a_template_or_segment_a_campaign_uses_cannot_be_deleted(engine: Engine) -> None:
    campaign_id = add_campaign(engine, status="COMPLETED")
    with engine.connect() as conn:
        row = conn.execute(
            select(Campaign.template_id, Campaign.segment_id).where(Campaign.id == campaign_id)
        )
        template_id, segment_id = row.one()

    with pytest.raises(InUse, match="this template is used by a campaign"):
        templates.delete_template(UnitOfWork(engine), template_id)
    with pytest.raises(InUse, match="this segment is used by a campaign"):
        segments.delete_segment(UnitOfWork(engine), segment_id)


def test_a_change_to_a_missing_row_is_not_found(engine: Engine) -> None:
    with pytest.raises(NotFound, match="template 77 does not exist"):
        templates.change_template(UnitOfWork(engine), 77, TemplatePatch(content="x"))
    with pytest.raises(NotFound, match="segment 77 does not exist"):
        segments.change_segment(UnitOfWork(engine), 77, SegmentPatch(name="x"))


def test_a_bad_definition_is_refused_with_the_path_of_the_bad_node(engine: Engine) -> None:
    definition = {"operator": "AND", "conditions": [{"attribute": "a", "operator": "like", "value": 1}]}

    with pytest.raises(InvalidSegment) as refused:
        segments.create_segment(UnitOfWork(engine), SegmentIn(name="bad", definition=definition))

    assert refused.value.details == {"path": "conditions[0].operator"}
    assert segments.list_segments(UnitOfWork(engine), limit=10, cursor=None).items == []


def test_a_patch_keeps_what_it_leaves_out(engine: Engine) -> None:
    segment_id = segments.create_segment(UnitOfWork(engine), SegmentIn(name="Lima", definition=LIMA)).id

    changed = segments.change_segment(UnitOfWork(engine), segment_id, SegmentPatch(name="Lima city"))

    assert (changed.name, changed.definition) == ("Lima city", LIMA)


def test_a_preview_counts_and_samples_opted_in_users_only(engine: Engine) -> None:
    lima = add_users(engine, 3, city="Lima")
    add_users(engine, 2, city="Lima", consent="STOP", start=10)
    add_users(engine, 2, city="Quito", start=20)

    preview = segments.preview_definition(UnitOfWork(engine), PreviewIn(definition=LIMA, sample_size=2))

    assert (preview.audience_size, preview.sample) == (3, lima[:2])


def test_a_saved_segments_preview_applies_the_topic_as_a_campaign_would(engine: Engine) -> None:
    lima = add_users(engine, 3, city="Lima")
    subscribe(engine, lima[1:], "news")
    segment_id = segments.create_segment(UnitOfWork(engine), SegmentIn(name="Lima", definition=LIMA)).id

    preview = segments.preview_segment(UnitOfWork(engine), segment_id, topic="news", sample_size=10)

    assert (preview.audience_size, preview.sample) == (2, lima[1:])
    with pytest.raises(NotFound):
        segments.preview_segment(UnitOfWork(engine), segment_id + 1, topic=None, sample_size=0)
