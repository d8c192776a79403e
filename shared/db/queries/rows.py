"""Create, read, list, update and delete for the operator-defined rows (templates, segments, campaigns):
plain rows whose rules live in the services and domain modules, with the database's refusals turned into
domain errors (`NotFound`, `NameTaken`, `InUse`) instead of a driver exception."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from shared.boundary import BIGINT_MAX
from shared.db.errors import FOREIGN_KEY_VIOLATION, UNIQUE_VIOLATION, sqlstate
from shared.db.models import Base
from shared.db.pagination import Page, decode_cursor, page_of
from shared.domain.errors import InUse, NameTaken, NotFound

M = TypeVar("M", bound=Base)


def get_row(session: Session, model: type[M], row_id: int, *, lock: bool = False) -> M:
    # Ids are BIGINTs from 1: another number names no row (the dashboard passes ids from its own URLs).
    row = session.get(model, row_id, with_for_update=lock) if 1 <= row_id <= BIGINT_MAX else None
    if row is None:
        raise NotFound(_resource(model), row_id)
    return row


def list_page(
    session: Session,
    model: type[M],
    *,
    limit: int,
    cursor: str | None,
    where: Sequence[ColumnElement[bool]] = (),
) -> Page[M]:
    """A page by id: one primary-key range scan from the cursor; the extra row says whether more follow."""
    after = decode_cursor(cursor, [int])
    statement = select(model).where(*where).order_by(model.id).limit(limit + 1)  # type: ignore[attr-defined]
    if after is not None:
        statement = statement.where(model.id > after[0])  # type: ignore[attr-defined]
    return page_of(list(session.scalars(statement)), limit, key=lambda row: [row.id])  # type: ignore[attr-defined]


def save_row(session: Session, row: M, values: Mapping[str, Any]) -> M:
    """Apply `values` and flush, so a duplicate name is refused here rather than at commit."""
    for key, value in values.items():
        setattr(row, key, value)
    session.add(row)
    # Read before flushing: after a failed flush the session refuses to load anything.
    name = getattr(row, "name", None)
    try:
        session.flush()
    except DBAPIError as exc:
        if sqlstate(exc) != UNIQUE_VIOLATION:
            raise
        raise NameTaken(
            f"a {_resource(type(row))} named {name!r} already exists", field="name", value=name
        ) from None
    session.refresh(row)
    return row


def delete_row(session: Session, row: Base) -> None:
    session.delete(row)
    try:
        session.flush()
    except DBAPIError as exc:
        if sqlstate(exc) != FOREIGN_KEY_VIOLATION:
            raise
        raise InUse(
            f"this {_resource(type(row))} is used by a campaign; delete or change that first"
        ) from None


def keep_loaded(session: Session) -> None:
    """Detach every row the session holds, as loaded, so a caller can read them after the unit of work
    closes: the rollback that closes it would expire (unload) them, and a detached row cannot load again."""
    session.expunge_all()


def _resource(model: type[Base]) -> str:
    return str(model.__tablename__).rstrip("s")
