"""The webhooks on the running local stack: the real twilio SDK sends through the Twilio emulator, whose
signed callbacks reach status_webhook over HTTP; its inbound endpoint plays a user writing to us."""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests
from sqlalchemy import Engine, text

from shared.adapters.twilio_client import make_twilio_client
from shared.adapters.twilio_forms import status_callback_url
from shared.domain.phones import whatsapp_address
from tests.functions.twilio_webhook_client import seed_campaign_message

PHONE = "+14155550123"
# Callbacks arrive within a fraction of a second locally; this only bounds a broken run.
DEADLINE_SECONDS = 30.0

e2e = pytest.mark.e2e


def send_through_twilio(env: dict[str, str], message_id: int) -> str:
    client = make_twilio_client(
        env["TWILIO_ACCOUNT_SID"], env["TWILIO_AUTH_TOKEN"], env.get("TWILIO_API_URL")
    )
    created = client.messages.create(
        to=whatsapp_address(PHONE),
        from_=env["TWILIO_FROM"],
        body="Hi",
        status_callback=status_callback_url(env["STATUS_WEBHOOK_URL"], message_id),
    )
    assert created.sid is not None
    return str(created.sid)


def wait_for_message(engine: Engine, message_id: int, status: str, receipts: int) -> Any:
    """The message row once it has `status` and `receipts` callbacks recorded (or fail at the deadline).
    Only Twilio's callbacks count: the stack's sweeper may also look an AMBIGUOUS message up at Twilio
    and record what it found, a receipt of its own (source "reconciliation")."""
    query = text(
        "SELECT m.status, m.provider_sid, m.sent_at, m.delivered_at, m.read_at,"
        " (SELECT count(*) FROM delivery_receipts r WHERE r.message_id = m.id"
        "   AND r.raw_payload->>'source' IS DISTINCT FROM 'reconciliation') AS receipts"
        " FROM messages m WHERE m.id = :id"
    )
    deadline = time.monotonic() + DEADLINE_SECONDS
    while True:
        with engine.connect() as conn:
            row = conn.execute(query, {"id": message_id}).one()
        if (row.status, row.receipts) == (status, receipts) or time.monotonic() > deadline:
            return row
        time.sleep(0.1)


def configure_twilio(env: dict[str, str], **config: Any) -> None:
    requests.post(env["TWILIO_API_URL"] + "/_emulator/config", json=config, timeout=5).raise_for_status()


@e2e
def test_a_sent_message_ends_delivered_through_signed_status_callbacks(
    clean_stack: dict[str, str], stack_engine: Engine
) -> None:
    configure_twilio(clean_stack, final_status="delivered")
    message_id = seed_campaign_message(stack_engine, PHONE, status="SENDING")
    sid = send_through_twilio(clean_stack, message_id)
    with stack_engine.begin() as conn:
        # As the sender records Twilio's answer: only over SENDING, as a callback may have come first.
        conn.execute(
            text(
                "UPDATE messages SET status = 'ACCEPTED', provider_sid = :s WHERE id = :id AND status = 'SENDING'"
            ),
            {"s": sid, "id": message_id},
        )
    row = wait_for_message(stack_engine, message_id, "DELIVERED", receipts=2)
    assert (row.status, row.receipts) == ("DELIVERED", 2)
    assert row.sent_at is not None and row.delivered_at is not None and row.read_at is None


@e2e
def test_a_send_whose_response_was_lost_is_reconciled_by_its_callbacks(
    clean_stack: dict[str, str], stack_engine: Engine
) -> None:
    message_id = seed_campaign_message(stack_engine, PHONE, status="AMBIGUOUS")
    sid = send_through_twilio(clean_stack, message_id)  # the SID is never written: the response was "lost"
    row = wait_for_message(stack_engine, message_id, "READ", receipts=3)
    assert (row.status, row.provider_sid, row.receipts) == ("READ", sid, 3)


@e2e
def test_shuffled_and_repeated_callbacks_still_end_in_the_final_state(
    clean_stack: dict[str, str], stack_engine: Engine
) -> None:
    configure_twilio(clean_stack, out_of_order=True, duplicate=True)
    message_id = seed_campaign_message(stack_engine, PHONE, status="SENDING")
    send_through_twilio(clean_stack, message_id)
    row = wait_for_message(stack_engine, message_id, "READ", receipts=3)
    assert (row.status, row.receipts) == ("READ", 3)
    # A read proves delivery and sending: all three times are known whatever the order.
    assert None not in (row.sent_at, row.delivered_at, row.read_at)


@e2e
def test_a_user_writing_stop_through_the_emulator_is_opted_out_and_told_so(
    clean_stack: dict[str, str], stack_engine: Engine
) -> None:
    with stack_engine.begin() as conn:
        conn.execute(
            text("INSERT INTO users (phone_e164, consent_state) VALUES (:p, 'OPT_IN')"), {"p": PHONE}
        )
    response = requests.post(
        clean_stack["TWILIO_API_URL"] + "/_emulator/inbound", json={"from": PHONE, "body": "STOP"}, timeout=20
    )
    response.raise_for_status()
    answer = response.json()
    assert answer["status"] == 200
    assert "<Message>" in answer["body"] and "unsubscribed" in answer["body"]
    with stack_engine.connect() as conn:
        assert conn.execute(text("SELECT consent_state FROM users")).scalar() == "STOP"
        assert conn.execute(text("SELECT outcome FROM events_inbound")).scalar() == "consent:STOP"
