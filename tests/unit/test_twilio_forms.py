"""Twilio's webhook forms read into typed values, field by field: present, missing, blank, repeated, malformed
and too large for its column; text the database cannot hold is refused by name before any of that."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from shared.adapters.twilio_forms import (
    InboundMessage,
    StatusCallback,
    inbound_message,
    status_callback,
    status_callback_url,
)
from shared.adapters.twilio_signature import TwilioRequest
from shared.boundary import BIGINT_MAX, INTEGER_MAX, Refused
from shared.domain.inbound_text import Channel

SID = "SM" + "a" * 32
PHONE = "+14155550100"
INBOUND = {"MessageSid": SID, "From": f"whatsapp:{PHONE}", "To": "whatsapp:+14155238886", "Body": "hello"}
STATUS = {"MessageSid": SID, "MessageStatus": "delivered", "To": f"whatsapp:{PHONE}"}
ONE_VALUE = "expected one non-empty value"


def _received(fields: dict[str, Any], query: str = "", raw: str = "") -> TwilioRequest:
    """A form as Twilio posts it (a list value is a repeated field); `raw` is appended unencoded."""
    body = "&".join(part for part in (urlencode(fields, doseq=True), raw) if part)
    return TwilioRequest.parse("application/x-www-form-urlencoded", query.encode(), body.encode())


def _json(body: str, query: str = "") -> TwilioRequest:
    return TwilioRequest.parse("application/json", query.encode(), body.encode())


def _inbound(fields: dict[str, Any], default_region: str = "US") -> InboundMessage:
    return inbound_message(_received(fields), default_region)


def _status(fields: dict[str, Any], message_id: str | None = "7") -> StatusCallback:
    return status_callback(_received(fields, "" if message_id is None else f"message_id={message_id}"))


# --- an inbound message ---


def test_a_well_formed_message_reads_every_field_and_keeps_the_form_as_sent() -> None:
    fields = {**INBOUND, "Body": "  Stop  ", "OptOutType": "STOP", "MediaUrl": ["https://a", "https://b"]}
    assert _inbound(fields) == InboundMessage(
        SID, PHONE, "Stop", "STOP", None, fields, channel=Channel.WHATSAPP, business_number=INBOUND["To"]
    )


def test_whatsapp_fields_wa_id_and_profile_name_are_read_and_the_channel_comes_from_the_prefix() -> None:
    whatsapp = _inbound({**INBOUND, "WaId": "14155550100", "ProfileName": "  Ana María  "})
    sms = _inbound({**INBOUND, "From": PHONE})

    assert (whatsapp.wa_id, whatsapp.profile_name, whatsapp.channel) == (
        "14155550100",
        "Ana María",
        Channel.WHATSAPP,
    )
    assert (sms.sender, sms.wa_id, sms.profile_name, sms.channel) == (PHONE, None, None, Channel.SMS)


@pytest.mark.parametrize(
    "value", [None, "", "   ", [SID, SID + "b"]], ids=["missing", "empty", "blank", "twice"]
)
def test_a_message_sid_missing_blank_or_repeated_is_the_problem(value: Any) -> None:
    fields = {**INBOUND, "MessageSid": value} if value is not None else _without(INBOUND, "MessageSid")
    message = _inbound(fields)
    assert (message.message_sid, message.problem) == (None, f"MessageSid: {ONE_VALUE}")
    assert message.sender == PHONE  # still kept with the event


@pytest.mark.parametrize("value", [None, " ", [f"whatsapp:{PHONE}"] * 2], ids=["missing", "blank", "twice"])
def test_a_sender_missing_blank_or_repeated_is_the_problem(value: Any) -> None:
    fields = {**INBOUND, "From": value} if value is not None else _without(INBOUND, "From")
    message = _inbound(fields)
    assert (message.sender, message.problem) == (None, f"From: {ONE_VALUE}")


@pytest.mark.parametrize(
    ("value", "phone"),
    [(f"whatsapp:{PHONE}", PHONE), (PHONE, PHONE), ("WhatsApp: (415) 555-0100", PHONE)],
)
def test_a_sender_is_read_as_e164_with_or_without_the_whatsapp_prefix(value: str, phone: str) -> None:
    assert _inbound({**INBOUND, "From": value}).sender == phone


@pytest.mark.parametrize("value", ["whatsapp:not-a-number", "whatsapp:+1" + "9" * 40])
def test_a_sender_that_is_no_phone_number_is_the_problem_in_the_phone_rules_words(value: str) -> None:
    message = _inbound({**INBOUND, "From": value})
    assert message.sender is None
    assert message.problem is not None and message.problem.startswith("From: ")
    assert message.problem != f"From: {ONE_VALUE}"


def test_an_unknown_default_region_makes_every_local_number_the_problem() -> None:
    message = _inbound({**INBOUND, "From": "(415) 555-0100"}, default_region="XX")
    assert message.problem == "From: unknown default region 'XX' (expected an ISO 3166 code such as US)"


def test_the_message_sid_is_named_before_the_sender() -> None:
    assert _inbound({"Body": "hi"}).problem == f"MessageSid: {ONE_VALUE}"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("Body", None),
        ("Body", "  "),
        ("Body", ["a", "b"]),
        ("OptOutType", None),
        ("OptOutType", ["STOP"] * 2),
    ],
)
def test_body_and_opt_out_type_are_optional_and_none_unless_given_once(name: str, value: Any) -> None:
    fields = {**INBOUND, name: value} if value is not None else _without(INBOUND, name)
    message = _inbound(fields)
    assert (message.body if name == "Body" else message.opt_out_type) is None
    assert message.problem is None


def test_an_inbound_json_body_is_read_like_a_form_and_text_fields_must_be_text() -> None:
    message = inbound_message(_json(json.dumps({**INBOUND, "Body": 42})), "US")
    assert (message.message_sid, message.sender, message.body, message.problem) == (SID, PHONE, None, None)
    assert message.raw == {**INBOUND, "Body": 42}


def test_an_inbound_json_body_that_is_no_object_is_kept_whole_and_names_the_missing_sid() -> None:
    message = inbound_message(_json("[1, 2"), "US")
    assert (message.raw, message.problem) == ({"_body": "[1, 2"}, f"MessageSid: {ONE_VALUE}")


# --- a status callback ---


def test_a_well_formed_callback_reads_every_field_and_keeps_the_form_and_query_as_sent() -> None:
    fields = {**STATUS, "MessageStatus": " failed ", "ErrorCode": "30008"}
    callback = status_callback(_received(fields, "message_id=7&region=eu"))
    raw = {**fields, "_query": {"message_id": "7", "region": "eu"}}
    assert callback == StatusCallback(SID, "failed", 30008, 7, None, raw)


def test_a_callback_without_a_query_keeps_no_query_and_matches_by_sid_alone() -> None:
    callback = _status(STATUS, message_id=None)
    assert (callback.message_id, callback.problem, callback.raw) == (None, None, STATUS)


@pytest.mark.parametrize("name", ["MessageSid", "MessageStatus"])
@pytest.mark.parametrize("value", [None, "", " ", ["a", "b"]], ids=["missing", "empty", "blank", "twice"])
def test_a_sid_or_status_missing_blank_or_repeated_is_the_problem(name: str, value: Any) -> None:
    fields = {**STATUS, name: value} if value is not None else _without(STATUS, name)
    assert _status(fields).problem == f"{name}: {ONE_VALUE}"


@pytest.mark.parametrize(
    ("error_code", "message_id", "field", "got"),
    [
        ("thirty", "7", "ErrorCode", "'thirty'"),
        (str(INTEGER_MAX + 1), "7", "ErrorCode", f"'{INTEGER_MAX + 1}'"),
        ("9" * 5000, "7", "ErrorCode", f"'{'9' * 5000}'"),
        ("-1", "7", "ErrorCode", "'-1'"),
        ("²", "7", "ErrorCode", "'²'"),
        (" ", "7", "ErrorCode", "' '"),
        (["1", "2"], "7", "ErrorCode", "['1', '2']"),
        (None, "abc", "message_id", "'abc'"),
        (None, str(BIGINT_MAX + 1), "message_id", f"'{BIGINT_MAX + 1}'"),
        (None, "9" * 23, "message_id", f"'{'9' * 23}'"),
    ],
)
def test_a_number_no_column_holds_is_the_problem_quoting_what_came(
    error_code: Any, message_id: str, field: str, got: str
) -> None:
    fields = STATUS if error_code is None else {**STATUS, "ErrorCode": error_code}
    callback = _status(fields, message_id)
    maximum = INTEGER_MAX if field == "ErrorCode" else BIGINT_MAX
    assert callback.problem == f"{field}: expected an integer from 0 to {maximum}, got {got}"
    assert (callback.error_code, callback.message_id) == (None, None if field == "message_id" else 7)


def test_the_largest_numbers_the_columns_hold_are_read() -> None:
    callback = _status({**STATUS, "ErrorCode": str(INTEGER_MAX)}, str(BIGINT_MAX))
    assert (callback.error_code, callback.message_id, callback.problem) == (INTEGER_MAX, BIGINT_MAX, None)


def test_an_empty_error_code_or_message_id_is_absent_not_a_problem() -> None:
    callback = _status({**STATUS, "ErrorCode": ""}, "")
    assert (callback.error_code, callback.message_id, callback.problem) == (None, None, None)


def test_a_repeated_message_id_is_the_problem() -> None:
    callback = status_callback(_received(STATUS, "message_id=7&message_id=8"))
    assert callback.problem == f"message_id: expected an integer from 0 to {BIGINT_MAX}, got ['7', '8']"


def test_problems_are_named_in_a_fixed_order_sid_status_error_code_message_id() -> None:
    everything_wrong = {"ErrorCode": "x"}
    assert _status(everything_wrong, "y").problem == f"MessageSid: {ONE_VALUE}"
    assert _status({**everything_wrong, "MessageSid": SID}, "y").problem == f"MessageStatus: {ONE_VALUE}"
    assert (_status({**STATUS, **everything_wrong}, "y").problem or "").startswith("ErrorCode:")


def test_a_json_error_code_must_be_text_as_twilio_sends_it() -> None:
    callback = status_callback(_json(json.dumps({**STATUS, "ErrorCode": 30008})))
    assert callback.problem == f"ErrorCode: expected an integer from 0 to {INTEGER_MAX}, got 30008"


# --- the boundary rule, before any field is read ---


@pytest.mark.parametrize(
    ("raw", "field"),
    [("Body=%00", "Body"), ("Body=%ED%A0%80", "Body"), ("Body=%FF%FE", "Body"), ("X%00=1", "X\x00")],
)
@pytest.mark.parametrize("read", [status_callback, lambda received: inbound_message(received, "US")])
def test_text_the_database_cannot_hold_is_refused_naming_the_field(raw: str, field: str, read: Any) -> None:
    with pytest.raises(Refused) as refused:
        read(_received(INBOUND | STATUS, raw=raw))
    assert refused.value.field == field


@pytest.mark.parametrize("read", [status_callback, lambda received: inbound_message(received, "US")])
def test_query_text_the_database_cannot_hold_is_refused_at_both_doors(read: Any) -> None:
    with pytest.raises(Refused) as refused:
        read(_received(INBOUND | STATUS, query="message_id=7&note=%00"))
    assert refused.value.field == "query.note"


def test_json_the_database_cannot_hold_is_refused_naming_where() -> None:
    with pytest.raises(Refused) as refused:
        status_callback(_json('{"MessageSid": "SM1", "Body": "\\u0000"}'))
    assert refused.value.field == "body.Body"


# --- the URL that brings our message id back ---


def test_status_callback_url_carries_the_message_id_and_keeps_an_existing_query() -> None:
    base = "https://hooks.example.test/status_webhook"
    assert status_callback_url(base, 42) == f"{base}?message_id=42"
    with_query = status_callback_url(f"{base}?region=eu", 42)
    assert parse_qs(urlsplit(with_query).query) == {"region": ["eu"], "message_id": ["42"]}
    assert status_callback(_received(STATUS, urlsplit(with_query).query)).message_id == 42


def _without(fields: dict[str, str], name: str) -> dict[str, str]:
    return {key: value for key, value in fields.items() if key != name}
