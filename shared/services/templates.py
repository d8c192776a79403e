"""Templates: create, read, list, change and delete. The placeholders and the Content variable mapping
are checked by the domain rules, and a template a live campaign sends from cannot change."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import MISSING, Field

from shared.db.models import Template
from shared.db.pagination import Page
from shared.db.queries import campaigns as campaign_sql
from shared.db.queries.rows import get_row, save_row
from shared.db.unit_of_work import UnitOfWork
from shared.domain.errors import TemplateInUse
from shared.domain.templates import MAX_TEMPLATE_LENGTH, validate_content_variables, validate_template
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


def _checked(values: dict[str, Any]) -> dict[str, Any]:
    if values.get("content") is not None:
        validate_template(values["content"])
    if values.get("content_variables") is not None:
        validate_content_variables(values["content_variables"])
    return values
