"""WhatsApp's 24-hour customer-care window: what a message may carry at the moment it is sent.

Inside 24 h of the user's last inbound message, free-form `Body` is allowed; outside it only an approved
template (`ContentSid` + `ContentVariables`) is. With neither, the message is withheld (Twilio would
reject it with 63016).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

SESSION_WINDOW = timedelta(hours=24)
NO_TEMPLATE_REASON = "outside the 24-hour window and the template has no content_sid"


@dataclass(frozen=True)
class FreeForm:
    body: str


@dataclass(frozen=True)
class ApprovedTemplate:
    content_sid: str
    content_variables: dict[str, str]


@dataclass(frozen=True)
class Withheld:
    reason: str


Payload = FreeForm | ApprovedTemplate | Withheld


def choose_payload(
    now: datetime,
    last_inbound_at: datetime | None,
    body: str | None,
    content_sid: str | None,
    content_variables: dict[str, str] | None,
) -> Payload:
    if body is not None and last_inbound_at is not None and now - last_inbound_at < SESSION_WINDOW:
        return FreeForm(body)
    if content_sid:
        return ApprovedTemplate(content_sid, dict(content_variables or {}))
    return Withheld(NO_TEMPLATE_REASON)
