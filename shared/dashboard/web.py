"""What every dashboard view shares: field-level form errors, notices carried across a redirect, and who is
signing in. What a view hands the services (settings, clock, units of work, the publisher) comes from the
process's runtime, `shared.bootstrap.runtime()`, as the API's handlers get it through their context."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from ipaddress import ip_address, ip_network
from typing import Any, TypeVar

from flask import Request, request
from pydantic import ValidationError

from shared.domain.errors import DomainError

# Notices a redirect may name (?notice=...): a fixed list, so a crafted link cannot put words on a page.
NOTICES = {
    "created": "Created.",
    "saved": "Saved.",
    "triggered": "Campaign triggered: its audience is frozen and sending has started.",
    "paused": "Campaign paused: no new send starts.",
    "resumed": "Campaign resumed.",
    "cancelled": "Campaign cancelled: everything not yet sent is withheld.",
    "ready": "Campaign is READY: the scheduler starts it at its schedule time.",
    "consent": "Consent changed (recorded in the audit trail).",
    "sender_added": "Sender added (recorded in the audit trail).",
    "sender_paused": "Sender paused: no send goes out from it until it is resumed.",
    "sender_resumed": "Sender resumed.",
    "caps_saved": "Frequency caps saved (recorded in the audit trail).",
}


E = TypeVar("E", bound=StrEnum)


def enum_arg(kind: type[E], name: str) -> E | None:
    """A query-string filter such as ?status=RUNNING; anything else means no filter."""
    value = request.args.get(name, "")
    return kind(value) if value in kind.__members__ else None


def client_address(request: Request) -> str:
    """Who is signing in, for the throttle. Behind Google's front end the socket's peer is the front end;
    the client is the address the front end appended to X-Forwarded-For, its last entry (entries before it
    came from the client, who can write anything there). Locally there is no such header: the peer is the
    client. An IPv6 client is counted by its /64, which one subscriber usually holds whole."""
    forwarded = request.headers.get("X-Forwarded-For", "")
    candidate = forwarded.rsplit(",", 1)[-1].strip() if forwarded else request.remote_addr or ""
    try:
        address = ip_address(candidate)
    except ValueError:
        return "unknown"
    if address.version == 6:
        return str(ip_network(f"{address}/64", strict=False))
    return str(address)


def notice() -> str | None:
    return NOTICES.get(request.args.get("notice", ""))


@dataclass
class FormErrors:
    fields: dict[str, str] = field(default_factory=dict)
    general: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.fields or self.general)


def form_errors(exc: ValidationError | DomainError) -> FormErrors:
    """Each problem under the form field it is about, or as a general error when it names none."""
    errors = FormErrors()
    if isinstance(exc, ValidationError):
        for error in exc.errors(include_url=False, include_context=False, include_input=False):
            _add(errors, str(error["loc"][0]) if error["loc"] else None, error["msg"])
        return errors
    details: dict[str, Any] = exc.details
    where = details.get("field") or ("definition" if "path" in details else None)
    # A field inside a form field (content_variables.1, definition.conditions[0]) shows under that one.
    _add(errors, where and re.split(r"[.\[]", where, maxsplit=1)[0], exc.message)
    return errors


def _add(errors: FormErrors, name: str | None, message: str) -> None:
    if name:
        errors.fields.setdefault(name, message)
    else:
        errors.general.append(message)
