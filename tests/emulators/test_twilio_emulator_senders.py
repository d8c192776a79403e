"""The Twilio emulator's per-sender faults, faults reported in the status callback, and inbound messages to
one business number of a pool (issue 18: sender pools)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
from twilio.base.exceptions import TwilioRestException
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from infra.local.twilio_emulator import TwilioEmulator
from shared.adapters.twilio_client import make_twilio_client
from tests.emulators.conftest_twilio import WebhookReceiver

SENDER_A, SENDER_B = "whatsapp:+14155550101", "whatsapp:+14155550102"
DEFAULT_SENDER = "whatsapp:+14155238886"
ALICE, BOB = "+15550001111", "+15550002222"
SERVICE = "MG" + "c" * 32


@pytest.fixture
def emulator() -> Iterator[TwilioEmulator]:
    with TwilioEmulator(callback_delay=0.01) as twilio:
        yield twilio


@pytest.fixture
def client(emulator: TwilioEmulator) -> Client:
    return make_twilio_client(emulator.account_sid, emulator.auth_token, emulator.base_url, timeout=5)


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as webhook:
        yield webhook


def send(client: Client, sender: str, to: str = ALICE, callback: str | None = None) -> str:
    message = client.messages.create(
        to=f"whatsapp:{to}", from_=sender, body="Hello", status_callback=callback
    )
    assert message.sid is not None
    return str(message.sid)


def refusal(client: Client, sender: str, to: str = ALICE) -> tuple[int, int]:
    with pytest.raises(TwilioRestException) as raised:
        send(client, sender, to)
    return raised.value.status, raised.value.code


def faults(emulator: TwilioEmulator, payload: dict[str, Any]) -> requests.Response:
    return requests.post(f"{emulator.base_url}/_emulator/faults", json=payload, timeout=20)


def settle(emulator: TwilioEmulator) -> None:
    assert emulator.wait_for_callbacks_idle(timeout=10), "status callbacks did not finish"


# --- a sender's fault, refused at once ---


def test_a_sender_fault_refuses_every_create_from_that_sender_only(
    emulator: TwilioEmulator, client: Client
) -> None:
    assert faults(emulator, {"from": SENDER_A, "http_status": 429, "error_code": 63018}).status_code == 200

    refused = [refusal(client, SENDER_A, to) for to in (ALICE, BOB)]
    b_sid = send(client, SENDER_B)

    assert refused == [(429, 63018), (429, 63018)]
    assert [(m["sid"], m["from"], m["to"]) for m in emulator.messages()] == [
        (b_sid, SENDER_B, f"whatsapp:{ALICE}")
    ]


def test_a_sender_fault_set_by_bare_number_hits_the_whatsapp_from(
    emulator: TwilioEmulator, client: Client
) -> None:
    emulator.sender_fault(SENDER_A.removeprefix("whatsapp:"), http_status=400, error_code=63007)

    assert refusal(client, SENDER_A) == (400, 63007)


def test_a_messaging_service_send_without_from_is_not_hit_by_a_sender_fault(
    emulator: TwilioEmulator, client: Client
) -> None:
    """The Messaging Service picks its sender after accepting: a From fault, even on the number it picks,
    does not reach the create (today's behaviour)."""
    emulator.sender_fault(DEFAULT_SENDER, http_status=429, error_code=63018)

    message = client.messages.create(to=f"whatsapp:{ALICE}", messaging_service_sid=SERVICE, body="Hi")

    assert message.status == "accepted"
    [recorded] = emulator.messages()
    assert (recorded["from"], recorded["messaging_service_sid"]) == (None, SERVICE)


# --- a fault reported in the status callback ---


def test_a_callback_fault_accepts_the_create_then_reports_failed_with_its_code(
    emulator: TwilioEmulator, client: Client, receiver: WebhookReceiver
) -> None:
    faults(emulator, {"from": SENDER_A, "callback_error_code": 63018}).raise_for_status()
    callback_url = receiver.url("/status?message_id=7")

    created = client.messages.create(
        to=f"whatsapp:{ALICE}", from_=SENDER_A, body="Hello", status_callback=callback_url
    )
    healthy = send(client, SENDER_B, callback=callback_url)
    settle(emulator)

    assert (created.status, created.error_code, str(created.sid)[:2]) == ("queued", None, "SM")
    assert receiver.statuses_by_sid() == {created.sid: ["failed"], healthy: ["sent", "delivered", "read"]}
    [failed] = [r for r in receiver.requests() if r.params["MessageSid"] == created.sid]
    assert (failed.params["ErrorCode"], failed.params["From"]) == ("63018", SENDER_A)
    assert RequestValidator(emulator.auth_token).validate(
        callback_url, failed.params, failed.headers["X-Twilio-Signature"]
    )
    fetched = client.messages(str(created.sid)).fetch()
    assert (fetched.status, fetched.error_code) == ("failed", 63018)
    recorded = {m["sid"]: (m["from"], m["status"], m["error_code"]) for m in emulator.messages()}
    assert recorded == {created.sid: (SENDER_A, "failed", 63018), healthy: (SENDER_B, "read", None)}


def test_a_recipients_callback_fault_fails_only_that_recipients_message(
    emulator: TwilioEmulator, client: Client, receiver: WebhookReceiver
) -> None:
    """Meta's per-user marketing limit (63049) reaches one recipient, whatever the sender."""
    emulator.set_faults({"to": ALICE, "callback_error_code": 63049})

    alice = send(client, SENDER_A, ALICE, callback=receiver.url("/status"))
    bob = send(client, SENDER_A, BOB, callback=receiver.url("/status"))
    settle(emulator)

    assert receiver.statuses_by_sid() == {alice: ["failed"], bob: ["sent", "delivered", "read"]}
    assert {(r.params["MessageStatus"], r.params.get("ErrorCode")) for r in receiver.requests()} == {
        ("failed", "63049"),
        ("sent", None),
        ("delivered", None),
        ("read", None),
    }


# --- precedence and clearing ---


def test_the_recipients_fault_comes_first_then_the_senders_then_the_general_one(
    emulator: TwilioEmulator, client: Client
) -> None:
    emulator.set_faults({"rate": 1, "http_status": 500})
    emulator.set_faults({"from": SENDER_A, "http_status": 429, "error_code": 63018})
    emulator.set_faults({"to": ALICE, "http_status": 400, "error_code": 21211})

    assert refusal(client, SENDER_A, ALICE) == (400, 21211)
    assert refusal(client, SENDER_A, BOB) == (429, 63018)
    assert refusal(client, SENDER_B, BOB) == (500, 20500)


def test_clearing_a_sender_fault_leaves_the_others(emulator: TwilioEmulator, client: Client) -> None:
    emulator.sender_fault(SENDER_A, http_status=429, error_code=63018)
    emulator.sender_fault(SENDER_B, http_status=400, error_code=63007)

    assert faults(emulator, {"from": SENDER_A, "rate": 0}).status_code == 200

    send(client, SENDER_A)
    assert refusal(client, SENDER_B) == (400, 63007)


def test_rate_zero_clears_sender_faults_too(emulator: TwilioEmulator, client: Client) -> None:
    emulator.sender_fault(SENDER_A, http_status=429, error_code=63018)
    emulator.sender_fault(SENDER_B, callback_error_code=63018)

    faults(emulator, {"rate": 0}).raise_for_status()
    sids = [send(client, sender) for sender in (SENDER_A, SENDER_B)]
    settle(emulator)

    assert {m["sid"]: m["status"] for m in emulator.messages()} == {sid: "read" for sid in sids}


@pytest.mark.parametrize(
    ("payload", "named"),
    [
        ({"from": "whatsapp:555", "http_status": 429}, "from"),
        ({"from": SENDER_A, "to": ALICE, "http_status": 429}, "to, from"),
        ({"from": SENDER_A, "http_status": 429, "callback_error_code": 63018}, "callback_error_code"),
        ({"to": ALICE, "callback_error_code": "63049"}, "callback_error_code"),
        ({"from": SENDER_A}, "http_status"),
    ],
)
def test_a_malformed_sender_fault_is_a_400_naming_the_field(
    emulator: TwilioEmulator, payload: dict[str, Any], named: str
) -> None:
    response = faults(emulator, payload)

    assert response.status_code == 400
    assert named in response.json()["error"]


# --- inbound to one business number ---


def test_inbound_says_which_business_number_the_user_wrote_to(emulator: TwilioEmulator) -> None:
    with WebhookReceiver() as app:
        inbound_url = app.url("/inbound")
        emulator.config.update({"inbound_url": inbound_url})
        over_http = requests.post(
            f"{emulator.base_url}/_emulator/inbound",
            json={"from": ALICE, "body": "STOP", "to": SENDER_B},
            timeout=20,
        )
        emulator.inbound(BOB, "hi", to=SENDER_A.removeprefix("whatsapp:"))
        emulator.inbound(BOB, "hello")
        requests_seen = app.requests()

    assert over_http.json()["status"] == 200
    assert [(r.params["From"], r.params["To"]) for r in requests_seen] == [
        (f"whatsapp:{ALICE}", SENDER_B),
        (f"whatsapp:{BOB}", SENDER_A),
        (f"whatsapp:{BOB}", DEFAULT_SENDER),
    ]
    for request in requests_seen:
        assert RequestValidator(emulator.auth_token).validate(
            inbound_url, request.params, request.headers["X-Twilio-Signature"]
        )


def test_inbound_to_a_malformed_number_is_a_400_naming_to(emulator: TwilioEmulator) -> None:
    emulator.config.update({"inbound_url": "http://127.0.0.1:9/inbound"})

    response = requests.post(
        f"{emulator.base_url}/_emulator/inbound", json={"from": ALICE, "body": "hi", "to": "555"}, timeout=20
    )

    assert response.status_code == 400
    assert "to" in response.json()["error"]
