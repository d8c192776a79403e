"""Templates: CRUD over the templates service, with the variables derived from the content."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import computed_field

from shared.api.models import Page, PageQuery, ResponseModel
from shared.api.registry import Context, route
from shared.domain.templates import template_variables
from shared.services import templates as service
from shared.services.inputs import ResourceId
from shared.services.templates import TemplateIn, TemplatePatch


class TemplateOut(ResponseModel):
    id: int
    name: str
    content: str
    content_sid: str | None
    content_variables: dict[str, Any]
    created_at: datetime
    updated_at: datetime

    @computed_field(description="Placeholder names in the content, in order of first use.")  # type: ignore[prop-decorator]
    @property
    def variables(self) -> list[str]:
        return template_variables(self.content)


class TemplatePage(Page[TemplateOut]):
    pass


@route(
    "POST",
    "/v1/templates",
    summary="Create a template",
    tag="templates",
    body=TemplateIn,
    response=TemplateOut,
    status=201,
    extra_errors=(409,),
)
def create_template(context: Context, body: TemplateIn) -> TemplateOut:
    return TemplateOut.model_validate(service.create_template(context.uow(), body))


@route(
    "GET", "/v1/templates", summary="List templates", tag="templates", query=PageQuery, response=TemplatePage
)
def list_templates(context: Context, query: PageQuery) -> TemplatePage:
    page = service.list_templates(context.uow(), limit=query.limit, cursor=query.cursor)
    return TemplatePage.model_validate(page, from_attributes=True)


@route("GET", "/v1/templates/{template_id}", summary="One template", tag="templates", response=TemplateOut)
def get_template(context: Context, template_id: ResourceId) -> TemplateOut:
    return TemplateOut.model_validate(service.get_template(context.uow(), template_id))


@route(
    "PATCH",
    "/v1/templates/{template_id}",
    summary="Change a template not used by a live campaign",
    tag="templates",
    body=TemplatePatch,
    response=TemplateOut,
    extra_errors=(409,),
)
def patch_template(context: Context, template_id: ResourceId, body: TemplatePatch) -> TemplateOut:
    return TemplateOut.model_validate(service.change_template(context.uow(), template_id, body))


@route(
    "DELETE",
    "/v1/templates/{template_id}",
    summary="Delete a template no campaign uses",
    tag="templates",
    status=204,
    extra_errors=(409,),
)
def delete_template(context: Context, template_id: ResourceId) -> None:
    service.delete_template(context.uow(), template_id)
