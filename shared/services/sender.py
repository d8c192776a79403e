"""send_message's service: admit (re-check, rate slot, claim) -> wait for the slot -> call Twilio ->
record the answer. The claim is committed before the call and the answer after it, so a crash between
the two leaves a SENDING row that the task's retry turns AMBIGUOUS, never a second send.

Collaborators are arguments: the Twilio sender, the task scheduler, the clock and the sleep function,
so integration tests drive it at chosen instants against the Twilio emulator.
"""

from __future__ import annotations

from collections.abc import Callable

from shared.adapters.tasks import TaskScheduler
from shared.adapters.twilio_send import MessageSender
from shared.clock import Clock
from shared.db.unit_of_work import UnitOfWork
from shared.services.campaign_lifecycle import complete_if_done
from shared.services.send_admission import Admission, admit
from shared.services.send_config import SendConfig
from shared.services.send_outcome import record_outcome
from shared.transport import Outcome, Result


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
        admission = admit(uow.session, message_id, generation, clock.now(), config)
        uow.commit()
    if admission.outbound is None or admission.claimed is None or admission.slot is None:
        return _follow_up(uow, tasks, clock, admission)
    wait = (admission.slot - clock.now()).total_seconds()
    if wait > 0:
        sleep(wait)
    attempt = twilio.send(admission.outbound)
    with uow:
        outcome = record_outcome(uow.session, admission.claimed, attempt, clock.now(), config)
        uow.commit()
    return _follow_up(uow, tasks, clock, outcome)


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
        complete_if_done(uow, admission.campaign_id, clock)
    return admission.result
