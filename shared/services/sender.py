"""send_message's service: admit (checks, rate slot) -> wait for the slot -> claim at the last moment under
the send guard's locks -> call Twilio -> record the answer -> release the locks.

- Nothing is claimed while the send waits for its slot: a crash during the wait leaves a QUEUED row that
  the task's retry sends (docs/architecture.md, "Exactly one message per recipient").
- The claim (SENDING, committed) comes immediately before the call, after the same checks again, holding
  shared locks on the campaign and the recipient that every STOP, pause and cancel must wait for
  (shared.db.queries.send_guard): once one of those is acknowledged, Twilio accepts nothing more that it
  should have stopped (docs/architecture.md, "STOP is final at its acknowledgement").
- A crash between the claim and the answer's record leaves SENDING, which the task's retry (or the
  sweeper) turns AMBIGUOUS and reconciliation settles against Twilio's own list: never a blind resend.

Collaborators are arguments: the unit of work, the Twilio sender, the task scheduler, the clock and the sleep
function, so integration tests drive it at chosen instants against the Twilio emulator.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta

from shared.adapters.tasks import TaskScheduler
from shared.adapters.twilio_send import MessageSender
from shared.clock import Clock
from shared.db.queries.campaigns import could_complete
from shared.db.queries.send_guard import holding_for_send
from shared.db.unit_of_work import UnitOfWork
from shared.outcome import Outcome, Result
from shared.services.campaign_lifecycle import complete_if_done
from shared.services.send_admission import (
    Admission,
    admit,
    claim_for_send,
    give_back,
    push_later,
    retake_slot,
)
from shared.services.send_config import SendConfig
from shared.services.send_outcome import record_accepted, record_unsent

# A process that misses its slot this often in a row is overloaded: its send goes back to the queue.
MAX_SLOT_RETAKES = 3
# A late send moves its keys' calendars by what it overran plus this, the push statement's own round trip
# (one prepared statement, well under a millisecond on an idle machine; a few under load).
PUSH_ALLOWANCE = timedelta(milliseconds=5)


def send_message(
    uow: UnitOfWork,
    twilio: MessageSender,
    tasks: TaskScheduler,
    clock: Clock,
    sleep: Callable[[float], None],
    config: SendConfig,
    message_id: int,
    generation: int,
) -> Result:
    with uow:
        admission = admit(uow.session, message_id, generation, clock, config)
        uow.commit()
    if admission.outbound is None or admission.context is None or admission.slot is None:
        return _follow_up(uow, tasks, clock, admission)
    # Wake a little before the slot: the claim's round trips then end by the slot, not after it.
    _sleep_until(clock, sleep, admission.slot - config.claim_lead)
    context = admission.context
    with holding_for_send(uow, context.campaign_id, context.recipient_phone):
        outcome = _claim_and_send(uow, twilio, clock, sleep, config, admission, generation)
    return _follow_up(uow, tasks, clock, outcome)


def _claim_and_send(
    uow: UnitOfWork,
    twilio: MessageSender,
    clock: Clock,
    sleep: Callable[[float], None],
    config: SendConfig,
    admission: Admission,
    generation: int,
) -> Admission:
    assert admission.context is not None and admission.slot is not None
    context = admission.context
    with uow:
        claimed = claim_for_send(uow.session, context.id, generation, clock, config)
        uow.commit()
    if not claimed.claimed:
        return claimed
    assert claimed.outbound is not None
    waited = [replace(claimed, slot=admission.slot)]

    def at_the_slot() -> bool:
        # Right before the request's first byte leaves (shared/adapters/wire_gate.py): the SDK has built
        # it during the claim's lead, and nothing but the write follows the lateness check.
        waited[0] = _await_slot(uow, clock, sleep, config, waited[0])
        return waited[0].outbound is not None and waited[0].slot is not None

    attempt = twilio.send(claimed.outbound, at_the_slot)
    claimed = waited[0]
    if attempt.withheld or claimed.outbound is None or claimed.slot is None:
        return claimed  # given back to the queue: never sent
    if attempt.sid is not None:
        return record_accepted(uow, context, attempt.sid, clock.now())
    with uow:
        outcome = record_unsent(uow.session, context, attempt, clock.now(), config)
        uow.commit()
    return outcome


def _await_slot(
    uow: UnitOfWork, clock: Clock, sleep: Callable[[float], None], config: SendConfig, admission: Admission
) -> Admission:
    """Sleep until the reserved slot. A process that woke too late moves its keys' calendars later by
    what it overran (plus PUSH_ALLOWANCE for that statement's own round trip) and sends; when that would
    cost more than a slot, or a key is reserved a second ahead, it takes a fresh slot instead (a few times
    at most, then the claimed message goes back to the queue, unsent). See docs/architecture.md,
    "Late sends"."""
    retakes = 0
    while retakes < MAX_SLOT_RETAKES:
        assert admission.slot is not None
        _sleep_until(clock, sleep, admission.slot)
        pushed = timedelta(0)
        over = clock.now() - admission.slot - config.late_tolerance
        if over > pushed and push_later(uow, admission, config, over + PUSH_ALLOWANCE):
            pushed = over + PUSH_ALLOWANCE
            # The statement's own round trip counts too: read the clock again.
            over = clock.now() - admission.slot - config.late_tolerance
        if over <= pushed:
            return admission
        retakes += 1
        with uow:
            admission = retake_slot(uow.session, admission, clock, config)
            uow.commit()
        if admission.slot is None:
            return admission
    with uow:
        admission = give_back(uow.session, admission, clock.now(), config)
        uow.commit()
    return admission


def _sleep_until(clock: Clock, sleep: Callable[[float], None], moment: datetime) -> None:
    wait = (moment - clock.now()).total_seconds()
    if wait > 0:
        sleep(wait)


def _follow_up(uow: UnitOfWork, tasks: TaskScheduler, clock: Clock, admission: Admission) -> Result:
    """After the commit: create the rescheduled task, and see whether the campaign is complete.

    If the task cannot be created, answering 503 makes Cloud Tasks retry this (now stale) task, whose
    handling re-creates the current generation's task."""
    if admission.task is not None:
        try:
            tasks.schedule([admission.task])
        except Exception as error:  # any RPC failure: the retry of this task repairs it
            return Result(
                Outcome.TRANSIENT_FAILURE, f"creating the follow-up task failed: {type(error).__name__}"
            )
    if admission.finished and admission.campaign_id is not None:
        _complete_if_done(uow, admission.campaign_id, clock)
    return admission.result


def _complete_if_done(uow: UnitOfWork, campaign_id: int, clock: Clock) -> None:
    """Probe first (one statement, no transaction), after this send's commit like the completion itself:
    if the probe sees work left, so would the completion, and the send that finishes that work checks again."""
    if could_complete(uow, campaign_id):
        complete_if_done(uow, campaign_id, clock)
