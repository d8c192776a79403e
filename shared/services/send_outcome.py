"""The second transaction of a send: record what Twilio said, as a compare-and-set on SENDING.

docs/architecture.md, "Retries and Twilio errors": transient errors are retried after the configured delays and then FAILED;
throughput limits come back later without using a retry; permanent errors fail at once; an opt-out
error fails the message and records STOP; credential or suspension errors pause the campaign and park
the message. No answer after the request may have left means AMBIGUOUS, never a resend.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from sqlalchemy.orm import Session

from shared.adapters.twilio_send import SendAttempt
from shared.db.queries import messages as message_sql
from shared.db.queries.messages import SendContext
from shared.db.unit_of_work import UnitOfWork
from shared.domain.enums import ConsentState, MessageStatus
from shared.domain.twilio_errors import ErrorClass, classify, describe, retry_delay
from shared.outcome import Outcome, Result
from shared.services.campaign_lifecycle import pause_in_session
from shared.services.consent import change_consent
from shared.services.send_admission import Admission, audit_message, park, reschedule
from shared.services.send_config import SendConfig
from shared.services.sender_pause import pause_sender_for_error

AMBIGUOUS_REASON = "no answer from Twilio after the request may have reached it: awaiting its status callback"


def record_accepted(uow: UnitOfWork, context: SendContext, sid: str, now: datetime) -> Admission:
    """Twilio accepted: one statement, its own transaction (called outside `with uow:`), as nearly every
    send ends; only the other outcomes need record_unsent's transaction."""
    message_sql.record_accepted(uow, context.id, sid, now)
    return Admission(Result(Outcome.DONE, "accepted"), finished=True, campaign_id=context.campaign_id)


def record_unsent(
    session: Session, context: SendContext, attempt: SendAttempt, now: datetime, config: SendConfig
) -> Admission:
    """Twilio gave no SID: the answer decides between ambiguous, retry, defer, pause and fail."""
    return replace(_record(session, context, attempt, now, config), campaign_id=context.campaign_id)


def _record(
    session: Session, context: SendContext, attempt: SendAttempt, now: datetime, config: SendConfig
) -> Admission:
    if attempt.ambiguous:
        message_sql.set_fields(
            session,
            context.id,
            MessageStatus.SENDING,
            status=MessageStatus.AMBIGUOUS.value,
            status_reason=AMBIGUOUS_REASON,
        )
        audit_message(session, context, "message.ambiguous", now, {"reason": attempt.error_message})
        return Admission(Result(Outcome.DONE, "ambiguous"), finished=True)
    return _refused(session, context, attempt, now, config)


def _refused(
    session: Session, context: SendContext, attempt: SendAttempt, now: datetime, config: SendConfig
) -> Admission:
    error_class = classify(attempt.http_status, attempt.error_code)
    reason = _reason(attempt)
    detail: dict[str, object] = {
        "error_code": attempt.error_code,
        "http_status": attempt.http_status,
        "reason": reason,
    }
    if error_class is ErrorClass.RETRY:
        delay = retry_delay(context.retry_count + 1, config.retry_delays)
        if delay is not None:
            audit_message(
                session, context, "message.retried", now, detail | {"retry": context.retry_count + 1}
            )
            return reschedule(
                session,
                context,
                now + delay,
                f"retrying after: {reason}",
                expected=MessageStatus.SENDING,
                retried=True,
                error_code=attempt.error_code,
            )
        return _fail(session, context, now, f"gave up after retries: {reason}", attempt.error_code, detail)
    if error_class is ErrorClass.PAUSE_SENDER and context.sender is not None:
        return _pause_sender(session, context, now, reason, attempt.error_code, detail)
    # Without a pool there is no other sender to move to: a sender-level limit waits, as throughput does.
    if error_class in (ErrorClass.DEFER, ErrorClass.PAUSE_SENDER):
        until = now + config.throughput_defer
        # `until` lets the campaign analytics say how long throttled sends waited.
        audit_message(session, context, "message.throttled", now, detail | {"until": until.isoformat()})
        return reschedule(
            session,
            context,
            until,
            f"deferred: {reason}",
            expected=MessageStatus.SENDING,
        )
    if error_class is ErrorClass.PAUSE_CAMPAIGN:
        park(session, context, expected=MessageStatus.SENDING)
        pause_in_session(session, context.campaign_id, now, source=f"send_error:{attempt.error_code}")
        audit_message(session, context, "message.parked", now, detail)
        return Admission(Result(Outcome.DONE, f"campaign paused: {reason}"))
    if error_class is ErrorClass.OPT_OUT:
        change_consent(
            session,
            context.recipient_phone,
            ConsentState.STOP,
            source=f"send_error:{attempt.error_code}",
            at=now,
            wait_for_sends=False,  # this send holds the user's send lock itself
        )
    return _fail(session, context, now, reason, attempt.error_code, detail)


def _pause_sender(
    session: Session,
    context: SendContext,
    now: datetime,
    reason: str,
    error_code: int | None,
    detail: dict[str, object],
) -> Admission:
    """Twilio refused the send because of its pool sender: pause that sender (docs/architecture.md,
    "Sender pools") and return the message, never sent, to the queue with no sender, to be given another
    at its next admission."""
    assert context.sender is not None
    pause_sender_for_error(session, context.sender, error_code, reason, now, campaign_id=context.campaign_id)
    audit_message(session, context, "message.moved", now, detail | {"sender": context.sender})
    return reschedule(
        session,
        context,
        now,
        f"moved: sender {context.sender} paused ({reason})",
        expected=MessageStatus.SENDING,
        clear_sender=True,
    )


def _fail(
    session: Session,
    context: SendContext,
    now: datetime,
    reason: str,
    error_code: int | None,
    detail: dict[str, object],
) -> Admission:
    message_sql.set_fields(
        session,
        context.id,
        MessageStatus.SENDING,
        status=MessageStatus.FAILED.value,
        status_reason=reason,
        error_code=error_code,
        failed_at=now,
    )
    audit_message(session, context, "message.failed", now, detail)
    return Admission(Result(Outcome.PERMANENT_FAILURE, reason), finished=True)


def _reason(attempt: SendAttempt) -> str:
    if attempt.error_code is not None:
        return describe(attempt.error_code)
    if attempt.http_status is not None:
        return f"HTTP {attempt.http_status} from Twilio: {attempt.error_message}"
    return attempt.error_message or "no answer from Twilio"
