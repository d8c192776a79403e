"""A Twilio status callback: keep the receipt, move the message forward, learn opt-outs from errors.

Callbacks are unordered and repeated. The receipt's unique (MessageSid, MessageStatus) makes a repeat a
no-op; the message moves only forward by rank; and a callback for a SID we do not know is kept and
answered 200, because no retry from Twilio could make it known.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from shared.adapters.twilio_signature import MESSAGE_ID_PARAM, single_value
from shared.clock import Clock
from shared.db.audit import record_audit
from shared.db.queries.message_status_updates import (
    CallbackTarget,
    apply_callback_status,
    attach_provider_sid,
    lock_message_for_callback,
)
from shared.db.queries.receipts import insert_receipt
from shared.db.unit_of_work import UnitOfWork
from shared.domain.enums import ConsentState, MessageStatus
from shared.domain.message_status import from_twilio_status, predecessors, timestamp_columns
from shared.domain.twilio_errors import ErrorClass, classify, describe
from shared.services.consent import change_consent
from shared.transport import Outcome, Result

log = logging.getLogger(__name__)

_FAILURES = frozenset({MessageStatus.FAILED, MessageStatus.UNDELIVERED})


def record_status_callback(
    uow: UnitOfWork,
    params: Mapping[str, Any],
    *,
    query: Mapping[str, Any],
    idempotency_token: str | None,
    clock: Clock,
) -> Result:
    message_sid = single_value(params, "MessageSid")
    twilio_status = single_value(params, "MessageStatus")
    error_code, code_problem = _int_field(params, "ErrorCode")
    message_id, id_problem = _int_field(query, MESSAGE_ID_PARAM)
    problem = _first_problem(message_sid, twilio_status, code_problem, id_problem)
    # The callback URL's query (our message id) is part of what Twilio sent; keep it with the rest.
    raw = {**params, "_query": dict(query)} if query else dict(params)
    with uow:
        target = None
        if problem is None:
            assert message_sid is not None
            target = lock_message_for_callback(uow.session, message_sid, message_id)
        receipt_id = insert_receipt(
            uow.session,
            message_sid=message_sid,
            message_status=twilio_status,
            message_id=target.id if target else None,
            error_code=error_code,
            raw_payload=raw,
            idempotency_token=idempotency_token,
        )
        if receipt_id is not None and target is not None:
            assert message_sid is not None and twilio_status is not None
            _apply(uow.session, target, message_sid, twilio_status, error_code, clock.now())
        uow.commit()
    if problem is not None:
        return Result(Outcome.MALFORMED, reason=problem)
    if receipt_id is None:
        log.info("status callback repeated", extra={"message_sid": message_sid, "status": twilio_status})
        return Result(Outcome.DONE, reason="duplicate")
    if target is None:
        log.warning("status callback for an unknown message", extra={"message_sid": message_sid})
        return Result(Outcome.DONE, reason="unknown message")
    return Result(Outcome.DONE, reason="recorded")


def _apply(
    session: Session,
    target: CallbackTarget,
    message_sid: str,
    twilio_status: str,
    error_code: int | None,
    at: datetime,
) -> None:
    if target.provider_sid is None:
        # Reconciles a send whose create response was lost: this callback is the first we hear of its SID.
        attach_provider_sid(session, target.id, message_sid)
    new_status = from_twilio_status(twilio_status)
    if new_status is None:
        log.warning("status callback with a status we do not act on", extra={"status": twilio_status})
    else:
        failed = new_status in _FAILURES
        after = apply_callback_status(
            session,
            target.id,
            new_status=new_status,
            replaces=predecessors(new_status),
            timestamp_columns=timestamp_columns(new_status),
            at=at,
            error_code=error_code if failed else None,
            reason=describe(error_code) if failed and error_code is not None else None,
        )
        if failed and after != target.status:
            detail = {"twilio_status": twilio_status, "error_code": error_code, "message_sid": message_sid}
            record_audit(
                session,
                "message.failed",
                message_id=target.id,
                user_phone=target.recipient_phone,
                source="status_callback",
                detail=detail,
                at=at,
            )
    if error_code is not None and classify(None, error_code) is ErrorClass.OPT_OUT:
        detail = {"message_id": target.id, "message_sid": message_sid}
        source = f"send_error:{error_code}"
        change_consent(
            session, target.recipient_phone, ConsentState.STOP, source=source, at=at, detail=detail
        )


def _int_field(fields: Mapping[str, Any], name: str) -> tuple[int | None, str | None]:
    if fields.get(name) in (None, ""):
        return None, None
    value = single_value(fields, name)
    if value is None or not value.isdigit():
        return None, f"{name}: expected a non-negative integer, got {fields[name]!r}"
    return int(value), None


def _first_problem(message_sid: str | None, twilio_status: str | None, *problems: str | None) -> str | None:
    if message_sid is None:
        return "MessageSid: expected one non-empty value"
    if twilio_status is None:
        return "MessageStatus: expected one non-empty value"
    return next((p for p in problems if p), None)
