"""send_message's service on real PostgreSQL against the Twilio emulator (through the real SDK), with a
clock the test sets and a recording stand-in for Cloud Tasks."""

from __future__ import annotations

import socket
import threading
import time as clock_time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, time, timedelta

import pytest
from sqlalchemy import Engine, insert, select, update

from infra.local.twilio_emulator import TwilioEmulator
from shared.adapters.twilio_send import OutboundMessage, TwilioMessageSender
from shared.clock import SystemClock
from shared.db.models import AuditEvent, Campaign, Message, RateLimiter, User
from shared.db.unit_of_work import UnitOfWork
from shared.domain.session_window import NO_TEMPLATE_REASON
from shared.outcome import Outcome, Result
from shared.services.rate_limiter import RateKey, campaign_key, reserve_slot, sender_key
from shared.services.send_admission import CONSENT_REVOKED_REASON
from shared.services.send_config import SendConfig
from shared.services.sender import MAX_SLOT_RETAKES, PUSH_ALLOWANCE, send_message
from tests.integration.pipeline_support import campaign_row
from tests.integration.send_harness import CONFIG, CONTENT_SID, Harness, twilio_sender
from tests.seeding import T0, add_users, queued_message


def test_a_send_is_claimed_sent_once_and_recorded_with_its_sid(harness: Harness) -> None:
    message_id = queued_message(harness.engine)

    assert harness.send(message_id).outcome is Outcome.DONE

    row = harness.message(message_id)
    (sent,) = harness.twilio.messages()
    assert (row.status, row.provider_sid, row.attempts) == ("ACCEPTED", sent["sid"], 1)
    assert (sent["to"], sent["body"], sent["content_sid"]) == (
        f"whatsapp:{row.recipient_phone}",
        "Hi U0",
        None,
    )
    assert sent["status_callback"] == f"{CONFIG.status_callback_base}?message_id={message_id}"


def test_the_same_task_dispatched_twice_sends_once(harness: Harness) -> None:
    message_id = queued_message(harness.engine)

    harness.send(message_id)
    assert harness.send(message_id).outcome is Outcome.DONE

    assert len(harness.twilio.messages()) == 1
    assert harness.message(message_id).attempts == 1


def test_a_task_of_an_older_generation_sends_nothing(harness: Harness) -> None:
    message_id = queued_message(harness.engine)
    with harness.engine.begin() as conn:
        conn.execute(update(Message).values(generation=2))

    harness.send(message_id, generation=1)

    assert harness.twilio.messages() == []
    assert harness.message(message_id).status == "QUEUED"


def test_a_stop_after_fan_out_wins_over_the_queued_message(harness: Harness) -> None:
    message_id = queued_message(harness.engine)
    with harness.engine.begin() as conn:
        conn.execute(update(User).values(consent_state="STOP"))

    harness.send(message_id)

    row = harness.message(message_id)
    assert (row.status, row.status_reason) == ("WITHHELD", CONSENT_REVOKED_REASON)
    assert harness.twilio.messages() == []
    assert harness.audit_kinds(message_id) == ["message.withheld"]


def test_a_paused_campaign_parks_the_message_without_a_task(harness: Harness) -> None:
    message_id = queued_message(harness.engine)
    with harness.engine.begin() as conn:
        conn.execute(update(Campaign).values(status="PAUSED", paused_from="RUNNING"))

    harness.send(message_id)

    row = harness.message(message_id)
    assert (row.status, row.generation, row.scheduled_at) == ("QUEUED", 1, None)
    assert harness.twilio.messages() == [] and harness.tasks.tasks == []


def test_a_cancelled_campaign_withholds_the_message(harness: Harness) -> None:
    message_id = queued_message(harness.engine)
    with harness.engine.begin() as conn:
        conn.execute(update(Campaign).values(status="CANCELLED"))

    harness.send(message_id)

    assert (harness.message(message_id).status, harness.message(message_id).status_reason) == (
        "WITHHELD",
        "campaign cancelled",
    )
    assert harness.twilio.messages() == []


