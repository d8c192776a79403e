"""Per-user frequency caps on the send path, on real PostgreSQL against the Twilio emulator through the
real SDK (docs/architecture.md, "Frequency caps")."""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, insert, select

from infra.local.twilio_emulator import TwilioEmulator
from shared.adapters.tasks import MAX_TASK_AHEAD
from shared.clock import SystemClock
from shared.db.models import FrequencyCap, Message
from shared.db.unit_of_work import UnitOfWork
from shared.services.sender import send_message
from tests.integration.send_harness import CONFIG, CONTENT_SID, Harness
from tests.seeding import T0, add_campaign, add_message, add_senders, add_users

DAY, WEEK = 24 * 3600, 7 * 24 * 3600


def set_caps(engine: Engine, *caps: tuple[int, int]) -> None:
    with engine.begin() as conn:
        conn.execute(insert(FrequencyCap), [{"max_messages": n, "window_seconds": w} for n, w in caps])


def campaign(engine: Engine, **columns: Any) -> int:
    return add_campaign(engine, status="RUNNING", content_sid=CONTENT_SID, **columns)


def earlier_message(
    engine: Engine, phone: str, ago: timedelta, status: str = "DELIVERED", **columns: Any
) -> None:
    add_message(engine, campaign(engine, **columns), phone, status=status, claimed_at=T0 - ago)


def test_a_cap_holds_across_campaigns_sending_to_the_same_users_at_once(
    engine: Engine, twilio: TwilioEmulator
) -> None:
    """Three campaigns over the same users, each message sent from its own thread at the same moment. Each
    campaign has a sender of its own, so their rate slots coincide and the three claims for one user come
    together: the claim's per-user lock lets exactly one through; the others are skipped by policy."""
    set_caps(engine, (1, DAY))
    phones = add_users(engine, 12)
    for i in range(3):
        add_senders(engine, f"pool{i}", 1, rate=500, first=10 * i)
    campaigns = [
        campaign(engine, frequency_cap_policy="skip", rate=500, sender_pool=f"pool{i}") for i in range(3)
    ]
    messages = [add_message(engine, c, p) for p in phones for c in campaigns]
    harness = Harness(engine, twilio)
    start = threading.Barrier(len(messages))

    def send(message_id: int, generation: int = 0) -> None:
        send_message(
            UnitOfWork(engine),
            harness.sender,
            harness.tasks,
            SystemClock(),
            time.sleep,
            CONFIG,
            message_id,
            generation,
        )

    def send_together(message_id: int) -> None:
        start.wait()
        send(message_id)

    threads = [threading.Thread(target=send_together, args=(m,)) for m in messages]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    # A send that missed its slot on the loaded machine went back to the queue: its task runs it again.
    while harness.tasks.tasks:
        task = harness.tasks.tasks.pop()
        send(task.message_id, task.generation)

    per_user = Counter(m["to"].removeprefix("whatsapp:") for m in twilio.messages())
    assert per_user == {p: 1 for p in phones}
    with engine.connect() as conn:
        rows = conn.execute(select(Message.status, Message.status_reason)).all()
    assert Counter(rows) == {("ACCEPTED", None): 12, ("SKIPPED", "frequency_cap"): 24}


def test_a_capped_message_is_deferred_until_the_cap_allows_it(harness: Harness) -> None:
    set_caps(harness.engine, (1, DAY))
    (phone,) = add_users(harness.engine, 1)
    earlier_message(harness.engine, phone, timedelta(hours=2))
    message_id = add_message(harness.engine, campaign(harness.engine), phone)

    harness.send(message_id)

    row = harness.message(message_id)
    until = T0 - timedelta(hours=2) + timedelta(days=1)
    assert (row.status, row.status_reason, row.frequency_cap_deferrals) == (
        "QUEUED",
        "deferred: frequency_cap",
        1,
    )
    assert [(t.message_id, t.at) for t in harness.tasks.tasks] == [(message_id, until)]
    assert harness.twilio.messages() == []
    assert "message.deferred" in harness.audit_kinds(message_id)


def test_the_tightest_of_several_caps_decides_when(harness: Harness) -> None:
    """1 per day and 3 per week: three messages on days -6, -4 and -2 fill the week; the day is free."""
    set_caps(harness.engine, (1, DAY), (3, WEEK))
    (phone,) = add_users(harness.engine, 1)
    for days in (6, 4, 2):
        earlier_message(harness.engine, phone, timedelta(days=days))
    message_id = add_message(harness.engine, campaign(harness.engine), phone)

    harness.send(message_id)

    (task,) = harness.tasks.tasks
    assert task.at == T0 - timedelta(days=6) + timedelta(days=7)


