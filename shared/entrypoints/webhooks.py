"""The two doors Twilio calls: check the signature first, read the form into one typed value, hand it to
one service.

A body over the cap is answered 413 before it is parsed; a forged or unsigned request 403 before anything
is read into the database; a signed one with a field the database cannot hold (a NUL, bytes that are not
UTF-8) 400 naming the field. A database that is briefly unreachable answers 503, so Twilio retries
instead of losing the event.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from flask import Request, Response

from shared.adapters.twilio_forms import inbound_message, status_callback
from shared.adapters.twilio_signature import SIGNATURE_HEADER, TwilioRequest, is_valid_twilio_request
from shared.bootstrap import Runtime, runtime
from shared.boundary import Refused, TooLarge, read_body
from shared.config import Settings
from shared.log import set_trace
from shared.outcome import Outcome, Result, unless_db_unavailable
from shared.services.delivery_status import record_status_callback
from shared.services.inbound import ReplyTexts, receive_inbound_message
from shared.services.webhook_errors import count_refusal
from shared.transport import for_twilio

log = logging.getLogger(__name__)

# Twilio's callbacks are small (https://www.twilio.com/docs/messaging/guides/webhook-request): a status
# callback is a few hundred bytes, an inbound message a few dozen fields with a Body of at most 1,600
# characters (19.2 KB even as four-byte characters, percent-encoded). Twilio adds fields without notice, so
# 64 KiB leaves room, and still refuses the rest before a byte is parsed or hashed: on a door anyone can
# knock on, a 10 MB form of a million fields took 15 s of CPU to parse and check.
MAX_BODY_BYTES = 64 * 1024
# The idempotency token Twilio sends with a webhook, kept with the event it came with.
IDEMPOTENCY_HEADER = "I-Twilio-Idempotency-Token"

Form = TypeVar("Form")


def inbound_webhook(request: Request) -> Response:
    rt = runtime()
    settings = rt.settings
    return _answer_if_signed(
        request,
        rt,
        "inbound_webhook",
        settings.inbound_webhook_url,
        lambda received: inbound_message(received, settings.default_region),
        lambda message: receive_inbound_message(
            rt.uow(),
            message,
            idempotency_token=request.headers.get(IDEMPOTENCY_HEADER),
            replies=ReplyTexts.from_settings(settings),
            clock=rt.clock,
        ),
    )


def status_webhook(request: Request) -> Response:
    rt = runtime()
    settings = rt.settings
    return _answer_if_signed(
        request,
        rt,
        "status_webhook",
        settings.status_webhook_url,
        status_callback,
        lambda callback: record_status_callback(
            rt.uow(),
            callback,
            idempotency_token=request.headers.get(IDEMPOTENCY_HEADER),
            clock=rt.clock,
        ),
    )


def _answer_if_signed(
    request: Request,
    rt: Runtime,
    webhook: str,
    public_url: str | None,
    read: Callable[[TwilioRequest], Form],
    handle: Callable[[Form], Result],
) -> Response:
    response = _answer(request, rt.settings, public_url, read, handle)
    # Refusals only, so the success path gains no write; not a 503, which means the database could not be
    # reached, so the count could not be written either and would only delay the answer
    # (docs/architecture.md, "Health checks").
    if 400 <= response.status_code < 500:
        count_refusal(rt.uow(), rt.clock, rt.refusals, webhook, response.status_code)
    return response


def _answer(
    request: Request,
    settings: Settings,
    public_url: str | None,
    read: Callable[[TwilioRequest], Form],
    handle: Callable[[Form], Result],
) -> Response:
    set_trace(request.headers.get("X-Cloud-Trace-Context"), settings.gcp_project)
    try:
        body = read_body(request, MAX_BODY_BYTES)
    except TooLarge as refused:
        log.warning("twilio webhook refused: body over the cap", extra={"path": request.path})
        return for_twilio(Result(Outcome.TOO_LARGE, refused.message))
    received = TwilioRequest.parse(request.mimetype, request.query_string, body)
    signature = request.headers.get(SIGNATURE_HEADER)
    if not is_valid_twilio_request(received, signature, public_url, settings.twilio_auth_token):
        log.warning("twilio webhook refused: missing or invalid signature", extra={"path": request.path})
        return for_twilio(Result(Outcome.FORBIDDEN))
    try:
        form = read(received)
    except Refused as refused:
        log.warning(
            "signed twilio webhook refused: a field the database cannot hold",
            extra={"field": refused.field, "reason": refused.reason},
        )
        return for_twilio(Result(Outcome.MALFORMED, refused.message))
    return for_twilio(unless_db_unavailable(lambda: handle(form)))