def test_a_message_due_inside_quiet_hours_is_deferred_to_the_window_end(harness: Harness) -> None:
    # T0 is 12:00 UTC; the campaign's quiet hours 11:00-13:00 in UTC cover it.
    message_id = queued_message(harness.engine, quiet=(time(11), time(13)))

    harness.send(message_id)

    (task,) = harness.tasks.tasks
    window_end = T0 + timedelta(hours=1)
    assert (task.message_id, task.generation, task.at) == (message_id, 1, window_end)
    row = harness.message(message_id)
    assert (row.status, row.generation, row.scheduled_at) == ("QUEUED", 1, window_end)
    assert harness.twilio.messages() == []

    harness.clock.set(window_end)
    harness.send(message_id, generation=1)
    assert len(harness.twilio.messages()) == 1


def test_outside_the_24_hour_window_the_template_content_sid_is_sent(harness: Harness) -> None:
    message_id = queued_message(harness.engine, inbound_ago=timedelta(hours=25), content_sid=CONTENT_SID)

    harness.send(message_id)

    (sent,) = harness.twilio.messages()
    assert (sent["content_sid"], sent["content_variables"]) == (CONTENT_SID, {"1": "U0"})
    assert not sent["body"]


def test_outside_the_window_without_a_content_sid_the_message_is_withheld(harness: Harness) -> None:
    message_id = queued_message(harness.engine, inbound_ago=None)

    harness.send(message_id)

    row = harness.message(message_id)
    assert (row.status, row.status_reason) == ("WITHHELD", NO_TEMPLATE_REASON)
    assert harness.twilio.messages() == []


def test_transient_errors_are_retried_after_the_configured_delays_then_fail(harness: Harness) -> None:
    message_id = queued_message(harness.engine)
    harness.twilio.set_faults({"rate": 1, "http_status": 429, "error_code": 20429})

    scheduled = []
    for generation in range(3):
        harness.send(message_id, generation)
        task = harness.tasks.tasks[-1]
        scheduled.append(task.at - harness.clock.now())
        harness.clock.set(task.at)
    result = harness.send(message_id, 3)

    assert scheduled == list(CONFIG.retry_delays)
    row = harness.message(message_id)
    assert (result.outcome, row.status, row.error_code, row.retry_count, row.attempts) == (
        Outcome.PERMANENT_FAILURE,
        "FAILED",
        20429,
        3,
        4,
    )
    assert harness.audit_kinds(message_id) == ["message.retried"] * 3 + ["message.failed"]


def test_a_throughput_error_comes_back_later_without_using_a_retry(harness: Harness) -> None:
    message_id = queued_message(harness.engine)
    harness.twilio.set_faults({"rate": 1, "http_status": 429, "error_code": 63018})

    harness.send(message_id)

    (task,) = harness.tasks.tasks
    row = harness.message(message_id)
    assert (row.status, row.retry_count, task.at) == (
        "QUEUED",
        0,
        harness.clock.now() + CONFIG.throughput_defer,
    )
    with harness.engine.connect() as conn:
        detail = conn.execute(
            select(AuditEvent.detail).where(AuditEvent.kind == "message.throttled")
        ).scalar_one()
    assert detail["until"] == task.at.isoformat()  # how long it waited, for the campaign analytics


def test_a_permanent_error_fails_the_message_at_once(harness: Harness) -> None:
    message_id = queued_message(harness.engine)
    harness.twilio.set_faults({"rate": 1, "http_status": 400, "error_code": 21211})

    harness.send(message_id)

    row = harness.message(message_id)
    assert (row.status, row.error_code, harness.tasks.tasks) == ("FAILED", 21211, [])


def test_an_opt_out_error_fails_the_message_and_records_stop(harness: Harness) -> None:
    message_id = queued_message(harness.engine)
    harness.twilio.set_faults({"rate": 1, "http_status": 400, "error_code": 21610})

    harness.send(message_id)

    row = harness.message(message_id)
    with harness.engine.connect() as conn:
        consent = conn.execute(select(User.consent_state)).scalar_one()
        source = conn.execute(
            select(AuditEvent.source).where(AuditEvent.kind == "consent.changed")
        ).scalar_one()
    assert (row.status, consent, source) == ("FAILED", "STOP", "send_error:21610")


