"""send_message's service: admit (re-check, rate slot, claim) -> wait for the slot -> call Twilio ->
record the answer. The claim is committed before the call and the answer after it, so a crash between
the two leaves a SENDING row that the task's retry turns AMBIGUOUS, never a second send.

Collaborators are arguments: the engine, the Twilio sender, the task scheduler, the clock and the sleep
function, so integration tests drive it at chosen instants against the Twilio emulator. The engine rather
than a unit of work: the common ending (Twilio accepted) is one statement with no transaction around it.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Engine

from shared.adapters.tasks import TaskScheduler
from shared.adapters.twilio_send import MessageSender
from shared.clock import Clock
from shared.db.queries.campaigns import could_complete
from shared.db.unit_of_work import UnitOfWork
from shared.services.campaign_lifecycle import complete_if_done
from shared.services.send_admission import Admission, admit, give_back, retake_slot
from shared.services.send_config import SendConfig
from shared.services.send_outcome import record_accepted, record_unsent
from shared.transport import Outcome, Result

# A process that misses its slot this often in a row is overloaded: its send goes back to the queue.
MAX_SLOT_RETAKES = 3


def send_message(
    engine: Engine,
    twilio: MessageSender,
    tasks: TaskScheduler,
    clock: Clock,
    sleep: Callable[[float], None],
    config: SendConfig,
    message_id: int,
    generation: int,
) -> Result:
    uow = UnitOfWork(engine)
    with uow:
        admission = admit(uow.session, message_id, generation, clock, config)
        uow.commit()
    admission = _await_slot(uow, clock, sleep, config, admission)
    if admission.outbound is None or admission.claimed is None:
        return _follow_up(engine, tasks, clock, admission)
    attempt = twilio.send(admission.outbound)
    if attempt.sid is not None:
        with engine.connect() as conn:
            outcome = record_accepted(conn, admission.claimed, attempt.sid, clock.now())
        return _follow_up(engine, tasks, clock, outcome)
    with uow:
        outcome = record_unsent(uow.session, admission.claimed, attempt, clock.now(), config)
        uow.commit()
    return _follow_up(engine, tasks, clock, outcome)


def _await_slot(
    uow: UnitOfWork, clock: Clock, sleep: Callable[[float], None], config: SendConfig, admission: Admission
) -> Admission:
    """Sleep until the reserved slot; a process that woke too late takes a fresh slot (a few times at
    most, then the message goes back to the queue)."""
    for _ in range(MAX_SLOT_RETAKES):
        if admission.slot is None:
            return admission
        wait = (admission.slot - clock.now()).total_seconds()
        if wait > 0:
            sleep(wait)
        if clock.now() - admission.slot <= config.late_tolerance:
            return admission
        with uow:
            admission = retake_slot(uow.session, admission, clock, config)
            uow.commit()
    if admission.slot is None:
        return admission
    with uow:
        admission = give_back(uow.session, admission, clock.now(), config)
        uow.commit()
    return admission


def _follow_up(engine: Engine, tasks: TaskScheduler, clock: Clock, admission: Admission) -> Result:
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
        _complete_if_done(engine, admission.campaign_id, clock)
    return admission.result


def _complete_if_done(engine: Engine, campaign_id: int, clock: Clock) -> None:
    """Probe first (one statement, no transaction), after this send's commit like the completion itself:
    if the probe sees work left, so would the completion, and the send that finishes that work checks again."""
    with engine.connect() as conn:
        possible = could_complete(conn, campaign_id)
    if possible:
        complete_if_done(UnitOfWork(engine), campaign_id, clock)
