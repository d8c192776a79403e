"""POST /2010-04-01/Accounts/{sid}/Messages.json: Twilio's validation rules and its response resource."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from . import twilio_errors as errors
from .twilio_errors import TwilioError

# Twilio checks numbers against its own database; the emulator only checks E.164 shape, so the
# reserved 555 numbers tests use are accepted. 21211 is still returned for anything malformed.
E164 = re.compile(r"\+[1-9]\d{6,14}")
CONTENT_SID = re.compile(r"HX[0-9a-fA-F]{32}")
MAX_BODY_CHARS = 1600


@dataclass(frozen=True)
class Address:
    """A Twilio address: "+E164" for SMS or "whatsapp:+E164"."""

    channel: str | None
    number: str

    @classmethod
    def parse(cls, raw: str) -> Address | None:
        channel, _, number = raw.rpartition(":")
        if channel not in ("", "whatsapp") or not E164.fullmatch(number):
            return None
        return cls(channel or None, number)

    def __str__(self) -> str:
        return f"{self.channel}:{self.number}" if self.channel else self.number


@dataclass(frozen=True)
class NewMessage:
    to: Address
    from_: Address | None
    messaging_service_sid: str | None
    body: str
    content_sid: str | None
    content_variables: dict[str, Any] | None
    status_callback: str | None


def parse_create(form: Mapping[str, str]) -> NewMessage:
    """The accepted request, or the TwilioError Twilio would answer with (checked in Twilio's order)."""
    raw_to, raw_from = form.get("To", ""), form.get("From", "")
    messaging_service_sid = form.get("MessagingServiceSid") or None
    if not raw_to:
        raise TwilioError.of(errors.TO_REQUIRED)
    if not raw_from and not messaging_service_sid:
        raise TwilioError.of(errors.FROM_REQUIRED)
    to = Address.parse(raw_to)
    if to is None:
        raise TwilioError.of(errors.INVALID_TO, to=raw_to)
    from_ = Address.parse(raw_from) if raw_from else None
    if raw_from and from_ is None:
        raise TwilioError.of(errors.INVALID_FROM, from_=raw_from)
    if from_ is not None and from_.channel != to.channel:
        raise TwilioError.of(errors.CHANNEL_MISMATCH)
    body, content_sid = form.get("Body", ""), form.get("ContentSid") or None
    if not body and content_sid is None:
        raise TwilioError.of(errors.BODY_REQUIRED)
    if len(body) > MAX_BODY_CHARS:
        raise TwilioError.of(errors.BODY_TOO_LONG)
    if content_sid is not None and not CONTENT_SID.fullmatch(content_sid):
        raise TwilioError.of(errors.INVALID_CONTENT_SID)
    status_callback = form.get("StatusCallback") or None
    if status_callback is not None and urlsplit(status_callback).scheme not in ("http", "https"):
        raise TwilioError.of(errors.INVALID_STATUS_CALLBACK, url=status_callback)
    return NewMessage(
        to=to,
        from_=from_,
        messaging_service_sid=messaging_service_sid,
        body=body,
        content_sid=content_sid,
        content_variables=_content_variables(form.get("ContentVariables")),
        status_callback=status_callback,
    )


def _content_variables(raw: str | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        variables = json.loads(raw)
    except ValueError:
        variables = None
    if not isinstance(variables, dict):
        raise TwilioError.of(errors.INVALID_CONTENT_VARIABLES)
    return variables
