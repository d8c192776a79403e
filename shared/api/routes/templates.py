"""Templates: CRUD, with the variables derived from the content and invalid placeholders refused."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import MISSING, Field, computed_field

from shared.api.crud import delete_row, get_row, list_page, save_row
from shared.api.errors import Conflict
from shared.api.models import Page, PageQuery, RequestModel, ResourceId, ResponseModel
from shared.api.registry import Context, route
from shared.db.models import Campaign, Template
from shared.domain.enums import CampaignStatus
from shared.domain.templates import (
    MAX_TEMPLATE_LENGTH,
    template_variables,
    validate_content_variables,
    validate_template,
)

Name = Annotated[str, Field(min_length=1, max_length=200)]
Content = Annotated[
    str, Field(min_length=1, max_length=MAX_TEMPLATE_LENGTH, description="Text with {placeholders}.")
]
ContentSid = Annotated[
    str, Field(pattern=r"^HX[0-9a-fA-F]{32}$", description="Approved WhatsApp Content template.")
]
ContentVariables = Annotated[
    dict[str, str],
    Field(description='ContentVariables mapping, e.g. {"1": "first_name", "2": "city|your city"}.'),
]
# A template being sent from (or about to be) must not change under the campaign.
_LIVE = (CampaignStatus.READY.value, CampaignStatus.RUNNING.value, CampaignStatus.PAUSED.value)


class TemplateIn(RequestModel):
    name: Name
    content: Content
    content_sid: ContentSid | None = None
    content_variables: ContentVariables = Field(default_factory=dict)


class TemplatePatch(RequestModel):
    """Fields left out stay as they are; a null content_sid removes it."""

    name: Name | MISSING = MISSING
    content: Content | MISSING = MISSING
    content_sid: ContentSid | MISSING | None = MISSING
    content_variables: ContentVariables | MISSING = MISSING


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


def _check(values: dict[str, Any]) -> dict[str, Any]:
    if values.get("content") is not None:
        validate_template(values["content"])
    if values.get("content_variables") is not None:
        validate_content_variables(values["content_variables"])
    return values


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
    with context.uow() as uow:
        row = save_row(uow.session, Template(), _check(body.model_dump()))
        uow.commit()
    return TemplateOut.model_validate(row)


@route(
    "GET", "/v1/templates", summary="List templates", tag="templates", query=PageQuery, response=TemplatePage
)
def list_templates(context: Context, query: PageQuery) -> TemplatePage:
    with context.uow() as uow:
        return list_page(uow.session, Template, TemplatePage, query)


@route("GET", "/v1/templates/{template_id}", summary="One template", tag="templates", response=TemplateOut)
def get_template(context: Context, template_id: ResourceId) -> TemplateOut:
    with context.uow() as uow:
        return TemplateOut.model_validate(get_row(uow.session, Template, template_id))


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
    with context.uow() as uow:
        row = get_row(uow.session, Template, template_id, lock=True)
        live = uow.session.query(Campaign.id).filter(
            Campaign.template_id == template_id, Campaign.status.in_(_LIVE)
        )
        if live.first() is not None:
            raise Conflict("template_in_use", "a ready, running or paused campaign uses this template")
        row = save_row(uow.session, row, _check(body.model_dump()))
        uow.commit()
    return TemplateOut.model_validate(row)


@route(
    "DELETE",
    "/v1/templates/{template_id}",
    summary="Delete a template no campaign uses",
    tag="templates",
    status=204,
    extra_errors=(409,),
)
def delete_template(context: Context, template_id: ResourceId) -> None:
    with context.uow() as uow:
        delete_row(uow.session, get_row(uow.session, Template, template_id))
        uow.commit()
