"""Consent changes, from every source (inbound keyword, Twilio's OptOutType, a send error that means
the user opted out, the operator API), in one place, each one audited with its source."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from shared.db.audit import record_audit
from shared.db.models import User
from shared.db.queries import send_guard
from shared.domain.enums import ConsentState


def change_consent(
    session: Session,
    phone_e164: str,
    new_state: ConsentState,
    *,
    source: str,
    at: datetime,
    detail: dict[str, Any] | None = None,
    wait_for_sends: bool = True,
    check: Callable[[ConsentState], None] | None = None,
) -> bool:
    """Set a user's consent (creating the user if unknown); returns whether it changed.

    First it waits out every send to this user that is between its consent check and Twilio's answer,
    and keeps new ones out until this transaction commits (shared.db.queries.send_guard): when the caller
    then acknowledges a STOP, no send it should have stopped can still reach Twilio. `wait_for_sends`
    False is for a send that learns of an opt-out from Twilio's own error while it holds that lock: it
    has nothing to wait for, and two such sends waiting on each other would deadlock.

    The row is locked so two concurrent changes (a STOP racing a START) serialize and each is audited
    against the state it really replaced. `check` sees that locked state before anything changes and may
    refuse (raise), which rolls the caller's transaction back (an operator's change, see
    shared.domain.consent_rules).
    """
    if wait_for_sends:
        send_guard.wait_out_sends_to_user(session, phone_e164)
    session.execute(insert(User).values(phone_e164=phone_e164).on_conflict_do_nothing())
    current = session.execute(
        select(User.consent_state).where(User.phone_e164 == phone_e164).with_for_update()
    ).scalar_one()
    if check is not None:
        check(ConsentState(current))
    if current == new_state.value:
        return False
    user = session.get(User, phone_e164)
    assert user is not None
    user.consent_state = new_state.value
    user.consent_updated_at = at
    record_audit(
        session,
        "consent.changed",
        user_phone=phone_e164,
        source=source,
        detail={"from": current, "to": new_state.value, **(detail or {})},
        at=at,
    )
    return True
