"""The append-only audit trail: every orchestration decision, so an operator can answer
"why did this person (not) get this message?". The table refuses UPDATE and DELETE."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from shared.db.models import AuditEvent


def record_audit(
    session: Session,
    kind: str,
    *,
    campaign_id: int | None = None,
    message_id: int | None = None,
    user_phone: str | None = None,
    source: str | None = None,
    detail: Mapping[str, Any] | None = None,
    at: datetime | None = None,
) -> None:
    row: dict[str, Any] = {
        "kind": kind,
        "campaign_id": campaign_id,
        "message_id": message_id,
        "user_phone": user_phone,
        "source": source,
        "detail": dict(detail or {}),
    }
    if at is not None:
        row["occurred_at"] = at
    session.execute(insert(AuditEvent), [row])


def record_audit_many(session: Session, rows: Iterable[Mapping[str, Any]]) -> None:
    """One multi-row INSERT for a batch of decisions (fan-out records thousands at a time)."""
    batch = [dict(r) for r in rows]
    if batch:
        session.execute(insert(AuditEvent), batch)
