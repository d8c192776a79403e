"""Segments: CRUD of DSL definitions (refused with the path of the bad node), and audience previews."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import MISSING, Field

from shared.api.crud import delete_row, get_row, list_page, save_row
from shared.api.models import Page, PageQuery, RequestModel, ResourceId, ResponseModel
from shared.api.registry import Context, route
from shared.api.routes.users import Topic
from shared.db.models import Segment
from shared.db.queries.segments import audience_query, count_query
from shared.domain.segments import parse_segment

Name = Annotated[str, Field(min_length=1, max_length=200)]
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


class SegmentOut(ResponseModel):
    id: int
    name: str
    definition: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class SegmentPage(Page[SegmentOut]):
    pass


class PreviewIn(RequestModel):
    definition: Definition
    topic: Topic | None = Field(
        default=None, description="Only subscribers of this topic, as a campaign would."
    )
    sample_size: SampleSize = 10


class PreviewQuery(RequestModel):
    topic: Topic | None = None
    sample_size: SampleSize = 10


class PreviewOut(ResponseModel):
    audience_size: int = Field(description="Opted-in users matching the definition (and topic).")
    sample: list[str] = Field(description="The first phones of the audience, in phone order.")


def _checked(values: dict[str, Any]) -> dict[str, Any]:
    if "definition" in values:
        parse_segment(values["definition"])
    return values


def _preview(context: Context, definition: dict[str, Any], topic: str | None, sample_size: int) -> PreviewOut:
    node = parse_segment(definition)
    with context.uow() as uow:
        size = uow.session.execute(count_query(node, topic=topic)).scalar_one()
        sample = uow.session.execute(audience_query(node, topic=topic, limit=sample_size)).scalars().all()
    return PreviewOut(audience_size=size, sample=list(sample))


@route(
    "POST",
    "/v1/segments",
    summary="Create a segment",
    tag="segments",
    body=SegmentIn,
    response=SegmentOut,
    status=201,
    extra_errors=(409,),
)
def create_segment(context: Context, body: SegmentIn) -> SegmentOut:
    with context.uow() as uow:
        row = save_row(uow.session, Segment(), _checked(body.model_dump()))
        uow.commit()
    return SegmentOut.model_validate(row)


@route("GET", "/v1/segments", summary="List segments", tag="segments", query=PageQuery, response=SegmentPage)
def list_segments(context: Context, query: PageQuery) -> SegmentPage:
    with context.uow() as uow:
        return list_page(uow.session, Segment, SegmentPage, query)


@route("GET", "/v1/segments/{segment_id}", summary="One segment", tag="segments", response=SegmentOut)
def get_segment(context: Context, segment_id: ResourceId) -> SegmentOut:
    with context.uow() as uow:
        return SegmentOut.model_validate(get_row(uow.session, Segment, segment_id))


@route(
    "PATCH",
    "/v1/segments/{segment_id}",
    summary="Change a segment",
    tag="segments",
    body=SegmentPatch,
    response=SegmentOut,
    extra_errors=(409,),
)
def patch_segment(context: Context, segment_id: ResourceId, body: SegmentPatch) -> SegmentOut:
    with context.uow() as uow:
        row = save_row(
            uow.session, get_row(uow.session, Segment, segment_id, lock=True), _checked(body.model_dump())
        )
        uow.commit()
    return SegmentOut.model_validate(row)


@route(
    "DELETE",
    "/v1/segments/{segment_id}",
    summary="Delete a segment no campaign uses",
    tag="segments",
    status=204,
    extra_errors=(409,),
)
def delete_segment(context: Context, segment_id: ResourceId) -> None:
    with context.uow() as uow:
        delete_row(uow.session, get_row(uow.session, Segment, segment_id))
        uow.commit()


@route(
    "POST",
    "/v1/segments/preview",
    summary="Audience size and sample for a definition",
    tag="segments",
    body=PreviewIn,
    response=PreviewOut,
)
def preview_definition(context: Context, body: PreviewIn) -> PreviewOut:
    return _preview(context, body.definition, body.topic, body.sample_size)


@route(
    "GET",
    "/v1/segments/{segment_id}/preview",
    summary="Audience size and sample for a saved segment",
    tag="segments",
    query=PreviewQuery,
    response=PreviewOut,
)
def preview_segment(context: Context, segment_id: ResourceId, query: PreviewQuery) -> PreviewOut:
    with context.uow() as uow:
        definition = get_row(uow.session, Segment, segment_id).definition
    return _preview(context, definition, query.topic, query.sample_size)