def test_a_credentials_error_pauses_the_campaign_and_parks_the_message(harness: Harness) -> None:
    message_id = queued_message(harness.engine)
    harness.twilio.set_faults({"rate": 1, "http_status": 401, "error_code": 20003})

    harness.send(message_id)

    row = harness.message(message_id)
    assert (row.status, row.scheduled_at, row.retry_count) == ("QUEUED", None, 0)
    assert campaign_row(harness.engine, row.campaign_id).status == "PAUSED"


def test_a_timeout_after_twilio_accepted_is_ambiguous_and_never_resent(
    engine: Engine, twilio: TwilioEmulator
) -> None:
    harness = Harness(engine, twilio, timeout=0.3)
    message_id = queued_message(engine)
    twilio.set_faults({"rate": 1, "accept": True, "delay": 1.0})

    harness.send(message_id)
    twilio.set_faults({"rate": 0})
    harness.clock.advance(timedelta(minutes=5))
    harness.send(message_id)

    assert harness.message(message_id).status == "AMBIGUOUS"
    assert len(twilio.messages()) == 1
    assert harness.tasks.tasks == []


def test_an_unreachable_twilio_is_retried_because_nothing_was_sent(harness: Harness) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    harness.sender = twilio_sender("AC" + "0" * 32, "token", f"http://127.0.0.1:{port}", timeout=2)
    message_id = queued_message(harness.engine)

    harness.send(message_id)

    row = harness.message(message_id)
    assert (row.status, row.retry_count, row.generation) == ("QUEUED", 1, 1)


def test_a_claim_whose_sender_died_is_retried_later_then_marked_ambiguous(harness: Harness) -> None:
    message_id = queued_message(harness.engine)
    with harness.engine.begin() as conn:  # what a sender killed between its Twilio call and commit leaves
        conn.execute(update(Message).values(status="SENDING", claimed_at=T0, attempts=1))

    early = harness.send(message_id)
    harness.clock.advance(CONFIG.ambiguous_after)
    late = harness.send(message_id)

    assert (early.outcome, early.retry_after_seconds) == (Outcome.TRANSIENT_FAILURE, 15)
    assert late.outcome is Outcome.DONE
    assert harness.message(message_id).status == "AMBIGUOUS"
    assert harness.twilio.messages() == []


def test_a_send_waits_for_its_rate_slot_and_a_far_slot_is_rescheduled(harness: Harness) -> None:
    first = queued_message(harness.engine, rate=2)
    phones = add_users(harness.engine, 2, start=1)
    with harness.engine.begin() as conn:  # two more messages of the same campaign
        conn.execute(update(User).values(last_inbound_at=T0))
        campaign_id = conn.execute(select(Message.campaign_id)).scalar_one()
        second, third = conn.execute(
            insert(Message).returning(Message.id),
            [{"campaign_id": campaign_id, "recipient_phone": p, "body": "Hi"} for p in phones],
        ).scalars()

    harness.send(first)
    harness.clock.set(T0)
    harness.send(second)
    harness.clock.set(T0)
    harness.send(third)

    step, lead, claim = timedelta(seconds=1.025 / 2), CONFIG.slot_lead, CONFIG.claim_lead
    # The first slot lies `lead` past its reservation (for the admission's commit); the next are a step
    # apart. Each send sleeps until `claim` before its slot, claims, then sleeps the rest of the way.
    waits = [lead - claim, claim, lead + step - claim, claim]
    assert harness.slept == [pytest.approx(s.total_seconds()) for s in waits]
    assert [m["to"] for m in harness.twilio.messages()] == [
        f"whatsapp:{harness.message(first).recipient_phone}",
        f"whatsapp:{harness.message(second).recipient_phone}",
    ]
    (task,) = harness.tasks.tasks
    row = harness.message(third)
    assert row.slot_at == T0 + lead + 2 * step
    assert task.at == row.slot_at - CONFIG.max_wait / 2
    # The deferral is counted for the campaign analytics, with how far off its slot was.
    assert (row.rate_limit_deferrals, row.rate_limit_wait_seconds) == (
        1,
        pytest.approx((lead + 2 * step).total_seconds()),
    )
    assert (harness.message(first).rate_limit_deferrals, harness.message(second).rate_limit_deferrals) == (
        0,
        0,
    )


