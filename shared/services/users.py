"""Operator changes to one user: attributes, consent (audited, through the one consent service) and
topic subscriptions. Each returns False when the user does not exist, for the API to answer 404."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from shared.db.queries import users as queries
from shared.db.unit_of_work import UnitOfWork
from shared.domain.enums import ConsentState
from shared.domain.errors import InvalidTimezone
from shared.domain.quiet_hours import load_timezone
from shared.services.consent import change_consent

# The one attribute the system itself reads (quiet hours): refused when it names no real zone.
TIMEZONE_ATTRIBUTE = "timezone"


def check_attributes(attributes: Mapping[str, Any]) -> None:
    """Raise `InvalidTimezone` for a `timezone` attribute that is not an IANA zone name."""
    value = attributes.get(TIMEZONE_ATTRIBUTE)
    if value is None:
        return
    if not isinstance(value, str):
        raise InvalidTimezone(
            "the timezone attribute must be an IANA name such as 'Europe/Madrid'",
            field="timezone",
            value=value,
        )
    load_timezone(value)


def save_user(uow: UnitOfWork, phone_e164: str, attributes: Mapping[str, Any], at: datetime) -> bool:
    """Create the user (OPT_OUT until consent is given) or merge in attributes; True when created."""
    check_attributes(attributes)
    created = queries.upsert_user_attributes(uow.session, phone_e164, attributes, at)
    uow.commit()
    return created


def patch_user(uow: UnitOfWork, phone_e164: str, patch: Mapping[str, Any], at: datetime) -> bool:
    """JSON merge patch (RFC 7396) of the attributes: null removes a key."""
    check_attributes(patch)
    set_values = {key: value for key, value in patch.items() if value is not None}
    remove_keys = [key for key, value in patch.items() if value is None]
    found = queries.patch_user_attributes(uow.session, phone_e164, set_values, remove_keys, at)
    uow.commit()
    return found


def set_consent(
    uow: UnitOfWork, phone_e164: str, state: ConsentState, at: datetime, reason: str | None
) -> bool:
    if not queries.user_exists(uow.session, phone_e164):
        return False
    change_consent(
        uow.session, phone_e164, state, source="api", at=at, detail={"reason": reason} if reason else None
    )
    uow.commit()
    return True


def subscribe(uow: UnitOfWork, phone_e164: str, topic: str) -> bool:
    # The user row is locked so a concurrent delete cannot leave the FK check to fail mid-request.
    if not queries.user_exists(uow.session, phone_e164, lock=True):
        return False
    queries.add_subscription(uow.session, phone_e164, topic)
    uow.commit()
    return True


def unsubscribe(uow: UnitOfWork, phone_e164: str, topic: str) -> bool:
    if not queries.user_exists(uow.session, phone_e164):
        return False
    queries.remove_subscription(uow.session, phone_e164, topic)
    uow.commit()
    return True
