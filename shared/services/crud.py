"""Create, read, list and delete of the operator-defined rows, each in its own unit of work: what the
templates, segments, campaigns and messages services share. Their rules stay in those services.

A row read here is detached as loaded, so the caller reads it after the unit of work has closed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from sqlalchemy import ColumnElement

from shared.db.models import Base
from shared.db.pagination import Page
from shared.db.queries.rows import delete_row, get_row, keep_loaded, list_page, save_row
from shared.db.unit_of_work import UnitOfWork

M = TypeVar("M", bound=Base)


def create(uow: UnitOfWork, row: M, values: Mapping[str, Any]) -> M:
    with uow:
        row = save_row(uow.session, row, values)
        uow.commit()
    return row


def read(uow: UnitOfWork, model: type[M], row_id: int) -> M:
    with uow:
        row = get_row(uow.session, model, row_id)
        keep_loaded(uow.session)
    return row


def read_page(
    uow: UnitOfWork,
    model: type[M],
    *,
    limit: int,
    cursor: str | None,
    where: Sequence[ColumnElement[bool]] = (),
) -> Page[M]:
    with uow:
        page = list_page(uow.session, model, limit=limit, cursor=cursor, where=where)
        keep_loaded(uow.session)
    return page


def delete(uow: UnitOfWork, model: type[M], row_id: int) -> None:
    """Refused (`InUse`) while a campaign uses the row."""
    with uow:
        delete_row(uow.session, get_row(uow.session, model, row_id))
        uow.commit()