def test_the_last_finished_message_completes_the_campaign(harness: Harness) -> None:
    message_id = queued_message(harness.engine)

    harness.send(message_id)

    assert campaign_row(harness.engine, harness.message(message_id).campaign_id).status == "COMPLETED"


STEP = timedelta(seconds=(1 + CONFIG.rate_margin) / 2)  # a slot at 2/s
# The sender's own key at 2/s too, so that both keys' slots are as long (0.51 s).
SLOW_SENDER = replace(CONFIG, sender_rate=2)


def _stalling(
    harness: Harness, overshoot: float, during: Callable[[], None] = lambda: None
) -> Callable[[float], None]:
    """A sleep whose first call (until the claim) stalls `overshoot` seconds past its end, as an overloaded
    process would; `during` runs inside that stall."""
    overshoots = [overshoot]

    def sleep(seconds: float) -> None:
        if overshoots:
            during()
        harness.sleep(seconds + (overshoots.pop() if overshoots else 0.0))

    return sleep


def _send(harness: Harness, message_id: int, sleep: Callable[[float], None], config: SendConfig) -> Result:
    return send_message(
        UnitOfWork(harness.engine), harness.sender, harness.tasks, harness.clock, sleep, config, message_id, 0
    )


def _hold_t0(harness: Harness, config: SendConfig) -> list[RateKey]:
    """A send just before holds slot T0 on the campaign's key (2/s) and the sender's: the one under test
    gets T0 + one step. Returns the keys."""
    harness.clock.set(T0)
    with harness.engine.begin() as conn:
        campaign_id = conn.execute(select(Message.campaign_id)).scalar_one()
    keys = [
        campaign_key(campaign_id, 2, config.rate_margin),
        sender_key(config.sender_id, config.sender_rate, config.rate_margin),
    ]
    with UnitOfWork(harness.engine) as uow:
        reserve_slot(uow.session, keys, T0)
        uow.commit()
    return keys


def _tats(harness: Harness) -> dict[str, datetime]:
    """Each key's next free slot, by kind (campaign, sender)."""
    with harness.engine.connect() as conn:
        rows = conn.execute(select(RateLimiter.key, RateLimiter.tat)).all()
    return {key.split(":")[0]: tat for key, tat in rows}


def test_a_send_that_wakes_late_starts_and_moves_its_calendars_later_by_what_it_overran(
    harness: Harness,
) -> None:
    """Woken 0.3 s late (less than a slot): the send starts now, and both keys' next free slot moves by
    the overrun past the tolerance plus the push's allowance, so the send `rate` after it still starts a
    second and half the margin after it (docs/architecture.md, "Late sends")."""
    message_id = queued_message(harness.engine, rate=2)
    _hold_t0(harness, SLOW_SENDER)

    result = _send(harness, message_id, _stalling(harness, 0.3), SLOW_SENDER)

    assert result.outcome is Outcome.DONE
    claim = SLOW_SENDER.claim_lead
    # One sleep only (to the claim, stalled): no fresh slot was waited for.
    assert harness.slept == [pytest.approx((STEP - claim).total_seconds() + 0.3)]
    started = T0 + STEP - claim + timedelta(seconds=0.3)
    assert harness.clock.now() == started
    assert len(harness.twilio.messages()) == 1
    overrun = started - (T0 + STEP) - SLOW_SENDER.late_tolerance
    moved = T0 + 2 * STEP + overrun + PUSH_ALLOWANCE
    assert _tats(harness) == {"campaign": moved, "sender": moved}
    # The next send takes that slot: `rate` sends after this one, that is a second and half the margin on.
    assert moved + STEP - started >= timedelta(seconds=1 + SLOW_SENDER.rate_margin / 2)


