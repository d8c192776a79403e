"""Templates: CRUD over the templates service, with the variables derived from the content; previews
(a saved template or unsaved content, for a user or typed attributes) and a test send to one opted-in
user."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field, computed_field

from shared.api.auth import operator_label
from shared.api.models import Page, PageQuery, ResponseModel
from shared.api.registry import Context, route
from shared.domain.templates import Preview, template_variables
from shared.services import template_test_send
from shared.services import templates as service
from shared.services.inputs import ResourceId
from shared.services.send_config import SendConfig
from shared.services.template_test_send import TemplateTestSendIn, TemplateTestSendResult
from shared.services.templates import PreviewIn, TemplateIn, TemplatePatch


class TemplateOut(ResponseModel):
    id: int
    name: str
    content: str
    content_sid: str | None
    content_variables: dict[str, Any]
    locale: str | None
    channel: str
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


class PreviewOut(ResponseModel):
    text: str = Field(description="The rendered text; a missing variable stays as its {placeholder}.")
    missing: list[str] = Field(description="Variables with no value and no default: a send would skip.")
    defaulted: list[str] = Field(description="Variables with no value whose {name|default} was used.")
    length: int = Field(description="Characters in the rendered text.")
    limit: int = Field(description="WhatsApp's body limit through Twilio (1600).")
    over_limit: bool
    error: str | None = Field(description="Why this text cannot be sent as it is (over the limit).")

    @classmethod
    def of(cls, preview: Preview) -> PreviewOut:
        return cls(
            text=preview.text,
            missing=preview.missing,
            defaulted=preview.defaulted,
            length=preview.length,
            limit=preview.limit,
            over_limit=preview.over_limit,
            error=preview.error,
        )


class TemplateTestSendOut(ResponseModel):
    id: int
    template_id: int
    phone: str
    outcome: str = Field(description="ACCEPTED by Twilio, FAILED (refused; see error) or AMBIGUOUS.")
    body: str | None
    content_sid: str | None
    provider_sid: str | None
    error_code: int | None
    error: str | None
    created_at: datetime

    @classmethod
    def of(cls, result: TemplateTestSendResult) -> TemplateTestSendOut:
        return cls.model_validate({**vars(result), "outcome": result.outcome.value})


@route(
    "POST",
    "/v1/templates/preview",
    summary="Preview unsaved template content for a user or attributes",
    tag="templates",
    body=PreviewIn,
    response=PreviewOut,
)
def preview_content(context: Context, body: PreviewIn) -> PreviewOut:
    preview = service.preview_template(context.uow(), None, body, context.settings.default_region)
    return PreviewOut.of(preview)


@route(
    "POST",
    "/v1/templates/{template_id}/preview",
    summary="Preview a template for a user or attributes",
    tag="templates",
    body=PreviewIn,
    response=PreviewOut,
)
def preview_template(context: Context, template_id: ResourceId, body: PreviewIn) -> PreviewOut:
    preview = service.preview_template(context.uow(), template_id, body, context.settings.default_region)
    return PreviewOut.of(preview)


@route(
    "POST",
    "/v1/templates/{template_id}/test-send",
    summary="Send a template now to one opted-in user (audited)",
    tag="templates",
    body=TemplateTestSendIn,
    response=TemplateTestSendOut,
    status=201,
    other_statuses=(502,),
    extra_errors=(409,),
)
def send_test(
    context: Context, template_id: ResourceId, body: TemplateTestSendIn
) -> tuple[TemplateTestSendOut, int]:
    """201 when Twilio accepted it; 502 with the record when Twilio refused it or did not answer."""
    result = template_test_send.send_template_test(
        context.uow(),
        context.runtime.twilio_sender,
        context.clock,
        SendConfig.from_settings(context.settings),
        template_id,
        body,
        operator=operator_label(context.request),
        default_region=context.settings.default_region,
    )
    return TemplateTestSendOut.of(result), 201 if result.accepted else 502
