"""Sender pools on the send path, on real PostgreSQL against the Twilio emulator through the real SDK:
the sticky choice, the per-sender 24-hour window and rate key, and what happens when a sender is paused
(docs/architecture.md, "Sender pools")."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
from sqlalchemy import Engine, insert, select, update

from infra.local.twilio_emulator import TwilioEmulator
from shared.adapters.twilio_forms import status_callback
from shared.adapters.twilio_signature import TwilioRequest
from shared.db.models import AuditEvent, Message, RateLimiter, Sender, UserSender
from shared.db.unit_of_work import UnitOfWork
from shared.services.delivery_status import record_status_callback
from shared.services.send_admission import NO_SENDER_RETRY
from tests.integration.send_harness import CONTENT_SID, SENDER, Harness
from tests.seeding import T0, add_campaign, add_message, add_senders, add_users

POOL = "spring"


def pool_campaign(engine: Engine, **columns: Any) -> int:
    return add_campaign(engine, status="RUNNING", sender_pool=POOL, **columns)


def wrote_to(engine: Engine, phone: str, sender: str, ago: timedelta) -> None:
    with engine.begin() as conn:
        conn.execute(insert(UserSender).values(user_phone=phone, sender=sender, last_inbound_at=T0 - ago))


def send_all(harness: Harness, message_ids: list[int]) -> None:
    """Every message of the campaign exists before the first send, so none finds it completed."""
    for message_id in message_ids:
        harness.send(message_id)


def sent_from(twilio: TwilioEmulator) -> dict[str, str]:
    return {m["to"].removeprefix("whatsapp:"): m["from"] for m in twilio.messages()}


def test_a_user_who_wrote_to_a_sender_is_sent_from_it(harness: Harness) -> None:
    senders = add_senders(harness.engine, POOL, 4)
    phones = add_users(harness.engine, 8)
    campaign = pool_campaign(harness.engine)
    for phone in phones:
        wrote_to(harness.engine, phone, senders[2], timedelta(hours=1))
    send_all(harness, [add_message(harness.engine, campaign, phone) for phone in phones])

    assert sent_from(harness.twilio) == {phone: senders[2] for phone in phones}
    with harness.engine.connect() as conn:
        assert set(conn.execute(select(Message.sender)).scalars()) == {senders[2]}


def test_without_inbound_the_sender_that_last_messaged_the_user_is_kept(harness: Harness) -> None:
    senders = add_senders(harness.engine, POOL, 4)
    (phone,) = add_users(harness.engine, 1)
    earlier = pool_campaign(harness.engine)
    add_message(
        harness.engine,
        earlier,
        phone,
        status="DELIVERED",
        sender=senders[3],
        claimed_at=T0 - timedelta(days=2),
    )
    later = pool_campaign(harness.engine, content_sid=CONTENT_SID)

    harness.send(add_message(harness.engine, later, phone))

    assert sent_from(harness.twilio) == {phone: senders[3]}


def test_a_user_who_wrote_to_another_sender_after_fan_out_chose_is_sent_from_that_one(
    harness: Harness,
) -> None:
    """Fan-out wrote A on the message; the user then wrote to B: the send goes from B, in B's window."""
    a, b = add_senders(harness.engine, POOL, 2)
    (phone,) = add_users(harness.engine, 1)
    campaign = pool_campaign(harness.engine, content_sid=CONTENT_SID)
    message = add_message(harness.engine, campaign, phone, sender=a)
    wrote_to(harness.engine, phone, b, timedelta(minutes=5))

    harness.send(message)

    (sent,) = harness.twilio.messages()
    assert (sent["from"], sent["body"]) == (b, "Hi")
    with harness.engine.connect() as conn:
        assert conn.execute(select(Message.sender).where(Message.id == message)).scalar_one() == b


@pytest.mark.parametrize("other", ["paused", "outside the pool", "none"])
def test_the_sender_fan_out_chose_is_kept_unless_the_user_wrote_to_another_active_one(
    harness: Harness, other: str
) -> None:
    a, b = add_senders(harness.engine, POOL, 2)
    (c,) = add_senders(harness.engine, "another pool", 1, first=9)
    (phone,) = add_users(harness.engine, 1)
    campaign = pool_campaign(harness.engine, content_sid=CONTENT_SID)
    message = add_message(harness.engine, campaign, phone, sender=a)
    if other == "paused":
        wrote_to(harness.engine, phone, b, timedelta(minutes=5))
        with harness.engine.begin() as conn:
            conn.execute(update(Sender).where(Sender.address == b).values(state="paused"))
    elif other == "outside the pool":
        wrote_to(harness.engine, phone, c, timedelta(minutes=5))

    harness.send(message)

    (sent,) = harness.twilio.messages()
    assert sent["from"] == a


