"""Segments: create, read, list, change and delete DSL definitions (refused with the path of the bad
node), and audience previews (size and a sample) of a definition or a saved segment."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import MISSING, Field

from shared.db.models import Segment
from shared.db.pagination import Page
from shared.db.queries.rows import get_row, save_row
from shared.db.queries.segments import audience_query, count_query
from shared.db.unit_of_work import UnitOfWork
from shared.domain.segments import parse_segment
from shared.services import crud
from shared.services.inputs import Name, RequestModel, Topic

# The DSL: docs/architecture.md, "Domain rules".
Definition = Annotated[
    dict[str, Any],
    Field(
        description='Segment DSL tree: a leaf {"attribute", "operator", "value"} or '
        '{"operator": "AND"|"OR", "conditions": [...]} / {"operator": "NOT", "condition": {...}}.'
    ),
]
SampleSize = Annotated[int, Field(ge=0, le=50, description="How many audience phones to return.")]


class SegmentIn(RequestModel):
    name: Name
    definition: Definition


class SegmentPatch(RequestModel):
    name: Name | MISSING = MISSING
    definition: Definition | MISSING = MISSING


class PreviewIn(RequestModel):
    definition: Definition
    topic: Topic | None = Field(
        default=None, description="Only subscribers of this topic, as a campaign would."
    )
    sample_size: SampleSize = 10


@dataclass(frozen=True)
class Preview:
    # Opted-in users matching the definition (and topic).
    audience_size: int
    # The first phones of the audience, in phone order.
    sample: list[str]


def create_segment(uow: UnitOfWork, values: SegmentIn) -> Segment:
    return crud.create(uow, Segment(), _checked(values.model_dump()))


def list_segments(uow: UnitOfWork, *, limit: int, cursor: str | None) -> Page[Segment]:
    return crud.read_page(uow, Segment, limit=limit, cursor=cursor)


def get_segment(uow: UnitOfWork, segment_id: int) -> Segment:
    return crud.read(uow, Segment, segment_id)


def change_segment(uow: UnitOfWork, segment_id: int, patch: SegmentPatch) -> Segment:
    with uow:
        row = get_row(uow.session, Segment, segment_id, lock=True)
        row = save_row(uow.session, row, _checked(patch.model_dump()))
        uow.commit()
    return row


def delete_segment(uow: UnitOfWork, segment_id: int) -> None:
    crud.delete(uow, Segment, segment_id)


def preview_definition(uow: UnitOfWork, request: PreviewIn) -> Preview:
    return _preview(uow, request.definition, request.topic, request.sample_size)


def preview_segment(uow: UnitOfWork, segment_id: int, *, topic: str | None, sample_size: int) -> Preview:
    return _preview(uow, get_segment(uow, segment_id).definition, topic, sample_size)


def _preview(uow: UnitOfWork, definition: dict[str, Any], topic: str | None, sample_size: int) -> Preview:
    node = parse_segment(definition)
    with uow:
        size = uow.session.execute(count_query(node, topic=topic)).scalar_one()
        sample = uow.session.execute(audience_query(node, topic=topic, limit=sample_size)).scalars().all()
    return Preview(audience_size=size, sample=list(sample))


def _checked(values: dict[str, Any]) -> dict[str, Any]:
    if "definition" in values:
        parse_segment(values["definition"])
    return values