def test_a_deferral_past_the_campaigns_end_skips_the_message(harness: Harness) -> None:
    set_caps(harness.engine, (1, DAY))
    (phone,) = add_users(harness.engine, 1)
    earlier_message(harness.engine, phone, timedelta(hours=2))
    message_id = add_message(harness.engine, campaign(harness.engine, ends_at=T0 + timedelta(hours=6)), phone)

    harness.send(message_id)

    row = harness.message(message_id)
    assert (row.status, row.status_reason) == ("SKIPPED", "frequency_cap")
    assert harness.tasks.tasks == [] and harness.twilio.messages() == []


def test_a_transactional_campaign_is_exempt(harness: Harness) -> None:
    set_caps(harness.engine, (1, DAY))
    (phone,) = add_users(harness.engine, 1)
    earlier_message(harness.engine, phone, timedelta(hours=2))
    message_id = add_message(harness.engine, campaign(harness.engine, transactional=True), phone)

    harness.send(message_id)

    assert harness.message(message_id).status == "ACCEPTED"
    assert len(harness.twilio.messages()) == 1


@pytest.mark.parametrize(
    ("earlier", "why"),
    [
        ({"status": "DELIVERED", "transactional": True}, "a transactional message is not marketing"),
        ({"status": "FAILED"}, "a failed message never reached the user"),
        ({"status": "DELIVERED", "ago": timedelta(hours=25)}, "outside the window"),
    ],
)
def test_what_does_not_count_towards_a_cap(harness: Harness, earlier: dict[str, object], why: str) -> None:
    set_caps(harness.engine, (1, DAY))
    (phone,) = add_users(harness.engine, 1)
    ago = earlier.pop("ago", timedelta(hours=2))
    assert isinstance(ago, timedelta)
    earlier_message(harness.engine, phone, ago, **earlier)  # type: ignore[arg-type]
    message_id = add_message(harness.engine, campaign(harness.engine), phone)

    harness.send(message_id)

    assert harness.message(message_id).status == "ACCEPTED", why


def test_without_caps_nothing_is_held_back(harness: Harness) -> None:
    (phone,) = add_users(harness.engine, 1)
    earlier_message(harness.engine, phone, timedelta(minutes=5))
    message_id = add_message(harness.engine, campaign(harness.engine), phone)

    harness.send(message_id)

    assert harness.message(message_id).status == "ACCEPTED"


def test_a_deferral_beyond_cloud_tasks_horizon_comes_back_at_the_horizon_and_defers_again(
    harness: Harness,
) -> None:
    """A 60-day cap: the cap allows the message in 59 days, but Cloud Tasks takes a task at most 30 days
    ahead (the emulator refuses one beyond, as Google does); the task comes at 29 days, and defers again, until the day the cap allows."""
    set_caps(harness.engine, (1, 60 * DAY))
    (phone,) = add_users(harness.engine, 1)
    earlier_message(harness.engine, phone, timedelta(days=1))
    message_id = add_message(harness.engine, campaign(harness.engine), phone)

    harness.send(message_id)
    (task,) = harness.tasks.tasks
    assert task.at == T0 + MAX_TASK_AHEAD

    expected = [T0 + 2 * MAX_TASK_AHEAD, T0 - timedelta(days=1) + timedelta(days=60)]
    for at in expected:
        harness.clock.set(harness.tasks.tasks[-1].at)
        harness.send(message_id, harness.tasks.tasks[-1].generation)
        assert harness.tasks.tasks[-1].at == at
    assert harness.message(message_id).frequency_cap_deferrals == 3
    assert harness.twilio.messages() == []


def test_nothing_is_sent_after_the_campaigns_end(harness: Harness) -> None:
    """A message still waiting (deferred by quiet hours, a rate slot or a cap) when ends_at comes."""
    (phone,) = add_users(harness.engine, 1)
    message_id = add_message(
        harness.engine, campaign(harness.engine, ends_at=T0 - timedelta(seconds=1)), phone
    )

    harness.send(message_id)

    row = harness.message(message_id)
    assert (row.status, row.status_reason) == ("SKIPPED", "campaign_ended")
    assert harness.twilio.messages() == [] and harness.tasks.tasks == []
