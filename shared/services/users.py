"""Operator reads and changes of users: one user, a search, adding one, attributes, consent (audited with
the operator, reason and masked phone, through the one consent service, under the operator rules of
shared.domain.consent_rules) and topic subscriptions. A change to a user who does not exist raises
`NotFound`; each change returns the user as it now is."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from pydantic import Field, StringConstraints
from sqlalchemy import Row

from shared.db.pagination import Page, decode_cursor, page_of
from shared.db.queries import users as queries
from shared.db.unit_of_work import UnitOfWork
from shared.domain.consent_rules import check_operator_change
from shared.domain.enums import ConsentState
from shared.domain.errors import Conflict, InvalidTimezone, NotFound
from shared.domain.phones import try_normalize_phone
from shared.domain.quiet_hours import load_timezone
from shared.log import mask_phone
from shared.services.consent import change_consent
from shared.services.inputs import RequestModel

# The one attribute the system itself reads (quiet hours): refused when it names no real zone.
TIMEZONE_ATTRIBUTE = "timezone"

# A user with their topics, as shared.db.queries.users reads one.
UserRow = Row[Any]


# Text an operator writes into the audit trail: blank is no text.
AuditText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]


class ConsentChange(RequestModel):
    consent_state: ConsentState
    reason: AuditText = Field(description="Why the operator changes it; required, kept in the audit trail.")
    evidence: AuditText | None = Field(
        default=None,
        description="Evidence of the user's new consent (a signed form's reference, ...); required to move "
        "a user out of STOP, kept in the audit trail.",
    )


@dataclass(frozen=True)
class Operator:
    """Who asks: `source` is the door (api, dashboard), `id` the token's id from
    shared.domain.consent_rules.operator_id (None when the door could not say)."""

    source: str
    id: str | None


class UserExists(Conflict):
    code = "user_exists"


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


def get_user(uow: UnitOfWork, phone_e164: str) -> UserRow:
    with uow:
        return _user(uow, phone_e164)


def list_users(
    uow: UnitOfWork, *, limit: int, cursor: str | None, consent_state: ConsentState | None, q: str | None
) -> Page[UserRow]:
    """By phone; `q` matches phone digits or attribute text."""
    after = decode_cursor(cursor, [str])
    with uow:
        rows = queries.list_users(
            uow.session,
            consent_state=consent_state,
            q=q,
            after_phone=after[0] if after else None,
            limit=limit + 1,
        )
    return page_of(rows, limit, key=lambda row: [row.phone_e164])


def existing_phone(uow: UnitOfWork, text: str, default_region: str) -> str | None:
    """The search text as the phone of an existing user, in whatever format it was typed; else None."""
    e164, _ = try_normalize_phone(text, default_region)
    if e164 is None:
        return None
    with uow:
        return e164 if queries.user_exists(uow.session, e164) else None


def save_user(
    uow: UnitOfWork, phone_e164: str, attributes: Mapping[str, Any], at: datetime
) -> tuple[UserRow, bool]:
    """Create the user (OPT_OUT until consent is given) or merge in attributes; True when created."""
    check_attributes(attributes)
    with uow:
        created = queries.upsert_user_attributes(uow.session, phone_e164, attributes, at)
        uow.commit()
        return _user(uow, phone_e164), created


def add_user(
    uow: UnitOfWork,
    phone_e164: str,
    attributes: Mapping[str, Any],
    consent: ConsentChange | None,
    at: datetime,
    operator: Operator,
) -> UserRow:
    """A new user (the dashboard's form): refused with `UserExists` when the phone is taken. Consent is
    OPT_OUT unless `consent` says otherwise, which is then an audited change like any other."""
    check_attributes(attributes)
    with uow:
        if not queries.insert_user(uow.session, phone_e164, attributes, at):
            raise UserExists(f"user {phone_e164} already exists", field="phone", value=phone_e164)
        if consent is not None:
            _change_consent(uow, phone_e164, consent, at, operator, created=True)
        uow.commit()
        return _user(uow, phone_e164)


def patch_user(uow: UnitOfWork, phone_e164: str, patch: Mapping[str, Any], at: datetime) -> UserRow:
    """JSON merge patch (RFC 7396) of the attributes: null removes a key."""
    check_attributes(patch)
    set_values = {key: value for key, value in patch.items() if value is not None}
    remove_keys = [key for key, value in patch.items() if value is None]
    with uow:
        if not queries.patch_user_attributes(uow.session, phone_e164, set_values, remove_keys, at):
            raise NotFound("user", phone_e164)
        uow.commit()
        return _user(uow, phone_e164)


def set_consent(
    uow: UnitOfWork, phone_e164: str, change: ConsentChange, at: datetime, operator: Operator
) -> UserRow:
    """Raises `ConsentRefused` (409) for a change the operator rules refuse; nothing is written then."""
    with uow:
        _must_exist(uow, phone_e164)
        _change_consent(uow, phone_e164, change, at, operator)
        uow.commit()
        return _user(uow, phone_e164)


def _change_consent(
    uow: UnitOfWork,
    phone_e164: str,
    change: ConsentChange,
    at: datetime,
    operator: Operator,
    *,
    created: bool = False,
) -> None:
    detail: dict[str, Any] = {
        "reason": change.reason,
        "operator": operator.id,
        # The row's user_phone is the key the trail is read by; the detail, which is what gets copied
        # into reports and tickets, carries the phone masked as the logs do.
        "phone": mask_phone(phone_e164),
    }
    if change.evidence:
        detail["evidence"] = change.evidence
    if created:
        detail["created"] = True
    change_consent(
        uow.session,
        phone_e164,
        change.consent_state,
        source=operator.source,
        at=at,
        detail=detail,
        check=lambda current: check_operator_change(current, change.consent_state, evidence=change.evidence),
    )


def subscribe(uow: UnitOfWork, phone_e164: str, topic: str) -> UserRow:
    with uow:
        # The user row is locked so a concurrent delete cannot leave the FK check to fail mid-request.
        _must_exist(uow, phone_e164, lock=True)
        queries.add_subscription(uow.session, phone_e164, topic)
        uow.commit()
        return _user(uow, phone_e164)


def unsubscribe(uow: UnitOfWork, phone_e164: str, topic: str) -> UserRow:
    with uow:
        _must_exist(uow, phone_e164)
        queries.remove_subscription(uow.session, phone_e164, topic)
        uow.commit()
        return _user(uow, phone_e164)


def _must_exist(uow: UnitOfWork, phone_e164: str, *, lock: bool = False) -> None:
    if not queries.user_exists(uow.session, phone_e164, lock=lock):
        raise NotFound("user", phone_e164)


def _user(uow: UnitOfWork, phone_e164: str) -> UserRow:
    row = queries.get_user(uow.session, phone_e164)
    if row is None:
        raise NotFound("user", phone_e164)
    return row