def test_a_late_send_does_not_move_a_key_by_more_than_one_of_its_slots(harness: Harness) -> None:
    """The sender's key at 80/s has 12.8 ms slots: moving it 0.28 s would cost every campaign on that
    sender 22 of them, so a campaign at 2/s that overran that much takes a fresh slot instead."""
    message_id = queued_message(harness.engine, rate=2)
    _hold_t0(harness, CONFIG)

    result = _send(harness, message_id, _stalling(harness, 0.3), CONFIG)

    assert result.outcome is Outcome.DONE
    claim = CONFIG.claim_lead
    # Slot T0 + step was missed; the fresh slot is the campaign calendar's next, T0 + 2 steps.
    assert harness.slept == [
        pytest.approx((STEP - claim).total_seconds() + 0.3),
        pytest.approx((STEP - timedelta(seconds=0.3) + claim).total_seconds()),
    ]
    assert harness.clock.now() == T0 + 2 * STEP
    assert _tats(harness)["campaign"] == T0 + 3 * STEP
    assert len(harness.twilio.messages()) == 1


def test_a_send_that_overran_by_more_than_a_slot_takes_a_fresh_one(harness: Harness) -> None:
    message_id = queued_message(harness.engine, rate=2)
    _hold_t0(harness, SLOW_SENDER)

    result = _send(harness, message_id, _stalling(harness, 0.6), SLOW_SENDER)

    assert result.outcome is Outcome.DONE
    woke = T0 + STEP - SLOW_SENDER.claim_lead + timedelta(seconds=0.6)
    # 0.58 s past the tolerance, more than a 0.51-s slot: the calendar's next slot (T0 + 2 steps) is
    # already past, so the fresh one is now + slot_lead.
    assert harness.slept == [
        pytest.approx((STEP - SLOW_SENDER.claim_lead).total_seconds() + 0.6),
        pytest.approx(SLOW_SENDER.slot_lead.total_seconds()),
    ]
    assert harness.clock.now() == woke + SLOW_SENDER.slot_lead
    assert _tats(harness)["campaign"] == woke + SLOW_SENDER.slot_lead + STEP
    assert len(harness.twilio.messages()) == 1


def test_a_late_send_on_a_key_booked_a_second_ahead_takes_a_fresh_slot(harness: Harness) -> None:
    """Another send already holds a slot more than a second past this one's: moving the calendar would
    not reach it, so the late send takes the calendar's next slot rather than start off its own."""
    message_id = queued_message(harness.engine, rate=2)
    keys = _hold_t0(harness, SLOW_SENDER)

    def book_ahead() -> None:  # a send reserves T0 + 2 steps: the tat, T0 + 3 steps, is past slot + 1 s
        with UnitOfWork(harness.engine) as uow:
            reserve_slot(uow.session, keys, T0)
            uow.commit()

    result = _send(harness, message_id, _stalling(harness, 0.1, during=book_ahead), SLOW_SENDER)

    assert result.outcome is Outcome.DONE
    assert len(harness.slept) == 2
    # The fresh slot is the calendar's next (T0 + 3 steps), moved by no push.
    assert harness.clock.now() == T0 + 3 * STEP
    assert _tats(harness) == {"campaign": T0 + 4 * STEP, "sender": T0 + 4 * STEP}
    assert len(harness.twilio.messages()) == 1


