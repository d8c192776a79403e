"""A Twilio status callback: keep the receipt, move the message forward, learn opt-outs from errors.

Callbacks are unordered and repeated. The receipt's unique (MessageSid, MessageStatus) makes a repeat a
no-op; the message moves only forward by rank; and a callback for a SID we do not know is kept and
answered 200, because no retry from Twilio could make it known.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from shared.adapters.twilio_forms import StatusCallback
from shared.clock import Clock
from shared.db.audit import record_audit
from shared.db.queries.message_status_updates import CallbackRecord, StatusMove, record_callback
from shared.db.queries.senders import message_sender
from shared.db.unit_of_work import UnitOfWork
from shared.domain.enums import ConsentState, MessageStatus
from shared.domain.message_status import from_twilio_status, predecessors, timestamp_columns
from shared.domain.twilio_errors import ErrorClass, classify, describe
from shared.outcome import Outcome, Result
from shared.services.consent import change_consent
from shared.services.sender_pause import pause_sender_for_error

log = logging.getLogger(__name__)

_FAILURES = frozenset({MessageStatus.FAILED, MessageStatus.UNDELIVERED})


def record_status_callback(
    uow: UnitOfWork,
    callback: StatusCallback,
    *,
    idempotency_token: str | None,
    clock: Clock,
) -> Result:
    message_sid, twilio_status = callback.message_sid, callback.message_status
    error_code, problem = callback.error_code, callback.problem
    at = clock.now()
    move = status_move(twilio_status, error_code, at) if problem is None else None
    opt_out = error_code is not None and classify(None, error_code) is ErrorClass.OPT_OUT
    # Only a failure writes more than the receipt and the message (the audit trail, a consent change), and
    # those must commit with it; every other callback is one statement, atomic without a transaction.
    consequences = problem is None and ((move is not None and move.new_status in _FAILURES) or opt_out)
    fields: dict[str, Any] = {
        "message_sid": message_sid,
        "twilio_status": twilio_status,
        "message_id": callback.message_id,
        "error_code": error_code,
        "raw_payload": json.dumps(callback.raw),
        "idempotency_token": idempotency_token,
        "move": move,
        "act": problem is None,
    }
    if not consequences:
        record = record_callback(uow, **fields)
    else:
        with uow:
            record = record_callback(uow, **fields)
            _record_consequences(uow.session, record, message_sid, twilio_status, error_code, opt_out, at)
            uow.commit()
    if problem is not None:
        return Result(Outcome.MALFORMED, reason=problem)
    if record.receipt_id is None:
        log.info("status callback repeated", extra={"message_sid": message_sid, "status": twilio_status})
        return Result(Outcome.DONE, reason="duplicate")
    if record.message_id is None:
        log.warning("status callback for an unknown message", extra={"message_sid": message_sid})
        return Result(Outcome.DONE, reason="unknown message")
    if move is None:
        log.warning("status callback with a status we do not act on", extra={"status": twilio_status})
    return Result(Outcome.DONE, reason="recorded")


def status_move(twilio_status: str | None, error_code: int | None, at: datetime) -> StatusMove | None:
    """What a status Twilio reports does to a message (from a callback, or read back by reconciliation)."""
    new_status = from_twilio_status(twilio_status)
    if new_status is None:
        return None
    failed = new_status in _FAILURES
    return StatusMove(
        new_status=new_status,
        replaces=predecessors(new_status),
        timestamp_columns=timestamp_columns(new_status),
        at=at,
        failure_code=error_code if failed else None,
        failure_reason=describe(error_code) if failed and error_code is not None else None,
    )


def _record_consequences(
    session: Session,
    record: CallbackRecord,
    message_sid: str | None,
    twilio_status: str | None,
    error_code: int | None,
    opt_out: bool,
    at: datetime,
) -> None:
    """The audit trail of a failure this callback caused, and the opt-out its error code means."""
    if record.receipt_id is None or record.message_id is None:
        return
    assert record.recipient_phone is not None
    if record.after in _FAILURES and record.after != record.before:
        detail = {"twilio_status": twilio_status, "error_code": error_code, "message_sid": message_sid}
        record_audit(
            session,
            "message.failed",
            message_id=record.message_id,
            user_phone=record.recipient_phone,
            source="status_callback",
            detail=detail,
            at=at,
        )
    if error_code is not None and classify(None, error_code) is ErrorClass.PAUSE_SENDER:
        # The sender (a pool's) cannot send: pause it so its other recipients move on (docs/architecture.md,
        # "Sender pools"). This message was accepted and failed: it stays FAILED, never resent.
        sender = message_sender(session, record.message_id)
        if sender is not None:
            pause_sender_for_error(session, sender, error_code, None, at, message_id=record.message_id)
    if opt_out:
        change_consent(
            session,
            record.recipient_phone,
            ConsentState.STOP,
            source=f"send_error:{error_code}",
            at=at,
            detail={"message_id": record.message_id, "message_sid": message_sid},
        )
