"""Reading Twilio's own record of what it accepted, for reconciliation: a message whose send answer was lost,
and a message whose status callbacks never came.

`find` lists the messages Twilio holds to one recipient from our sender, newest first, and keeps those
created inside a time window. Twilio's list filters on `To` and `From` exactly; its `DateSent` filters are
whole days and leave out a message that is still queued (no `date_sent` yet), so the window is applied
here, on `date_created`, while the list is read page by page until it is older than the window
(https://www.twilio.com/docs/messaging/api/message-resource, "Read multiple Message resources").
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from shared.adapters.twilio_send import WHATSAPP

PAGE_SIZE = 50
# Twilio lists newest first by send date, so a message still queued may sort a little out of creation
# order: reading stops only after this many messages in a row older than the window.
_OLDER_IN_A_ROW = 20


@dataclass(frozen=True)
class TwilioMessage:
    sid: str
    to: str
    body: str | None
    status: str
    error_code: int | None
    date_created: datetime


class MessageLookup(Protocol):
    def find(
        self, to: str, since: datetime, until: datetime, sender: str | None = None
    ) -> list[TwilioMessage]:
        """Messages to `to` (E.164) created within [since, until] from `sender` (a pool sender: a
        `whatsapp:` number or a Messaging Service SID), or from our configured sender when None."""

    def fetch(self, sid: str) -> TwilioMessage | None:
        """The message as Twilio holds it now; None if Twilio has no such message."""


class TwilioMessageLookup:
    def __init__(self, client: Client, from_: str | None, messaging_service_sid: str | None) -> None:
        self._client = client
        self._from = from_ if not from_ or from_.startswith(WHATSAPP) else WHATSAPP + from_
        self._service = messaging_service_sid

    def find(
        self, to: str, since: datetime, until: datetime, sender: str | None = None
    ) -> list[TwilioMessage]:
        from_, service = self._from, self._service
        if sender is not None:  # a pool message went out from its own sender, not the configured one
            from_, service = (None, sender) if sender.startswith("MG") else (sender, None)
        found = []
        older = 0
        filters: dict[str, str] = {"to": WHATSAPP + to}
        if from_:
            filters["from_"] = from_
        for instance in self._client.messages.stream(page_size=PAGE_SIZE, **filters):
            created = instance.date_created
            if created is None:
                continue
            if created < since:
                older += 1
                if older >= _OLDER_IN_A_ROW:
                    break
                continue
            older = 0
            if created <= until and (from_ or instance.messaging_service_sid == service):
                found.append(_message(instance))
        return found

    def fetch(self, sid: str) -> TwilioMessage | None:
        try:
            return _message(self._client.messages(sid).fetch())
        except TwilioRestException as error:
            if error.status == 404:
                return None
            raise


def _message(instance: object) -> TwilioMessage:
    code = getattr(instance, "error_code", None)
    created = getattr(instance, "date_created", None)
    assert isinstance(created, datetime)
    return TwilioMessage(
        sid=str(getattr(instance, "sid", "")),
        to=str(getattr(instance, "to", "")).removeprefix(WHATSAPP),
        body=getattr(instance, "body", None),
        status=str(getattr(instance, "status", "")),
        error_code=int(code) if code not in (None, "") else None,
        date_created=created,
    )
