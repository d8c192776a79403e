"""One user's conversation: the campaign messages sent to them and what they wrote, in one timeline,
newest first, a page at a time by keyset (docs/architecture.md, "Conversations"), so a user with 10k
messages costs the same per page as one with ten."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Row

from shared.db.pagination import Page, decode_cursor, page_of
from shared.db.queries import conversation as queries
from shared.db.queries import users as user_queries
from shared.db.unit_of_work import UnitOfWork
from shared.domain.errors import InvalidCursor, NotFound

# kind (0 outbound, 1 inbound), id, at, and the columns of either kind (the other kind's are None).
TimelineRow = Row[Any]
KINDS = {queries.OUTBOUND: "outbound", queries.INBOUND: "inbound"}


def conversation(uow: UnitOfWork, phone_e164: str, *, limit: int, cursor: str | None) -> Page[TimelineRow]:
    before = _before(cursor)
    with uow:
        if not user_queries.user_exists(uow.session, phone_e164):
            raise NotFound("user", phone_e164)
        rows = queries.timeline(uow.session, phone_e164, before=before, limit=limit + 1)
    return page_of(rows, limit, key=lambda row: [row.at.isoformat(), row.kind, row.id])


def _before(cursor: str | None) -> tuple[datetime, int, int] | None:
    key = decode_cursor(cursor, [str, int, int])
    if key is None:
        return None
    at, kind, row_id = key
    try:
        instant = datetime.fromisoformat(at)
    except ValueError:
        instant = None
    if instant is None or instant.tzinfo is None or kind not in KINDS:
        raise InvalidCursor("cursor is not one this API issued; pass next_cursor unchanged", field="cursor")
    return instant, kind, row_id
