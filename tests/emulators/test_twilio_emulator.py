"""The Twilio emulator, driven by the real `twilio` SDK through the app's own client factory."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from twilio.base.exceptions import TwilioRestException
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from infra.local.postgres import free_ports
from infra.local.twilio_emulator import Outcome, TwilioEmulator
from infra.local.twilio_emulator.messages_endpoint import MessagesEndpoint
from infra.local.twilio_emulator.wsgi_thread import IDLE_TIMEOUT_SECONDS, _KeepAliveHandler
from shared.adapters.twilio_client import make_twilio_client
from tests.emulators.conftest_twilio import WebhookReceiver

ROOT = Path(__file__).resolve().parents[2]
SENDER = "whatsapp:+14155238886"
ALICE, BOB = "+15550001111", "+15550002222"
CONTENT_SID = "HX" + "ab" * 16


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


def send(client: Client, to: str = ALICE, callback: str | None = None, body: str = "Hello") -> str:
    message = client.messages.create(to=f"whatsapp:{to}", from_=SENDER, body=body, status_callback=callback)
    assert message.sid is not None
    return str(message.sid)


def emulator_post(emulator: TwilioEmulator, path: str, payload: dict[str, Any]) -> requests.Response:
    return requests.post(f"{emulator.base_url}/_emulator/{path}", json=payload, timeout=20)


def settle(emulator: TwilioEmulator) -> None:
    assert emulator.wait_for_callbacks_idle(timeout=10), "status callbacks did not finish"


# --- the Messages API ---


def test_create_with_body_returns_a_queued_message_and_records_it(
    emulator: TwilioEmulator, client: Client
) -> None:
    message = client.messages.create(to=f"whatsapp:{ALICE}", from_=SENDER, body="Hi Alice")

    assert message.sid is not None and message.sid.startswith("SM") and len(message.sid) == 34
    assert (message.status, message.to, message.from_) == ("queued", f"whatsapp:{ALICE}", SENDER)
    listed = requests.get(f"{emulator.base_url}/_emulator/messages", timeout=5).json()
    assert [(m["sid"], m["to"], m["body"], m["content_sid"]) for m in listed] == [
        (message.sid, f"whatsapp:{ALICE}", "Hi Alice", None)
    ]
    # Tests bucket sends per second, so the accept time keeps its fraction.
    assert datetime.fromisoformat(listed[0]["created_at"]).utcoffset() is not None
    assert "." in listed[0]["created_at"]


def test_a_message_is_stamped_when_its_request_arrived_not_after_the_emulators_own_work(
    emulator: TwilioEmulator, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`date_created` is when Twilio's API got the request: the emulator's own work on it (here an
    authentication that takes 0.3 s, as Python work can under a loaded CPU) must not move it later, or the
    bench's 1-second windows would count a send later than it arrived."""
    authenticate = MessagesEndpoint._authenticate

    def slow_authenticate(self: MessagesEndpoint, request: Any, account_sid: str) -> None:
        time.sleep(0.3)
        authenticate(self, request, account_sid)

    monkeypatch.setattr(MessagesEndpoint, "_authenticate", slow_authenticate)
    before = datetime.now(UTC)
    message = client.messages.create(to=f"whatsapp:{ALICE}", from_=SENDER, body="Hi")
    answered = datetime.now(UTC)

    (listed,) = requests.get(f"{emulator.base_url}/_emulator/messages", timeout=5).json()
    created = datetime.fromisoformat(listed["created_at"])
    assert before <= created <= answered - timedelta(seconds=0.25)
    assert message.date_created is not None and abs(message.date_created - created) < timedelta(seconds=1)


