"""receive_inbound_message on real PostgreSQL, given the message as the webhook reads it (InboundMessage):
the service acts on the typed fields and keeps the raw form it is handed."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from urllib.parse import urlencode

from sqlalchemy import Engine, text

from shared.adapters.twilio_forms import InboundMessage, inbound_message
from shared.adapters.twilio_signature import TwilioRequest
from shared.clock import FixedClock
from shared.db.unit_of_work import UnitOfWork
from shared.outcome import Outcome, Result
from shared.services.inbound import ReplyTexts, receive_inbound_message

PHONE = "+14155550100"
AT = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
REPLIES = ReplyTexts(stop="bye", start="welcome back", help="ask us", auto=None)
RAW = {"MessageSid": "SM1", "From": f"whatsapp:{PHONE}", "Body": " stop ", "Extra": ["a", "b"]}
STOP = InboundMessage("SM1", PHONE, "stop", None, None, RAW)


def _receive(engine: Engine, message: InboundMessage) -> Result:
    return receive_inbound_message(
        UnitOfWork(engine), message, idempotency_token="tok", replies=REPLIES, clock=FixedClock(AT)
    )


def _event(engine: Engine) -> tuple[str | None, str | None, str | None, object, str]:
    with engine.connect() as conn:
        row = conn.execute(
            text("SELECT message_sid, from_phone, body, raw_payload, outcome FROM events_inbound")
        ).one()
    return row.message_sid, row.from_phone, row.body, row.raw_payload, row.outcome


def _users(engine: Engine) -> list[tuple[str, str, datetime | None]]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT phone_e164, consent_state, last_inbound_at FROM users"))
        return [(r.phone_e164, r.consent_state, r.last_inbound_at) for r in rows]


def test_a_stop_read_from_the_form_stops_the_sender_confirms_and_keeps_the_raw_form(engine: Engine) -> None:
    result = _receive(engine, STOP)
    assert (result.outcome, result.reason) == (Outcome.DONE, "consent:STOP")
    assert result.twiml is not None and "<Message>bye</Message>" in result.twiml
    assert _event(engine) == ("SM1", PHONE, "stop", RAW, "consent:STOP")
    assert _users(engine) == [(PHONE, "STOP", AT)]


def test_twilios_opt_out_type_is_followed_over_the_body(engine: Engine) -> None:
    result = _receive(engine, replace(STOP, body="hello", opt_out_type="START"))
    assert (result.outcome, result.reason) == (Outcome.DONE, "consent:OPT_IN")
    assert _users(engine) == [(PHONE, "OPT_IN", AT)]


def test_a_message_read_with_a_problem_is_kept_answered_malformed_and_touches_no_user(engine: Engine) -> None:
    message = replace(STOP, message_sid=None, problem="MessageSid: expected one non-empty value")
    result = _receive(engine, message)
    assert (result.outcome, result.reason) == (Outcome.MALFORMED, "MessageSid: expected one non-empty value")
    assert _event(engine) == (None, PHONE, "stop", RAW, "rejected:MessageSid: expected one non-empty value")
    assert _users(engine) == []


def test_the_same_message_twice_is_one_event_and_the_same_answer(engine: Engine) -> None:
    first, second = _receive(engine, STOP), _receive(engine, replace(STOP, body="hello"))
    assert second == first
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM events_inbound")).scalar_one() == 1


def test_the_business_number_written_to_opens_that_senders_window_only(engine: Engine) -> None:
    business = "whatsapp:+14155550199"
    hello = replace(STOP, message_sid="SM2", body="hello", business_number=business)
    _receive(engine, hello)
    later = replace(hello, message_sid="SM3")
    receive_inbound_message(
        UnitOfWork(engine),
        later,
        idempotency_token=None,
        replies=REPLIES,
        clock=FixedClock(AT.replace(hour=11)),
    )

    with engine.connect() as conn:
        rows = conn.execute(text("SELECT user_phone, sender, last_inbound_at FROM user_senders")).all()
    # A webhook delivered late never moves the window back.
    assert [tuple(r) for r in rows] == [(PHONE, business, AT)]


def test_the_to_field_is_read_as_a_business_number_only_when_it_is_a_whatsapp_address() -> None:
    def read(to: str) -> str | None:
        form = urlencode({"MessageSid": "SM1", "From": f"whatsapp:{PHONE}", "To": to, "Body": "hi"}).encode()
        received = TwilioRequest.parse("application/x-www-form-urlencoded", b"", form)
        return inbound_message(received, "US").business_number

    assert read("whatsapp:+14155550199") == "whatsapp:+14155550199"
    assert read("+14155550199") is None  # SMS: no WhatsApp window
    assert read("whatsapp:not-a-number") is None
