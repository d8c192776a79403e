"""The two doors Twilio calls: check the signature first, then hand the fields to one service.

A forged or unsigned request is answered 403 before anything is read into the database. A database
that is briefly unreachable answers 503, so Twilio retries instead of losing the event.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from flask import Request, Response

from shared.adapters.twilio_signature import (
    IDEMPOTENCY_HEADER,
    flatten,
    is_valid_twilio_request,
    webhook_params,
)
from shared.clock import SystemClock
from shared.config import get_settings
from shared.db.engine import get_engine
from shared.db.unit_of_work import UnitOfWork
from shared.log import set_trace
from shared.services.delivery_status import record_status_callback
from shared.services.inbound import ReplyTexts, receive_inbound_message
from shared.transport import Outcome, Result, for_twilio, unless_db_unavailable

log = logging.getLogger(__name__)


def inbound_webhook(request: Request) -> Response:
    settings = get_settings()
    return _answer_if_signed(
        request,
        settings.inbound_webhook_url,
        lambda: receive_inbound_message(
            UnitOfWork(get_engine()),
            webhook_params(request),
            idempotency_token=request.headers.get(IDEMPOTENCY_HEADER),
            replies=ReplyTexts.from_settings(settings),
            clock=SystemClock(),
            default_region=settings.default_region,
        ),
    )


def status_webhook(request: Request) -> Response:
    settings = get_settings()
    return _answer_if_signed(
        request,
        settings.status_webhook_url,
        lambda: record_status_callback(
            get_engine(),
            webhook_params(request),
            query=flatten(request.args),
            idempotency_token=request.headers.get(IDEMPOTENCY_HEADER),
            clock=SystemClock(),
        ),
    )


def _answer_if_signed(request: Request, public_url: str | None, handle: Callable[[], Result]) -> Response:
    settings = get_settings()
    set_trace(request.headers.get("X-Cloud-Trace-Context"), settings.gcp_project)
    if not is_valid_twilio_request(request, public_url, settings.twilio_auth_token):
        log.warning("twilio webhook refused: missing or invalid signature", extra={"path": request.path})
        return for_twilio(Result(Outcome.FORBIDDEN))
    return for_twilio(unless_db_unavailable(handle))
