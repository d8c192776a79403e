"""The per-user frequency caps as an operator sets them (docs/architecture.md, "Operating senders and
caps"): at most `max_messages` marketing messages to one user in any `window_hours`, across campaigns.
The list is read and replaced whole; no caps at all is an empty list. A replacement is audited
(`frequency_caps.changed`, with the caps before and after, the door and the operator)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from pydantic import Field

from shared.clock import Clock
from shared.db.audit import record_audit
from shared.db.queries import sender_admin as queries
from shared.db.unit_of_work import UnitOfWork
from shared.domain.errors import DomainError
from shared.services.inputs import RequestModel
from shared.services.users import Operator

CHANGED = "frequency_caps.changed"
HOUR = 3600
# A year, leap day included: the longest window the schema takes (window_seconds <= 31622400).
MAX_WINDOW_HOURS = 8784
MAX_CAPS = 20


class FrequencyCapIn(RequestModel):
    max_messages: Annotated[
        int, Field(ge=1, le=1000, description="At most this many marketing messages to one user ...")
    ]
    window_hours: Annotated[
        int, Field(ge=1, le=MAX_WINDOW_HOURS, description="... in any rolling window of this many hours.")
    ]


class FrequencyCapsIn(RequestModel):
    caps: list[FrequencyCapIn] = Field(
        max_length=MAX_CAPS, description="Every cap, each with a different window; [] removes them all."
    )


class DuplicateWindow(DomainError):
    code = "duplicate_window"


@dataclass(frozen=True)
class FrequencyCapView:
    max_messages: int
    window_hours: int


def get_caps(uow: UnitOfWork) -> list[FrequencyCapView]:
    with uow:
        return _views(queries.frequency_caps(uow.session))


def replace_caps(
    uow: UnitOfWork, clock: Clock, values: FrequencyCapsIn, operator: Operator
) -> list[FrequencyCapView]:
    """Two caps with the same window are refused (`DuplicateWindow`, 400, naming the second row)."""
    seen: dict[int, int] = {}
    for row, cap in enumerate(values.caps):
        if cap.window_hours in seen:
            field = f"caps[{row}].window_hours"
            raise DuplicateWindow(
                f"{field}: caps[{seen[cap.window_hours]}] already has a {cap.window_hours}-hour window; "
                "give each window once",
                field=field,
                row=row,
                value=cap.window_hours,
            )
        seen[cap.window_hours] = row
    after = sorted(((cap.max_messages, cap.window_hours * HOUR) for cap in values.caps), key=lambda c: c[1])
    now = clock.now()
    with uow:
        queries.lock_frequency_caps(uow.session)
        before = queries.frequency_caps(uow.session)
        queries.replace_frequency_caps(uow.session, after, now)
        record_audit(
            uow.session,
            CHANGED,
            source=operator.source,
            at=now,
            detail={"before": _detail(before), "after": _detail(after), "operator": operator.id},
        )
        uow.commit()
        return _views(queries.frequency_caps(uow.session))


def _views(caps: list[tuple[int, int]]) -> list[FrequencyCapView]:
    return [FrequencyCapView(max_messages=n, window_hours=w // HOUR) for n, w in caps]


def _detail(caps: list[tuple[int, int]]) -> list[dict[str, int]]:
    return [{"max_messages": n, "window_hours": w // HOUR} for n, w in caps]
