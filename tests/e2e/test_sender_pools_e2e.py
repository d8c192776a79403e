"""Sender pools and frequency caps on the whole local stack, through the front end as production's callers
reach it: the operator API registers the senders and the caps, the Twilio emulator delivers inbound
messages to a chosen business number and refuses a failing sender, and the campaigns run through Pub/Sub,
Cloud Tasks and send_message. What matters is read where it happens: at the Twilio emulator and in the
ledger (docs/architecture.md, "Sender pools" and "Frequency caps")."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import pytest
import requests
from sqlalchemy import Engine, select

from shared.db.models import Message, Sender, UserSender
from tests.e2e.test_campaign_e2e import Stack, phones, wait_for
from tests.seeding import add_campaign

pytestmark = pytest.mark.e2e

POOL = "e2e-pool"
SENDERS = [f"whatsapp:+1415555{n:04d}" for n in range(4)]
CONTENT_SID = "HX" + "cd" * 16


@pytest.fixture
def stack(clean_stack: dict[str, str], stack_engine: Engine) -> Stack:
    return Stack(clean_stack, stack_engine)


def api(stack: Stack, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    response = requests.request(
        method,
        f"{stack.env['API_URL']}{path}",
        json=body,
        headers={"Authorization": f"Bearer {stack.env['API_TOKEN']}"},
        timeout=30,
    )
    assert response.status_code in (200, 201), response.text
    return response.json()


def pool_campaign(stack: Stack, **columns: Any) -> int:
    return add_campaign(
        stack.engine,
        name="e2e pool",
        content="Hello {name}",
        content_sid=CONTENT_SID,
        content_variables={"1": "name"},
        rate=80,
        **columns,
    )


def finished(stack: Stack, campaign_id: int) -> bool:
    return stack.status(campaign_id) == "COMPLETED"


def test_a_pool_campaign_is_sticky_pauses_a_failing_sender_and_reaches_everyone_once(stack: Stack) -> None:
    for address in SENDERS:
        api(stack, "POST", "/v1/senders", {"address": address, "pool": POOL, "rate_limit_per_second": 20})
    recipients = stack.users(phones(301, 120))
    # Ten users write to sender 1 (through the inbound webhook, as WhatsApp users do): it becomes theirs.
    wrote_to_b = recipients[:10]
    for phone in wrote_to_b:
        response = requests.post(
            stack.twilio + "/_emulator/inbound",
            json={"from": phone, "body": "hi", "to": SENDERS[1]},
            timeout=20,
        )
        response.raise_for_status()
    wait_for(
        lambda: _window_rows(stack.engine) == 10, 30, "the inbound webhooks to record sender 1's windows"
    )
    # Sender 3 is refused by Twilio as rate-limited from its first send on.
    stack.faults({"from": SENDERS[3], "http_status": 429, "error_code": 63018})

    campaign_id = pool_campaign(stack, sender_pool=POOL)
    stack.trigger(campaign_id)
    wait_for(lambda: finished(stack, campaign_id), 120, "the pool campaign to complete")

    sent = stack.accepted()
    per_user = Counter(m["to"].removeprefix("whatsapp:") for m in sent)
    assert per_user == {p: 1 for p in recipients}, "every recipient exactly once"
    sender_of = {m["to"].removeprefix("whatsapp:"): m["from"] for m in sent}
    assert {sender_of[p] for p in wrote_to_b} == {SENDERS[1]}, "a user who wrote to sender 1 hears from it"
    assert SENDERS[3] not in set(sender_of.values())
    assert set(sender_of.values()) == set(SENDERS[:3])
    # The users the failing sender had were moved; its state says why, and the API shows it.
    listed = {s["address"]: s for s in api(stack, "GET", "/v1/senders")["items"]}
    assert (listed[SENDERS[3]]["state"], listed[SENDERS[3]]["paused_by"]) == ("paused", "twilio")
    assert "63018" in listed[SENDERS[3]]["paused_reason"]
    with stack.engine.connect() as conn:
        senders = Counter(
            conn.execute(select(Message.sender).where(Message.campaign_id == campaign_id)).scalars()
        )
        states = dict(conn.execute(select(Sender.address, Sender.state)).all())
    assert sum(senders.values()) == 120 and SENDERS[3] not in senders
    assert states == {SENDERS[0]: "active", SENDERS[1]: "active", SENDERS[2]: "active", SENDERS[3]: "paused"}


def test_concurrent_campaigns_respect_a_frequency_cap_and_a_transactional_one_is_exempt(stack: Stack) -> None:
    api(stack, "PUT", "/v1/frequency-caps", {"caps": [{"max_messages": 1, "window_hours": 24}]})
    recipients = stack.users(phones(302, 60))
    marketing = [pool_campaign(stack, frequency_cap_policy="skip") for _ in range(3)]
    transactional = pool_campaign(stack, transactional=True)
    campaigns = [*marketing, transactional]

    triggers = [threading.Thread(target=stack.trigger, args=(c,)) for c in campaigns]
    for thread in triggers:
        thread.start()
    for thread in triggers:
        thread.join(timeout=60)
    wait_for(lambda: all(finished(stack, c) for c in campaigns), 180, "the four campaigns to complete")

    with stack.engine.connect() as conn:
        rows = conn.execute(
            select(Message.campaign_id, Message.recipient_phone, Message.status, Message.status_reason)
        ).all()
    accepted = {"ACCEPTED", "SENT", "DELIVERED", "READ"}
    marketing_sent = Counter(
        r.recipient_phone for r in rows if r.campaign_id in marketing and r.status in accepted
    )
    assert marketing_sent == {p: 1 for p in recipients}, "one marketing message per user"
    skipped = [r for r in rows if r.status == "SKIPPED"]
    assert len(skipped) == 120 and {r.status_reason for r in skipped} == {"frequency_cap"}
    assert Counter(
        r.recipient_phone for r in rows if r.campaign_id == transactional and r.status in accepted
    ) == {p: 1 for p in recipients}
    # And at Twilio: two messages per user, one marketing and one transactional.
    assert stack.accepted_to() == {p: 2 for p in recipients}


def _window_rows(engine: Engine) -> int:
    with engine.connect() as conn:
        return len(conn.execute(select(UserSender.user_phone).where(UserSender.sender == SENDERS[1])).all())