def test_a_send_is_judged_late_when_its_bytes_leave_not_before_the_sdk_built_its_request(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SDK builds the request (here taking 0.3 s, as a starved process can) before the lateness check,
    which runs right before the bytes leave: the send is judged 0.29 s late and moves its calendars. Checked
    before the build, it would have counted as on time and left the calendars where they were, though its
    request reached Twilio 0.29 s after its slot."""
    message_id = queued_message(harness.engine, rate=2)
    _hold_t0(harness, SLOW_SENDER)
    arguments = TwilioMessageSender._arguments

    def slow_arguments(self: TwilioMessageSender, message: OutboundMessage) -> dict[str, object]:
        harness.clock.advance(timedelta(seconds=0.3))
        return arguments(self, message)

    monkeypatch.setattr(TwilioMessageSender, "_arguments", slow_arguments)

    result = _send(harness, message_id, harness.sleep, SLOW_SENDER)

    assert result.outcome is Outcome.DONE
    started = T0 + STEP - SLOW_SENDER.claim_lead + timedelta(seconds=0.3)
    assert harness.slept == [pytest.approx((STEP - SLOW_SENDER.claim_lead).total_seconds())]
    overrun = started - (T0 + STEP) - SLOW_SENDER.late_tolerance
    moved = T0 + 2 * STEP + overrun + PUSH_ALLOWANCE
    assert _tats(harness) == {"campaign": moved, "sender": moved}
    assert len(harness.twilio.messages()) == 1


def test_a_send_that_keeps_missing_its_slot_goes_back_to_the_queue_and_twilio_sees_nothing(
    harness: Harness,
) -> None:
    """Every wake-up overshoots by more than a slot: after MAX_SLOT_RETAKES fresh slots the claimed
    message goes back to the queue. The request was already built; not a byte of it was written."""
    message_id = queued_message(harness.engine, rate=2)
    _hold_t0(harness, SLOW_SENDER)

    def always_late(seconds: float) -> None:
        harness.sleep(seconds + 0.6)

    result = _send(harness, message_id, always_late, SLOW_SENDER)

    assert result.outcome is Outcome.DONE
    assert harness.twilio.messages() == []
    message = harness.message(message_id)
    assert message.status == "QUEUED"
    assert message.provider_sid is None
    # The claim's wake-up, then a wait for each fresh slot but the last (given back instead).
    assert len(harness.slept) == MAX_SLOT_RETAKES
    assert [task.message_id for task in harness.tasks.tasks] == [message_id]


def test_time_spent_waiting_for_the_row_lock_does_not_make_the_send_miss_its_slot(harness: Harness) -> None:
    """The slot is reserved from the clock read after the lock wait, not before it: a send queued behind
    another transaction for a second still starts on its first slot instead of retaking one."""
    message_id = queued_message(harness.engine, rate=2)
    with harness.engine.begin() as conn:  # within the 24-hour window at the real time this test runs at
        conn.execute(update(User).values(last_inbound_at=SystemClock().now()))
    config = replace(CONFIG, rate_margin=0.5, slot_lead=timedelta(seconds=0.5))
    held = threading.Event()

    def hold_the_row_for_a_second() -> None:
        with harness.engine.begin() as conn:
            conn.execute(select(Message.id).where(Message.id == message_id).with_for_update())
            held.set()
            clock_time.sleep(1.0)

    holder = threading.Thread(target=hold_the_row_for_a_second)
    holder.start()
    held.wait()
    result = send_message(
        UnitOfWork(harness.engine),
        harness.sender,
        harness.tasks,
        SystemClock(),
        clock_time.sleep,
        config,
        message_id,
        0,
    )
    holder.join()

    assert result == Result(Outcome.DONE, "accepted")
    claimed_at = harness.message(message_id).claimed_at
    with harness.engine.connect() as conn:
        tat = conn.execute(select(RateLimiter.tat).where(RateLimiter.key.like("campaign:%"))).scalar_one()
    # One slot taken, not two: the claim came `claim_lead` before it, or (on a loaded machine) at most the
    # late tolerance after it. A slot reserved from the clock read before the lock wait would have been
    # retaken, one spacing (0.75 s) later than the claim.
    slot = tat - campaign_key(0, 2, config.rate_margin).spacing
    assert (
        claimed_at - config.late_tolerance
        <= slot
        <= claimed_at + config.claim_lead + timedelta(milliseconds=200)
    )
    assert len(harness.twilio.messages()) == 1