def test_a_pool_spreads_users_over_its_senders_each_on_its_own_rate_key(harness: Harness) -> None:
    senders = add_senders(harness.engine, POOL, 4, rate=20)
    phones = add_users(harness.engine, 40)
    campaign = pool_campaign(harness.engine, content_sid=CONTENT_SID, rate=80)
    send_all(harness, [add_message(harness.engine, campaign, phone) for phone in phones])

    chosen = sent_from(harness.twilio)
    assert len(harness.twilio.messages()) == 40 and set(chosen) == set(phones)
    assert set(Counter(chosen.values())) == set(senders)
    with harness.engine.connect() as conn:
        keys = set(conn.execute(select(RateLimiter.key)).scalars())
    # The campaign's 80/s is the pool's sum: the senders' own keys bound it, and it takes none of its own.
    assert keys == {f"sender:{s}" for s in senders}


@pytest.mark.parametrize(("campaign_rate", "own_key"), [(60, True), (80, False), (100, False)])
def test_a_pool_campaign_has_its_own_rate_key_only_when_its_rate_is_below_the_pools(
    harness: Harness, campaign_rate: int, own_key: bool
) -> None:
    senders = add_senders(harness.engine, POOL, 4, rate=20)
    phones = add_users(harness.engine, 8)
    campaign = pool_campaign(harness.engine, content_sid=CONTENT_SID, rate=campaign_rate)
    send_all(harness, [add_message(harness.engine, campaign, phone) for phone in phones])

    assert len(harness.twilio.messages()) == 8
    with harness.engine.connect() as conn:
        keys = set(conn.execute(select(RateLimiter.key)).scalars())
    assert (f"campaign:{campaign}" in keys) is own_key
    assert keys - {f"campaign:{campaign}"} <= {f"sender:{s}" for s in senders}
    assert f"sender:{SENDER}" not in keys


def test_the_24_hour_window_is_the_chosen_senders_own(harness: Harness) -> None:
    """The user wrote to A an hour ago, but A is paused: the message goes from B, whose window with this
    user is closed, so only the approved template may be sent, never the free-form body."""
    a, b = add_senders(harness.engine, POOL, 2)
    (phone,) = add_users(harness.engine, 1)
    wrote_to(harness.engine, phone, a, timedelta(hours=1))
    with harness.engine.begin() as conn:
        conn.execute(update(Sender).where(Sender.address == a).values(state="paused"))
    campaign = pool_campaign(harness.engine, content_sid=CONTENT_SID)

    harness.send(add_message(harness.engine, campaign, phone))

    (sent,) = harness.twilio.messages()
    assert (sent["from"], sent["content_sid"], sent["body"] or None) == (b, CONTENT_SID, None)


def test_inside_the_chosen_senders_window_the_free_form_body_goes(harness: Harness) -> None:
    a, _ = add_senders(harness.engine, POOL, 2)
    (phone,) = add_users(harness.engine, 1)
    wrote_to(harness.engine, phone, a, timedelta(hours=1))
    campaign = pool_campaign(harness.engine, content_sid=CONTENT_SID)

    harness.send(add_message(harness.engine, campaign, phone))

    (sent,) = harness.twilio.messages()
    assert (sent["from"], sent["body"], sent["content_sid"]) == (a, "Hi", None)


def test_a_paused_senders_queued_recipient_moves_to_another_and_is_sent_once(harness: Harness) -> None:
    a, b = add_senders(harness.engine, POOL, 2)
    (phone,) = add_users(harness.engine, 1)
    campaign = pool_campaign(harness.engine, content_sid=CONTENT_SID)
    message_id = add_message(harness.engine, campaign, phone, sender=a, slot_at=T0 + timedelta(seconds=30))
    with harness.engine.begin() as conn:
        conn.execute(update(Sender).where(Sender.address == a).values(state="paused"))

    harness.send(message_id)
    harness.send(message_id)

    (sent,) = harness.twilio.messages()
    assert sent["from"] == b
    row = harness.message(message_id)
    assert (row.sender, row.status) == (b, "ACCEPTED")
    # The slot reserved on A's calendar was dropped with A, not reused on B's.
    assert harness.slept == [] or max(harness.slept) < 1


