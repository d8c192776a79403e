"""Senders as an operator handles them (docs/architecture.md, "Operating senders and caps"): the list with
what each is doing now (state, why and by whom it is paused, its current rate, its last Twilio error with
the meaning, its errors of the last hour), adding one to a pool, pausing it with a reason and resuming it.
Each change is audited with the door (api, dashboard) and the operator.

An address is a WhatsApp business number, `whatsapp:+E164` (a bare `+E164` is taken as that), or a
Messaging Service SID (`MG` and 32 hex digits). A pool is any name of 1 to 100 characters: it exists while
it has a sender."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from pydantic import Field, StringConstraints, field_validator
from sqlalchemy import Row

from shared.clock import Clock
from shared.db.audit import record_audit
from shared.db.queries import sender_admin as queries
from shared.db.unit_of_work import UnitOfWork
from shared.domain.enums import SenderState
from shared.domain.errors import Conflict, NotFound
from shared.domain.twilio_errors import describe
from shared.services.inputs import RequestModel
from shared.services.users import Operator

ADDED, PAUSED, RESUMED = "sender.added", "sender.paused", "sender.resumed"
PAUSED_BY_OPERATOR = "operator"
DEFAULT_PAUSE_REASON = "paused by operator"
_NUMBER = re.compile(r"^\+[1-9][0-9]{6,14}$")
_SERVICE_SID = re.compile(r"^MG[0-9a-fA-F]{32}$")

PoolName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=100),
    Field(description="The pool the sender belongs to (1 to 100 characters); a campaign names it."),
]
SenderRate = Annotated[
    int, Field(ge=1, le=500, description="This sender's ceiling in messages per second (its own rate key).")
]
PauseReason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]


def normalize_address(value: str) -> str:
    """`whatsapp:+E164` or `MG` + 32 lowercase hex digits; a bare `+E164` gets the `whatsapp:` prefix.
    Raises ValueError naming what is expected."""
    text = value.strip()
    number = text[len("whatsapp:") :] if text.lower().startswith("whatsapp:") else text
    if _NUMBER.fullmatch(number):
        return "whatsapp:" + number
    if _SERVICE_SID.fullmatch(text):
        return "MG" + text[2:].lower()
    raise ValueError(
        "expected a WhatsApp number as whatsapp:+E164 (or +E164), or a Messaging Service SID (MG and 32 hex digits)"
    )


class SenderIn(RequestModel):
    address: str = Field(
        max_length=200,
        description="whatsapp:+E164 (a bare +E164 is accepted and stored as whatsapp:+E164), or a Messaging "
        "Service SID, MG followed by 32 hex digits.",
    )
    pool: PoolName
    rate_limit_per_second: SenderRate = 80

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        return normalize_address(value)


class SenderPause(RequestModel):
    reason: PauseReason = Field(
        default=DEFAULT_PAUSE_REASON,
        description="Why it is paused; shown beside it and kept in the audit trail.",
    )


class SenderExists(Conflict):
    code = "sender_exists"


@dataclass(frozen=True)
class SenderView:
    id: int
    address: str
    pool: str
    rate_limit_per_second: int
    state: SenderState
    paused_reason: str | None
    paused_by: str | None
    paused_at: datetime | None
    last_error_code: int | None
    last_error_meaning: str | None
    last_error_at: datetime | None
    current_rate: float  # sends claimed in the last 60 s, per second
    errors_last_hour: int  # messages claimed in the last hour that carry an error code
    created_at: datetime
    updated_at: datetime


def _view(row: Row[Any]) -> SenderView:
    return SenderView(
        id=int(row.id),
        address=row.address,
        pool=row.pool,
        rate_limit_per_second=int(row.rate_limit_per_second),
        state=SenderState(row.state),
        paused_reason=row.paused_reason,
        paused_by=row.paused_by,
        paused_at=row.paused_at,
        last_error_code=row.last_error_code,
        last_error_meaning=None if row.last_error_code is None else describe(row.last_error_code),
        last_error_at=row.last_error_at,
        current_rate=round(int(row.sends_last_minute) / queries.RATE_WINDOW.total_seconds(), 3),
        errors_last_hour=int(row.errors_last_hour),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def list_senders(uow: UnitOfWork, clock: Clock) -> list[SenderView]:
    with uow:
        return [_view(row) for row in queries.senders_with_activity(uow.session, clock.now())]


def get_sender(uow: UnitOfWork, clock: Clock, sender_id: int) -> SenderView:
    with uow:
        return _one(uow, clock.now(), sender_id)


def pool_names(uow: UnitOfWork) -> list[str]:
    with uow:
        return queries.pool_names(uow.session)


def add_sender(uow: UnitOfWork, clock: Clock, values: SenderIn, operator: Operator) -> SenderView:
    """Refused with `SenderExists` (409, naming `address`) when the address already is a sender."""
    now = clock.now()
    with uow:
        sender_id = queries.insert_sender(
            uow.session, values.address, values.pool, values.rate_limit_per_second
        )
        if sender_id is None:
            raise SenderExists(f"{values.address} already is a sender", field="address", value=values.address)
        record_audit(
            uow.session,
            ADDED,
            source=operator.source,
            at=now,
            detail={
                "sender_id": sender_id,
                "address": values.address,
                "pool": values.pool,
                "rate_limit_per_second": values.rate_limit_per_second,
                "operator": operator.id,
            },
        )
        uow.commit()
        return _one(uow, now, sender_id)


def pause_sender(
    uow: UnitOfWork, clock: Clock, sender_id: int, pause: SenderPause, operator: Operator
) -> tuple[SenderView, bool]:
    """The sender as it now is, and whether this paused it: pausing a paused sender changes nothing (its
    reason and who paused it stay) and is no error."""
    now = clock.now()
    with uow:
        row = queries.lock_sender(uow.session, sender_id)
        if row is None:
            raise NotFound("sender", sender_id)
        changed = row.state != SenderState.PAUSED.value
        if changed:
            queries.pause_sender(uow.session, sender_id, pause.reason, PAUSED_BY_OPERATOR, now)
            record_audit(
                uow.session,
                PAUSED,
                source=operator.source,
                at=now,
                detail={
                    "sender_id": sender_id,
                    "address": row.address,
                    "pool": row.pool,
                    "reason": pause.reason,
                    "operator": operator.id,
                },
            )
        uow.commit()
        return _one(uow, now, sender_id), changed


def resume_sender(
    uow: UnitOfWork, clock: Clock, sender_id: int, operator: Operator
) -> tuple[SenderView, bool]:
    """Active again, its pause cleared (whoever paused it, an operator or Twilio's errors); resuming an
    active sender changes nothing and is no error."""
    now = clock.now()
    with uow:
        row = queries.lock_sender(uow.session, sender_id)
        if row is None:
            raise NotFound("sender", sender_id)
        changed = row.state != SenderState.ACTIVE.value
        if changed:
            detail = {
                "sender_id": sender_id,
                "address": row.address,
                "pool": row.pool,
                "was_paused_by": row.paused_by,
                "was_paused_reason": row.paused_reason,
                "operator": operator.id,
            }
            queries.resume_sender(uow.session, sender_id, now)
            record_audit(uow.session, RESUMED, source=operator.source, at=now, detail=detail)
        uow.commit()
        return _one(uow, now, sender_id), changed


def _one(uow: UnitOfWork, now: datetime, sender_id: int) -> SenderView:
    rows = queries.senders_with_activity(uow.session, now, sender_id)
    if not rows:
        raise NotFound("sender", sender_id)
    return _view(rows[0])
