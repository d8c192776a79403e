"""Twilio's two webhooks read once, after their signature is checked, into the typed values the services
take: `InboundMessage` and `StatusCallback`.

Every field is first held to the boundary rule (a field the database cannot hold is `Refused`, a 400 that
writes nothing). Past that, a signed event is evidence even when we cannot act on it: a field that is
missing, repeated or not what Twilio documents does not raise but becomes the value's `problem`, the reason
Twilio is answered 400 with, and the raw form is still kept (events_inbound, delivery_receipts), so an
operator can see what came. Only the first problem is named, in a fixed order, so a redelivery of the same
bad event gets the same answer.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

from shared.adapters.twilio_signature import TwilioRequest
from shared.boundary import BIGINT_MAX, INTEGER_MAX, NotJson, check_fields, parse_json, whole_number
from shared.domain.inbound_text import Channel, channel_of
from shared.domain.phones import try_normalize_phone

E164_ADDRESS = re.compile(r"\+[1-9][0-9]{6,14}")

MESSAGE_ID_PARAM = "message_id"
_ONE_VALUE = "expected one non-empty value"


def status_callback_url(base: str, message_id: int) -> str:
    """The StatusCallback for one message: `base` plus our message id, so a callback can be matched even
    when the create response (and with it the SID) was lost. `StatusCallback.message_id` reads it back."""
    separator = "&" if urlsplit(base).query else "?"
    return f"{base}{separator}{urlencode({MESSAGE_ID_PARAM: message_id})}"


@dataclass(frozen=True, slots=True)
class InboundMessage:
    message_sid: str | None
    sender: str | None  # From, as E.164 (`whatsapp:` taken off); None when missing or not a phone number
    body: str | None  # stripped; None when missing, blank or repeated
    opt_out_type: str | None  # Twilio's Advanced Opt-Out verdict (STOP, START, HELP), when it sends one
    problem: str | None  # the first field we cannot act on, as answered (400); None: a message to act on
    raw: Mapping[str, Any]  # every field as sent, for events_inbound.raw_payload
    # WhatsApp's own fields of the inbound webhook, "WaId" (the sender's WhatsApp id) and "ProfileName" (the
    # name on their WhatsApp profile): https://www.twilio.com/docs/messaging/guides/webhook-request
    # (its WhatsApp parameters). Absent on SMS; kept as sent, stripped.
    wa_id: str | None = None
    profile_name: str | None = None
    channel: Channel | None = None  # from From's prefix: whatsapp:+E164 or a bare number (SMS)
    # The business number written to (To), as `whatsapp:+E164`, when it is one: WhatsApp's 24-hour window
    # belongs to this (number, user) pair (docs/architecture.md, "Sender pools").
    business_number: str | None = None


@dataclass(frozen=True, slots=True)
class StatusCallback:
    message_sid: str | None
    message_status: str | None  # as Twilio names it: sent, delivered, read, failed, ...
    error_code: int | None  # ErrorCode, within the INTEGER column it goes to
    message_id: int | None  # ours, from the StatusCallback URL's query, within its BIGINT column
    problem: str | None  # the first field we cannot act on, as answered (400); None: a callback to act on
    raw: Mapping[str, Any]  # every field as sent, the URL's query under `_query`, for delivery_receipts


def inbound_message(received: TwilioRequest, default_region: str) -> InboundMessage:
    """Raises `Refused` naming a field the database could not hold; any other bad field is `problem`."""
    fields = _form_fields(received)
    _query_fields(received)  # not kept, but held to the same rule as the status callback's
    message_sid = _one(fields, "MessageSid")
    sender, sender_problem = _sender(fields, default_region)
    problem = _first(None if message_sid else f"MessageSid: {_ONE_VALUE}", sender_problem)
    body, opt_out_type = _one(fields, "Body"), _one(fields, "OptOutType")
    return InboundMessage(
        message_sid,
        sender,
        body,
        opt_out_type,
        problem,
        fields,
        wa_id=_one(fields, "WaId"),
        profile_name=_one(fields, "ProfileName"),
        channel=channel_of(_one(fields, "From")),
        business_number=_whatsapp_address(_one(fields, "To")),
    )


def _whatsapp_address(value: str | None) -> str | None:
    if value is None or not value.startswith("whatsapp:") or not E164_ADDRESS.fullmatch(value[9:]):
        return None
    return value


def status_callback(received: TwilioRequest) -> StatusCallback:
    """Raises `Refused` naming a field the database could not hold; any other bad field is `problem`."""
    fields = _form_fields(received)
    query = _query_fields(received)
    message_sid = _one(fields, "MessageSid")
    message_status = _one(fields, "MessageStatus")
    error_code, code_problem = _whole_number(fields, "ErrorCode", INTEGER_MAX)
    message_id, id_problem = _whole_number(query, MESSAGE_ID_PARAM, BIGINT_MAX)
    problem = _first(
        None if message_sid else f"MessageSid: {_ONE_VALUE}",
        None if message_status else f"MessageStatus: {_ONE_VALUE}",
        code_problem,
        id_problem,
    )
    # The callback URL's query (our message id) is part of what Twilio sent; keep it with the rest.
    raw = {**fields, "_query": query} if query else fields
    return StatusCallback(message_sid, message_status, error_code, message_id, problem, raw)


def _form_fields(received: TwilioRequest) -> dict[str, Any]:
    """Every field as sent, for the raw record: a repeated field keeps all its values as a list. A JSON
    body that is not an object (or not JSON) is kept whole under `_body`, so the record still shows what
    came. Raises `Refused` naming a field the database could not hold."""
    if received.form is not None:
        check_fields(received.form)
        return _flatten(received.form)
    try:
        parsed = parse_json(received.body, "body")
    except NotJson:
        parsed = None
    if isinstance(parsed, dict):
        return parsed
    # parse_json vouched for the text, or it is kept as the raw text it is (checked here).
    text = received.body.decode("utf-8", "surrogateescape")
    check_fields([("body", text)])
    return {"_body": text}


def _query_fields(received: TwilioRequest) -> dict[str, Any]:
    check_fields(received.query, "query")
    return _flatten(received.query)


def _flatten(fields: Iterable[tuple[str, str]]) -> dict[str, Any]:
    grouped: dict[str, list[str]] = {}
    for name, value in fields:
        grouped.setdefault(name, []).append(value)
    return {name: values[0] if len(values) == 1 else values for name, values in grouped.items()}


def _one(fields: Mapping[str, Any], name: str) -> str | None:
    """A field that must appear once, stripped: None when missing, blank, repeated or not text (JSON)."""
    value = fields.get(name)
    return value.strip() if isinstance(value, str) and value.strip() else None


def _sender(fields: Mapping[str, Any], default_region: str) -> tuple[str | None, str | None]:
    raw = _one(fields, "From")
    if raw is None:
        return None, f"From: {_ONE_VALUE}"
    phone, reason = try_normalize_phone(raw, default_region)
    return phone, None if phone else f"From: {reason}"


def _whole_number(fields: Mapping[str, Any], name: str, maximum: int) -> tuple[int | None, str | None]:
    """An optional field holding an integer from 0 to `maximum` (the column it goes to): missing or empty is
    None and no problem; anything else that is not such a number is a problem quoting what came."""
    if fields.get(name) in (None, ""):
        return None, None
    value = _one(fields, name)
    number = None if value is None else whole_number(value, maximum)
    if number is None:
        return None, f"{name}: expected an integer from 0 to {maximum}, got {fields[name]!r}"
    return number, None


def _first(*problems: str | None) -> str | None:
    for problem in problems:
        if problem:
            return problem
    return None