def test_a_pool_without_an_active_sender_defers_and_sends_once_one_is_back(harness: Harness) -> None:
    (a,) = add_senders(harness.engine, POOL, 1)
    with harness.engine.begin() as conn:
        conn.execute(update(Sender).values(state="paused"))
    (phone,) = add_users(harness.engine, 1)
    message_id = add_message(harness.engine, pool_campaign(harness.engine, content_sid=CONTENT_SID), phone)

    harness.send(message_id)

    row = harness.message(message_id)
    assert (row.status, row.status_reason) == ("QUEUED", f"deferred: no active sender in pool {POOL!r}")
    assert harness.twilio.messages() == []
    (task,) = harness.tasks.tasks
    assert task.at == T0 + NO_SENDER_RETRY
    with harness.engine.begin() as conn:
        conn.execute(update(Sender).values(state="active"))
    harness.clock.set(task.at)
    harness.send(message_id, task.generation)
    assert [m["from"] for m in harness.twilio.messages()] == [a]


def test_a_campaign_without_a_pool_sends_from_the_configured_sender(harness: Harness) -> None:
    add_senders(harness.engine, POOL, 2)
    (phone,) = add_users(harness.engine, 1)
    campaign = add_campaign(harness.engine, status="RUNNING", content_sid=CONTENT_SID)

    harness.send(add_message(harness.engine, campaign, phone))

    assert [m["from"] for m in harness.twilio.messages()] == [SENDER]
    assert {m.sender for m in all_messages(harness.engine)} == {None}


def all_messages(engine: Engine) -> list[Message]:
    with engine.connect() as conn:
        return list(conn.execute(select(Message)).all())  # type: ignore[arg-type]


def test_a_sender_twilio_refuses_as_rate_limited_is_paused_and_its_recipients_move(harness: Harness) -> None:
    senders = add_senders(harness.engine, POOL, 3)
    phones = add_users(harness.engine, 30)
    campaign = pool_campaign(harness.engine, content_sid=CONTENT_SID)
    message_ids = [add_message(harness.engine, campaign, phone) for phone in phones]
    failing = senders[1]
    harness.twilio.sender_fault(failing, http_status=429, error_code=63018)

    send_all(harness, message_ids)
    for _ in range(200):  # the moved ones come back through their new tasks (bounded: a loop is a failure)
        if not harness.tasks.tasks:
            break
        task = harness.tasks.tasks.pop(0)
        harness.clock.set(max(harness.clock.now(), task.at))
        harness.send(task.message_id, task.generation)

    chosen = sent_from(harness.twilio)
    assert len(harness.twilio.messages()) == 30 and set(chosen) == set(phones)
    assert failing not in chosen.values()
    with harness.engine.connect() as conn:
        paused = conn.execute(select(Sender).where(Sender.address == failing)).one()
        kinds = list(
            conn.execute(select(AuditEvent.kind).where(AuditEvent.kind == "sender.paused")).scalars()
        )
    assert (paused.state, paused.paused_by, paused.last_error_code) == ("paused", "twilio", 63018)
    assert "63018" in paused.paused_reason
    assert kinds == ["sender.paused"]
    assert {harness.message(m).status for m in message_ids} == {"ACCEPTED"}


def test_a_sender_failing_in_its_status_callback_is_paused_and_that_message_stays_failed(
    harness: Harness,
) -> None:
    (sender,) = add_senders(harness.engine, POOL, 1)
    (phone,) = add_users(harness.engine, 1)
    message_id = add_message(harness.engine, pool_campaign(harness.engine, content_sid=CONTENT_SID), phone)
    harness.send(message_id)
    sid = harness.message(message_id).provider_sid

    form = urlencode({"MessageSid": sid, "MessageStatus": "failed", "ErrorCode": "63018"}).encode()
    received = TwilioRequest.parse(
        "application/x-www-form-urlencoded", f"message_id={message_id}".encode(), form
    )
    callback = status_callback(received)
    record_status_callback(UnitOfWork(harness.engine), callback, idempotency_token=None, clock=harness.clock)

    row = harness.message(message_id)
    assert (row.status, row.error_code) == ("FAILED", 63018)
    with harness.engine.connect() as conn:
        state = conn.execute(select(Sender.state, Sender.paused_by).where(Sender.address == sender)).one()
    assert tuple(state) == ("paused", "twilio")
