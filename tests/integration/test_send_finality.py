"""A STOP, a pause and a cancel are final the moment they are acknowledged, and a crash while a send waits
for its slot drops nothing. Real PostgreSQL, the Twilio emulator through the SDK, real threads and the real
clock: the races are run, not simulated."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, insert, select, update

from infra.local.twilio_emulator import TwilioEmulator
from shared.clock import FixedClock, SystemClock
from shared.db.models import Message, User
from shared.db.unit_of_work import UnitOfWork
from shared.domain.enums import ConsentState
from shared.services import campaign_lifecycle as lifecycle
from shared.services.consent import change_consent
from shared.services.rate_limiter import campaign_key, reserve_slot
from shared.services.sender import send_message
from tests.integration.pipeline_support import RecordingTasks
from tests.integration.send_harness import CONFIG, twilio_sender
from tests.seeding import add_users, queued_message

SLOW_ANSWER_SECONDS = 1.0


def _opted_in_now(engine: Engine) -> None:
    with engine.begin() as conn:  # inside the 24-hour window at the real time the test runs
        conn.execute(update(User).values(last_inbound_at=datetime.now(UTC)))


def _send_in_thread(
    engine: Engine, twilio: TwilioEmulator, message_id: int, sleep: Callable[[float], None] = time.sleep
) -> threading.Thread:
    sender = twilio_sender(twilio.account_sid, twilio.auth_token, twilio.base_url, timeout=10)
    thread = threading.Thread(
        target=send_message,
        args=(UnitOfWork(engine), sender, RecordingTasks(), SystemClock(), sleep, CONFIG, message_id, 0),
    )
    thread.start()
    return thread


def _status(engine: Engine, message_id: int) -> str:
    with engine.connect() as conn:
        return str(conn.execute(select(Message.status).where(Message.id == message_id)).scalar_one())


def _wait(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def _accepted_at(twilio: TwilioEmulator) -> list[datetime]:
    return [datetime.fromisoformat(m["created_at"]) for m in twilio.messages()]


def _stop(engine: Engine, phone: str) -> datetime:
    """The consent change as the inbound webhook makes it; returns when it was acknowledged (committed)."""
    with UnitOfWork(engine) as uow:
        change_consent(uow.session, phone, ConsentState.STOP, source="inbound_keyword", at=datetime.now(UTC))
        uow.commit()
    return datetime.now(UTC)


def _slot_held(engine: Engine, message_id: int) -> bool:
    with engine.connect() as conn:
        return conn.execute(select(Message.slot_at).where(Message.id == message_id)).scalar_one() is not None


def _recipient(engine: Engine, message_id: int) -> str:
    with engine.connect() as conn:
        return str(conn.execute(select(Message.recipient_phone).where(Message.id == message_id)).scalar_one())


def test_a_stop_during_the_twilio_call_is_acknowledged_only_after_that_call(
    engine: Engine, twilio: TwilioEmulator
) -> None:
    message_id = queued_message(engine)
    _opted_in_now(engine)
    twilio.set_faults({"rate": 1, "delay": SLOW_ANSWER_SECONDS, "accept": True})
    sender = _send_in_thread(engine, twilio, message_id)
    _wait(lambda: _status(engine, message_id) == "SENDING")

    acknowledged = _stop(engine, _recipient(engine, message_id))
    sender.join()

    # The send had passed its consent check: it may finish, but the STOP's acknowledgement waited for it.
    (accepted,) = _accepted_at(twilio)
    assert accepted < acknowledged
    assert acknowledged - accepted >= timedelta(seconds=SLOW_ANSWER_SECONDS * 0.8)


def test_a_stop_acknowledged_while_a_send_waits_for_its_slot_stops_that_send(
    engine: Engine, twilio: TwilioEmulator
) -> None:
    message_id = queued_message(engine, rate=2)
    _opted_in_now(engine)
    # The campaign's slot calendar is half a second ahead, so the send sleeps before its claim.
    with UnitOfWork(engine) as uow:
        campaign_id = uow.session.execute(select(Message.campaign_id)).scalar_one()
        reserve_slot(uow.session, [campaign_key(campaign_id, 2, CONFIG.rate_margin)], datetime.now(UTC))
        uow.commit()
    # The send's first sleep (for its slot) is held until the STOP is committed: on a loaded machine the
    # STOP could otherwise come after the slot, when the send has rightly claimed and sent already.
    asleep, release = threading.Event(), threading.Event()

    def held_sleep(seconds: float) -> None:
        if not release.is_set():
            asleep.set()
            assert release.wait(30), "the test never released the send"
        time.sleep(seconds)

    sender = _send_in_thread(engine, twilio, message_id, held_sleep)
    assert asleep.wait(30)
    assert _slot_held(engine, message_id)  # admitted, asleep until its slot

    acknowledged = _stop(engine, _recipient(engine, message_id))
    release.set()
    sender.join()

    assert [t for t in _accepted_at(twilio) if t > acknowledged] == []
    assert twilio.messages() == []
    assert _status(engine, message_id) == "WITHHELD"


@pytest.mark.parametrize("action", ["pause", "cancel"])
def test_a_pause_or_cancel_during_the_twilio_call_is_acknowledged_only_after_it(
    engine: Engine, twilio: TwilioEmulator, action: str
) -> None:
    message_id = queued_message(engine)
    _opted_in_now(engine)
    twilio.set_faults({"rate": 1, "delay": SLOW_ANSWER_SECONDS, "accept": True})
    with engine.begin() as conn:  # a second recipient still waiting keeps the campaign from completing
        campaign_id = conn.execute(select(Message.campaign_id)).scalar_one()
        (other,) = add_users(engine, 1, start=5)
        conn.execute(insert(Message).values(campaign_id=campaign_id, recipient_phone=other, body="Hi"))
    sender = _send_in_thread(engine, twilio, message_id)
    _wait(lambda: _status(engine, message_id) == "SENDING")

    transition = lifecycle.pause_campaign if action == "pause" else lifecycle.cancel_campaign
    result = transition(UnitOfWork(engine), campaign_id, SystemClock())
    acknowledged = datetime.now(UTC)
    sender.join()

    assert result.changed
    (accepted,) = _accepted_at(twilio)
    assert accepted < acknowledged


def test_a_send_that_dies_while_waiting_for_its_slot_leaves_its_message_unsent_and_the_retry_sends_it(
    engine: Engine, twilio: TwilioEmulator
) -> None:
    message_id = queued_message(engine)
    _opted_in_now(engine)
    sender = twilio_sender(twilio.account_sid, twilio.auth_token, twilio.base_url, timeout=10)

    class Killed(BaseException):
        """The process dies (SIGKILL) in the middle of the slot's wait."""

    def dying_sleep(seconds: float) -> None:
        raise Killed

    # A clock that stands still: the slot is always ahead of it, so the send always waits (a loaded
    # machine cannot skip the wait by arriving late), and dies there.
    with pytest.raises(Killed):
        send_message(
            UnitOfWork(engine),
            sender,
            RecordingTasks(),
            FixedClock(datetime.now(UTC)),
            dying_sleep,
            CONFIG,
            message_id,
            0,
        )

    # Nothing was claimed: the row is provably unsent ...
    assert _status(engine, message_id) == "QUEUED"
    # ... and Cloud Tasks' retry of the same task sends it, once. (A wide margin lets the retry start late
    # on a loaded machine without giving its send back to the queue as an overloaded process does.)
    patient = replace(CONFIG, rate_margin=0.5)
    send_message(
        UnitOfWork(engine), sender, RecordingTasks(), SystemClock(), time.sleep, patient, message_id, 0
    )
    assert _status(engine, message_id) == "ACCEPTED"
    assert len(twilio.messages()) == 1
