"""Segments: CRUD of DSL definitions (refused with the path of the bad node), and audience previews, over
the segments service."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from shared.api.models import Page, PageQuery, ResponseModel
from shared.api.registry import Context, route
from shared.services import segments as service
from shared.services.inputs import RequestModel, ResourceId, Topic
from shared.services.segments import PreviewIn, SampleSize, SegmentIn, SegmentPatch


class SegmentOut(ResponseModel):
    id: int
    name: str
    definition: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class SegmentPage(Page[SegmentOut]):
    pass


class PreviewQuery(RequestModel):
    topic: Topic | None = None
    sample_size: SampleSize = 10


class PreviewOut(ResponseModel):
    audience_size: int = Field(description="Opted-in users matching the definition (and topic).")
    sample: list[str] = Field(description="The first phones of the audience, in phone order.")


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
    return SegmentOut.model_validate(service.create_segment(context.uow(), body))


@route("GET", "/v1/segments", summary="List segments", tag="segments", query=PageQuery, response=SegmentPage)
def list_segments(context: Context, query: PageQuery) -> SegmentPage:
    page = service.list_segments(context.uow(), limit=query.limit, cursor=query.cursor)
    return SegmentPage.model_validate(page, from_attributes=True)


@route("GET", "/v1/segments/{segment_id}", summary="One segment", tag="segments", response=SegmentOut)
def get_segment(context: Context, segment_id: ResourceId) -> SegmentOut:
    return SegmentOut.model_validate(service.get_segment(context.uow(), segment_id))


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
    return SegmentOut.model_validate(service.change_segment(context.uow(), segment_id, body))


@route(
    "DELETE",
    "/v1/segments/{segment_id}",
    summary="Delete a segment no campaign uses",
    tag="segments",
    status=204,
    extra_errors=(409,),
)
def delete_segment(context: Context, segment_id: ResourceId) -> None:
    service.delete_segment(context.uow(), segment_id)


@route(
    "POST",
    "/v1/segments/preview",
    summary="Audience size and sample for a definition",
    tag="segments",
    body=PreviewIn,
    response=PreviewOut,
)
def preview_definition(context: Context, body: PreviewIn) -> PreviewOut:
    return PreviewOut.model_validate(service.preview_definition(context.uow(), body))


@route(
    "GET",
    "/v1/segments/{segment_id}/preview",
    summary="Audience size and sample for a saved segment",
    tag="segments",
    query=PreviewQuery,
    response=PreviewOut,
)
def preview_segment(context: Context, segment_id: ResourceId, query: PreviewQuery) -> PreviewOut:
    preview = service.preview_segment(
        context.uow(), segment_id, topic=query.topic, sample_size=query.sample_size
    )
    return PreviewOut.model_validate(preview)
