"""SQL for heartbeats: the last run of each periodic job, one row per job, overwritten each time."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from shared.db.models import Heartbeat

SCHEDULER_TICK = "scheduler_tick"


def beat(session: Session, name: str, at: datetime, detail: dict[str, Any] | None = None) -> None:
    statement = insert(Heartbeat).values(name=name, at=at, detail=detail or {})
    session.execute(
        statement.on_conflict_do_update(
            index_elements=[Heartbeat.name],
            set_={"at": statement.excluded.at, "detail": statement.excluded.detail},
        )
    )


def last_beat(session: Session, name: str) -> tuple[datetime, dict[str, Any]] | None:
    row = session.execute(select(Heartbeat.at, Heartbeat.detail).where(Heartbeat.name == name)).first()
    return None if row is None else (row[0], row[1])