def test_a_message_is_stamped_when_its_bytes_arrived_though_the_emulator_read_them_later(
    emulator: TwilioEmulator, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The emulator's threads share the CPU with the stack it measures and can get to a request late; the
    stamp is the kernel's arrival stamp, so a handler that reads each request 0.3 s after it arrived (on
    a new connection and on a kept-alive one) still stamps it when it arrived."""
    handle = _KeepAliveHandler.handle_one_request

    def late_handle(self: _KeepAliveHandler) -> None:
        ready, _, _ = select.select([self.connection], [], [], IDLE_TIMEOUT_SECONDS)
        if ready:
            time.sleep(0.3)  # the request is in the socket: read it late
        handle(self)

    monkeypatch.setattr(_KeepAliveHandler, "handle_one_request", late_handle)
    sent = []
    for body in ("first", "second, on the kept-alive connection"):
        before = datetime.now(UTC)
        client.messages.create(to=f"whatsapp:{ALICE}", from_=SENDER, body=body)
        sent.append((before, datetime.now(UTC)))

    listed = requests.get(f"{emulator.base_url}/_emulator/messages", timeout=5).json()
    created = {m["body"]: datetime.fromisoformat(m["created_at"]) for m in listed}
    for (before, answered), body in zip(sent, ("first", "second, on the kept-alive connection"), strict=True):
        assert answered - before >= timedelta(seconds=0.3)
        assert before <= created[body] <= before + timedelta(seconds=0.15), body


def test_create_with_content_template_records_sid_and_variables(
    emulator: TwilioEmulator, client: Client
) -> None:
    client.messages.create(
        to=f"whatsapp:{ALICE}",
        from_=SENDER,
        content_sid=CONTENT_SID,
        content_variables=json.dumps({"1": "Alice", "2": "Friday"}),
    )

    [recorded] = emulator.messages()
    assert recorded["content_sid"] == CONTENT_SID
    assert recorded["content_variables"] == {"1": "Alice", "2": "Friday"}
    assert recorded["body"] == ""


@pytest.mark.parametrize(
    ("to", "from_", "body", "code"),
    [
        ("whatsapp:+1555", SENDER, "Hi", 21211),
        (f"whatsapp:{ALICE}", SENDER, None, 21619),
        (ALICE, SENDER, "Hi", 21910),
    ],
    ids=["invalid-to", "no-body-or-content", "channel-mismatch"],
)
def test_invalid_create_is_rejected_with_twilios_code(
    emulator: TwilioEmulator, client: Client, to: str, from_: str, body: str | None, code: int
) -> None:
    with pytest.raises(TwilioRestException) as raised:
        client.messages.create(to=to, from_=from_, body=body)

    assert (raised.value.status, raised.value.code) == (400, code)
    assert emulator.messages() == []


def test_messaging_service_send_is_accepted_and_sent_from_the_senders_number(
    emulator: TwilioEmulator, client: Client, receiver: WebhookReceiver
) -> None:
    service = "MG" + "c" * 32
    message = client.messages.create(
        to=f"whatsapp:{ALICE}", messaging_service_sid=service, body="Hi", status_callback=receiver.url("/s")
    )
    settle(emulator)

    assert (message.status, message.from_, message.messaging_service_sid) == ("accepted", None, service)
    assert {(r.params["From"], r.params["MessagingServiceSid"]) for r in receiver.requests()} == {
        (SENDER, service)
    }


def test_wrong_auth_token_is_rejected_with_20003(emulator: TwilioEmulator) -> None:
    intruder = make_twilio_client(emulator.account_sid, "not-the-token", emulator.base_url)

    with pytest.raises(TwilioRestException) as raised:
        send(intruder)

    assert (raised.value.status, raised.value.code) == (401, 20003)
    assert emulator.messages() == []


def test_another_accounts_messages_are_not_found(emulator: TwilioEmulator, client: Client) -> None:
    other_account = client.api.v2010.accounts("AC" + "9" * 32)

    with pytest.raises(TwilioRestException) as raised:
        other_account.messages.create(to=f"whatsapp:{ALICE}", from_=SENDER, body="Hi")

    assert (raised.value.status, raised.value.code) == (404, 20404)
    assert emulator.messages() == []


def test_client_without_api_url_targets_real_twilio() -> None:
    client = make_twilio_client("AC" + "1" * 32, "token", None)

    assert client.api.base_url == "https://api.twilio.com"


def test_concurrent_sends_are_each_recorded_once(emulator: TwilioEmulator, client: Client) -> None:
    recipients = [f"+1555{n:07d}" for n in range(200)]

    with ThreadPoolExecutor(max_workers=8) as pool:
        sids = list(pool.map(lambda to: send(client, to=to), recipients))

    recorded = emulator.messages()
    assert len(set(sids)) == 200
    assert sorted(m["sid"] for m in recorded) == sorted(sids)


# --- status callbacks ---


def test_status_callbacks_are_signed_for_the_exact_callback_url(
    emulator: TwilioEmulator, client: Client, receiver: WebhookReceiver
) -> None:
    callback_url = receiver.url("/status?message_id=42")
    sid = send(client, callback=callback_url)
    settle(emulator)

    received = receiver.requests()
    assert [r.params["MessageStatus"] for r in received] == ["sent", "delivered", "read"]
    for request in received:
        assert request.path == "/status?message_id=42"
        assert (request.params["MessageSid"], request.params["ChannelPrefix"]) == (sid, "whatsapp")
        signature = request.headers["X-Twilio-Signature"]
        assert RequestValidator(emulator.auth_token).validate(callback_url, request.params, signature)
        assert not RequestValidator("another-token").validate(callback_url, request.params, signature)


def test_callbacks_follow_sent_delivered_read_in_order_by_default(
    emulator: TwilioEmulator, client: Client, receiver: WebhookReceiver
) -> None:
    sids = [send(client, to=to, callback=receiver.url("/status")) for to in (ALICE, BOB)]
    settle(emulator)

    assert receiver.statuses_by_sid() == {sid: ["sent", "delivered", "read"] for sid in sids}
    assert [m["status"] for m in emulator.messages()] == ["read", "read"]


def test_out_of_order_mode_shuffles_callbacks_but_status_never_goes_back(
    emulator: TwilioEmulator, client: Client, receiver: WebhookReceiver
) -> None:
    assert emulator_post(emulator, "config", {"out_of_order": True}).status_code == 200
    sids = [send(client, to=f"+1555000{n:04d}", callback=receiver.url("/status")) for n in range(5)]
    settle(emulator)

    by_sid = receiver.statuses_by_sid()
    for sid in sids:
        assert sorted(by_sid[sid]) == ["delivered", "read", "sent"]
        assert by_sid[sid] != ["sent", "delivered", "read"]
    assert {m["status"] for m in emulator.messages()} == {"read"}


def test_duplicate_mode_delivers_every_callback_twice_with_one_idempotency_token(
    emulator: TwilioEmulator, client: Client, receiver: WebhookReceiver
) -> None:
    emulator.config.update({"duplicate": True})
    sid = send(client, callback=receiver.url("/status"))
    settle(emulator)

    assert receiver.statuses_by_sid() == {sid: ["sent", "sent", "delivered", "delivered", "read", "read"]}
    tokens = [r.headers["I-Twilio-Idempotency-Token"] for r in receiver.requests()]
    assert tokens[0] == tokens[1] != tokens[2] == tokens[3]


def test_numbers_with_a_failing_outcome_end_with_its_error_code(receiver: WebhookReceiver) -> None:
    outcomes = {ALICE: Outcome("undelivered", 30008), BOB: Outcome("failed", 63016)}
    with TwilioEmulator(callback_delay=0.01, outcomes=outcomes) as emulator:
        client = make_twilio_client(emulator.account_sid, emulator.auth_token, emulator.base_url)
        alice, bob = (send(client, to=to, callback=receiver.url("/status")) for to in (ALICE, BOB))
        settle(emulator)
        final = {m["sid"]: (m["status"], m["error_code"]) for m in emulator.messages()}

    assert receiver.statuses_by_sid() == {alice: ["sent", "undelivered"], bob: ["failed"]}
    error_codes = {(r.params["MessageStatus"], r.params.get("ErrorCode")) for r in receiver.requests()}
    assert error_codes == {("sent", None), ("undelivered", "30008"), ("failed", "63016")}
    assert final == {alice: ("undelivered", 30008), bob: ("failed", 63016)}


def test_a_callback_answered_5xx_is_not_retried_as_twilio_does_by_default(
    emulator: TwilioEmulator, client: Client
) -> None:
    """Twilio's default connection overrides retry only a failed connection (rp=ct, rc=1): the 503 of a
    briefly unreachable database loses that callback, and the next status follows."""
    with WebhookReceiver(answers=[503]) as flaky:
        sid = send(client, callback=flaky.url("/status"))
        settle(emulator)

    assert flaky.statuses_by_sid() == {sid: ["sent", "delivered", "read"]}
    attempts = [(c["message_status"], c["attempt"], c["http_status"]) for c in emulator.callbacks()]
    assert attempts == [("sent", 1, 503), ("delivered", 1, 200), ("read", 1, 200)]


def test_a_callback_whose_connection_is_refused_is_retried_once(
    emulator: TwilioEmulator, client: Client
) -> None:
    closed = free_ports(1)[0]  # nothing listens there
    sid = send(client, callback=f"http://127.0.0.1:{closed}/status")
    settle(emulator)

    attempts = [(c["message_status"], c["attempt"]) for c in emulator.callbacks() if c["message_sid"] == sid]
    assert attempts == [
        ("sent", 1),
        ("sent", 2),
        ("delivered", 1),
        ("delivered", 2),
        ("read", 1),
        ("read", 2),
    ]
    assert all(c["error"] for c in emulator.callbacks())


# --- reading messages back: fetch by SID, and the list with Twilio's filters (the reconciler's view) ---


def test_a_message_is_fetched_by_sid_with_its_current_status_and_date_sent(
    emulator: TwilioEmulator, client: Client
) -> None:
    with WebhookReceiver() as receiver:
        sid = send(client, callback=receiver.url("/status"))
        settle(emulator)

    fetched = client.messages(sid).fetch()

    assert (fetched.sid, fetched.status, fetched.to) == (sid, "read", f"whatsapp:{ALICE}")
    assert fetched.date_sent is not None and fetched.date_sent.tzinfo is not None
    with pytest.raises(TwilioRestException) as missing:
        client.messages("SM" + "0" * 32).fetch()
    assert (missing.value.status, missing.value.code) == (404, 20404)


def test_the_list_filters_by_to_from_and_date_sent_newest_first_across_pages(
    emulator: TwilioEmulator, client: Client
) -> None:
    with WebhookReceiver() as receiver:
        for_alice = [send(client, to=ALICE, callback=receiver.url("/s")) for _ in range(3)]
        send(client, to=BOB, callback=receiver.url("/s"))
        settle(emulator)
    today = datetime.now(UTC)

    listed = client.messages.list(to=f"whatsapp:{ALICE}", page_size=2)
    assert [m.sid for m in listed] == list(reversed(for_alice))  # three, over two pages
    assert len(client.messages.list(date_sent_after=today - timedelta(days=1))) == 4
    assert client.messages.list(date_sent_before=today - timedelta(days=2)) == []
    assert len(client.messages.list(to=f"whatsapp:{BOB}", from_=SENDER)) == 1


def test_a_message_not_yet_sent_has_no_date_sent_and_escapes_date_filters(
    emulator: TwilioEmulator, client: Client
) -> None:
    emulator.config.update({"callback_delay": 60})  # stays queued for the test's duration
    sid = send(client)

    queued = client.messages(sid).fetch()
    assert (queued.status, queued.date_sent) == ("queued", None)
    assert [m.sid for m in client.messages.list(to=f"whatsapp:{ALICE}")] == [sid]
    assert (
        client.messages.list(to=f"whatsapp:{ALICE}", date_sent_after=datetime.now(UTC) - timedelta(days=1))
        == []
    )


# --- faults ---


@pytest.mark.parametrize(("http_status", "error_code"), [(429, 20429), (500, 20500)])
def test_injected_fault_surfaces_as_the_sdks_exception(
    emulator: TwilioEmulator, client: Client, http_status: int, error_code: int
) -> None:
    emulator_post(emulator, "faults", {"rate": 1.0, "http_status": http_status, "error_code": error_code})

    with pytest.raises(TwilioRestException) as raised:
        send(client)

    assert (raised.value.status, raised.value.code) == (http_status, error_code)
    assert emulator.messages() == []


def test_per_number_fault_hits_only_that_number(emulator: TwilioEmulator, client: Client) -> None:
    emulator_post(emulator, "faults", {"to": ALICE, "http_status": 400, "error_code": 21211})

    with pytest.raises(TwilioRestException) as raised:
        send(client, to=ALICE)
    bob_sid = send(client, to=BOB)

    assert (raised.value.status, raised.value.code) == (400, 21211)
    assert [m["sid"] for m in emulator.messages()] == [bob_sid]


def test_rate_zero_clears_every_fault(emulator: TwilioEmulator, client: Client) -> None:
    emulator_post(emulator, "faults", {"rate": 1.0, "http_status": 429})
    emulator_post(emulator, "faults", {"to": BOB, "http_status": 400, "error_code": 21211})
    emulator_post(emulator, "faults", {"rate": 0})

    send(client, to=ALICE)
    send(client, to=BOB)

    assert len(emulator.messages()) == 2


def test_partial_fault_rate_is_reproducible_with_a_seed(emulator: TwilioEmulator, client: Client) -> None:
    def failures() -> list[bool]:
        emulator_post(emulator, "faults", {"rate": 0.5, "http_status": 429, "seed": 7})
        outcomes = []
        for _ in range(20):
            try:
                send(client)
                outcomes.append(False)
            except TwilioRestException:
                outcomes.append(True)
        return outcomes

    first, second = failures(), failures()

    assert first == second
    assert 0 < sum(first) < 20


def test_slow_accept_fault_times_out_the_sdk_but_the_message_was_sent(
    emulator: TwilioEmulator, receiver: WebhookReceiver
) -> None:
    impatient = make_twilio_client(emulator.account_sid, emulator.auth_token, emulator.base_url, timeout=0.3)
    emulator_post(emulator, "faults", {"rate": 1.0, "delay": 1.0, "accept": True})

    with pytest.raises(requests.exceptions.ReadTimeout):
        send(impatient, callback=receiver.url("/status"))
    settle(emulator)

    [recorded] = emulator.messages()
    assert recorded["to"] == f"whatsapp:{ALICE}"
    assert receiver.statuses_by_sid() == {recorded["sid"]: ["sent", "delivered", "read"]}


@pytest.mark.parametrize(
    ("path", "payload", "named"),
    [
        ("faults", {"rate": 0.5}, "http_status"),
        ("faults", {"to": "555", "http_status": 400}, "to"),
        ("config", {"callback_delay": -1}, "callback_delay"),
        ("config", {"outcomes": {ALICE: {"status": "lost"}}}, f"outcomes[{ALICE}]"),
        ("config", {"shuffle": True}, "shuffle"),
    ],
)
def test_malformed_emulator_request_is_a_400_naming_the_field(
    emulator: TwilioEmulator, path: str, payload: dict[str, Any], named: str
) -> None:
    response = emulator_post(emulator, path, payload)

    assert response.status_code == 400
    assert named in response.json()["error"]


def test_delete_messages_forgets_messages_and_faults(emulator: TwilioEmulator, client: Client) -> None:
    send(client)
    emulator_post(emulator, "faults", {"rate": 1.0, "http_status": 500})

    assert requests.delete(f"{emulator.base_url}/_emulator/messages", timeout=5).status_code == 200

    assert emulator.messages() == []
    send(client)
    assert len(emulator.messages()) == 1


# --- inbound ---


def test_inbound_posts_a_signed_webhook_and_returns_the_apps_answer(emulator: TwilioEmulator) -> None:
    with WebhookReceiver(body="<Response><Message>Thanks</Message></Response>") as app:
        inbound_url = app.url("/inbound")
        emulator.config.update({"inbound_url": inbound_url})
        answer = emulator_post(emulator, "inbound", {"from": ALICE, "body": "STOP"}).json()
        [request] = app.requests()

    assert answer["status"] == 200
    assert answer["body"] == "<Response><Message>Thanks</Message></Response>"
    params = request.params
    assert (params["From"], params["To"], params["Body"]) == (f"whatsapp:{ALICE}", SENDER, "STOP")
    # Twilio's WhatsApp fields: the sender's WhatsApp id (the number without +) and their profile name.
    assert (params["WaId"], params["ProfileName"], params["AccountSid"]) == (
        ALICE[1:],
        "Emulated User",
        emulator.account_sid,
    )
    assert params["MessageSid"].startswith("SM")
    assert RequestValidator(emulator.auth_token).validate(
        inbound_url, params, request.headers["X-Twilio-Signature"]
    )


def test_inbound_sends_the_profile_name_it_is_given(emulator: TwilioEmulator) -> None:
    with WebhookReceiver(body="<Response/>") as app:
        emulator.config.update({"inbound_url": app.url("/inbound")})
        emulator_post(emulator, "inbound", {"from": ALICE, "body": "hi", "profile_name": "Ana María"})
        [request] = app.requests()
    assert (request.params["ProfileName"], request.params["WaId"]) == ("Ana María", ALICE[1:])


def test_inbound_redelivery_repeats_the_same_message_sid(emulator: TwilioEmulator) -> None:
    with WebhookReceiver() as app:
        emulator.config.update({"inbound_url": app.url("/inbound")})
        for _ in range(2):
            emulator_post(emulator, "inbound", {"from": ALICE, "body": "hi", "message_sid": "SM" + "1" * 32})
        first, second = app.requests()

    assert first.params["MessageSid"] == second.params["MessageSid"] == "SM" + "1" * 32
    assert first.headers["I-Twilio-Idempotency-Token"] == second.headers["I-Twilio-Idempotency-Token"]


def test_inbound_without_a_configured_url_is_a_400(emulator: TwilioEmulator) -> None:
    response = emulator_post(emulator, "inbound", {"from": ALICE, "body": "hi"})

    assert response.status_code == 400
    assert "inbound URL" in response.json()["error"]


# --- the command ---


def test_command_serves_the_sdk_and_stops_on_sigterm() -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "infra.local.twilio_emulator",
            "--port",
            "0",
            "--account-sid",
            "AC" + "0" * 32,
            "--auth-token",
            "cli-token",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        assert line.startswith("TWILIO_API_URL=http://127.0.0.1:")
        base_url = line.split("=", 1)[1]
        client = make_twilio_client("AC" + "0" * 32, "cli-token", base_url)
        send(client)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_with_a_journal_a_restarted_emulator_still_knows_what_it_accepted(tmp_path: Path) -> None:
    journal = tmp_path / "journal.jsonl"
    with WebhookReceiver() as receiver, TwilioEmulator(callback_delay=0.01, journal=journal) as first:
        client = make_twilio_client(first.account_sid, first.auth_token, first.base_url)
        sid = send(client, callback=receiver.url("/s"))
        settle(first)
        before = first.messages()

    with TwilioEmulator(journal=journal) as second:
        client = make_twilio_client(second.account_sid, second.auth_token, second.base_url)
        assert second.messages() == before
        assert client.messages(sid).fetch().status == "read"
        second.reset()
    assert TwilioEmulator(journal=journal).messages() == []
