"""Templates: create, read, list, change and delete, and previews. The placeholders, the Content variable
mapping and the locale are checked by the domain rules, and a template a live campaign sends from cannot
change. A preview renders a template (saved, or content not yet saved) for one user or for attributes the
operator types, with the domain's own renderer."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import MISSING, Field, model_validator

from shared.db.models import Template
from shared.db.pagination import Page
from shared.db.queries import campaigns as campaign_sql
from shared.db.queries import users as user_sql
from shared.db.queries.rows import get_row, save_row
from shared.db.unit_of_work import UnitOfWork
from shared.domain.errors import DomainError, NotFound, TemplateInUse
from shared.domain.phones import normalize_phone
from shared.domain.templates import (
    MAX_TEMPLATE_LENGTH,
    Channel,
    Preview,
    normalize_locale,
    preview,
    recipient_variables,
    validate_content_variables,
    validate_template,
)
from shared.services import crud
from shared.services.inputs import Name, RequestModel

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
Locale = Annotated[
    str, Field(min_length=1, max_length=35, description="Language tag such as es, es-PE or pt-BR.")
]
ChannelField = Annotated[
    Channel, Field(description="Only whatsapp: the send path sends nothing else (no SMS sender is wired).")
]


class TemplateIn(RequestModel):
    name: Name
    content: Content
    content_sid: ContentSid | None = None
    content_variables: ContentVariables = Field(default_factory=dict)
    locale: Locale | None = None
    channel: ChannelField = Channel.WHATSAPP


class TemplatePatch(RequestModel):
    """Fields left out stay as they are; a null content_sid removes it."""

    name: Name | MISSING = MISSING
    content: Content | MISSING = MISSING
    content_sid: ContentSid | MISSING | None = MISSING
    content_variables: ContentVariables | MISSING = MISSING
    locale: Locale | MISSING | None = MISSING
    channel: ChannelField | MISSING = MISSING


class PreviewIn(RequestModel):
    """Whom to render for: a user (`phone`, in any format) or `attributes` typed by the operator; neither
    renders with no values at all. `content` previews text not yet saved instead of the template's."""

    phone: str | None = Field(default=None, min_length=1, max_length=64)
    attributes: dict[str, Any] | None = None
    content: Content | None = None

    @model_validator(mode="after")
    def _one_source(self) -> PreviewIn:
        if self.phone is not None and self.attributes is not None:
            raise ValueError("give phone or attributes, not both")
        return self


def create_template(uow: UnitOfWork, values: TemplateIn) -> Template:
    return crud.create(uow, Template(), _checked(values.model_dump()))


def list_templates(uow: UnitOfWork, *, limit: int, cursor: str | None) -> Page[Template]:
    return crud.read_page(uow, Template, limit=limit, cursor=cursor)


def get_template(uow: UnitOfWork, template_id: int) -> Template:
    return crud.read(uow, Template, template_id)


def change_template(uow: UnitOfWork, template_id: int, patch: TemplatePatch) -> Template:
    with uow:
        row = get_row(uow.session, Template, template_id, lock=True)
        if campaign_sql.template_is_live(uow.session, template_id):
            raise TemplateInUse("a ready, running or paused campaign uses this template")
        row = save_row(uow.session, row, _checked(patch.model_dump()))
        uow.commit()
    return row


def delete_template(uow: UnitOfWork, template_id: int) -> None:
    crud.delete(uow, Template, template_id)


def preview_template(
    uow: UnitOfWork, template_id: int | None, request: PreviewIn, default_region: str
) -> Preview:
    """The template (or `request.content`) rendered for the request's user or attributes: the text, the
    variables missing and defaulted, its length against WhatsApp's limit. An unknown user is a 404."""
    with uow:
        content = request.content
        if content is None:
            if template_id is None:
                raise DomainError("give the content to preview", field="content")
            content = get_row(uow.session, Template, template_id).content
        variables = _variables_for(uow, request, default_region)
    validate_template(content)
    return preview(content, variables)


def _variables_for(uow: UnitOfWork, request: PreviewIn, default_region: str) -> Mapping[str, Any]:
    if request.phone is None:
        return dict(request.attributes or {})
    phone = normalize_phone(request.phone, default_region)
    user = user_sql.get_user(uow.session, phone)
    if user is None:
        raise NotFound("user", phone)
    return recipient_variables(phone, user.attributes)


def _checked(values: dict[str, Any]) -> dict[str, Any]:
    if values.get("content") is not None:
        validate_template(values["content"])
    if values.get("content_variables") is not None:
        validate_content_variables(values["content_variables"])
    if values.get("locale") is not None:
        values["locale"] = normalize_locale(values["locale"])
    return values
