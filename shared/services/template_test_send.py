"""A template's test send: one message, now, to one opted-in person an operator names, outside any campaign,
with the campaign send path's own safeguards:

- consent: only a user who is OPT_IN (not OPT_OUT, not STOP), checked under the recipient's send-guard lock
  (shared.db.queries.send_guard) held through the Twilio call, so a STOP acknowledged before the check is
  honoured and one arriving after waits for the call (docs/architecture.md, "STOP is final at its
  acknowledgement");
- rendering with the user's attributes by the domain's renderer: a missing variable refuses the send;
- WhatsApp's 24-hour window (shared.domain.session_window): free-form text inside it, else the template's
  content_sid, else refused, as a campaign message would be withheld;
- the sender-wide rate limit: the test send takes a slot from the WhatsApp sender's key like every
  campaign send, so it cannot push the sender over Twilio's ceiling;
- the same Twilio adapter, its answer classified by shared.domain.twilio_errors (an opt-out error records
  STOP, as on the campaign path);
- a record (template_test_sends) and an audit event (template.test_send) with the operator, the template,
  the masked phone and the outcome.

Quiet hours are not applied: they are a campaign's setting (a window and timezone chosen per campaign), and
a template has none. A test send is one message an operator sends deliberately, to a number they chose, to
see it arrive; it is never fanned out.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from pydantic import Field
from sqlalchemy import insert
from sqlalchemy.orm import Session

from shared.adapters.twilio_send import MessageSender, OutboundMessage, SendAttempt
from shared.clock import Clock
from shared.db.audit import record_audit
from shared.db.models import Template, TemplateTestSend
from shared.db.queries import users as user_sql
from shared.db.queries.rows import get_row
from shared.db.queries.send_guard import holding_user_for_send
from shared.db.unit_of_work import UnitOfWork
from shared.domain.enums import ConsentState
from shared.domain.errors import InvalidTemplate, NotFound, NotOptedIn, NotSendable
from shared.domain.phones import normalize_phone
from shared.domain.session_window import FreeForm, Withheld, choose_payload
from shared.domain.templates import (
    WHATSAPP_BODY_LIMIT,
    TemplateSendOutcome,
    recipient_variables,
    render,
    render_content_variables,
)
from shared.domain.twilio_errors import ErrorClass, classify, describe
from shared.log import mask_phone
from shared.services import rate_limiter
from shared.services.consent import change_consent
from shared.services.inputs import RequestModel
from shared.services.send_config import SendConfig

log = logging.getLogger(__name__)

AUDIT_KIND = "template.test_send"


class TemplateTestSendIn(RequestModel):
    phone: str = Field(min_length=1, max_length=64, description="An existing, opted-in user, in any format.")


@dataclass(frozen=True)
class TemplateTestSendResult:
    id: int
    template_id: int
    phone: str
    outcome: TemplateSendOutcome
    body: str | None
    content_sid: str | None
    provider_sid: str | None
    error_code: int | None
    # What went wrong, in words an operator can act on (Twilio's code explained, with its reference).
    error: str | None
    created_at: datetime

    @property
    def accepted(self) -> bool:
        return self.outcome is TemplateSendOutcome.ACCEPTED


def send_template_test(
    uow: UnitOfWork,
    twilio: MessageSender,
    clock: Clock,
    config: SendConfig,
    template_id: int,
    request: TemplateTestSendIn,
    *,
    operator: str,
    default_region: str,
    sleep: Callable[[float], None] = time.sleep,
) -> TemplateTestSendResult:
    """Send the template to `request.phone` now. Refusals (nothing sent, nothing recorded): an invalid
    phone or a missing variable (400), an unknown template or user (404), a user not opted in or outside
    the 24-hour window without a content_sid, or the sender saturated (409). A Twilio refusal is sent,
    recorded and audited, and returned with outcome FAILED."""
    phone = normalize_phone(request.phone, default_region)
    with uow:
        template = get_row(uow.session, Template, template_id)
        content, content_sid = template.content, template.content_sid
        content_variables = dict(template.content_variables or {})
        slot = rate_limiter.reserve_slot(
            uow.session,
            [rate_limiter.sender_key(config.sender_id, config.sender_rate, config.rate_margin)],
            clock.now(),
        )
        uow.commit()
    wait = (slot - clock.now()).total_seconds()
    if wait > config.max_wait.total_seconds():
        raise NotSendable(
            f"the WhatsApp sender is at its rate limit for the next {wait:.0f} s; try again shortly",
            retry_after_seconds=round(wait),
        )
    if wait > 0:
        sleep(wait)
    with holding_user_for_send(uow, phone):
        with uow:
            message = _checked_message(
                uow.session,
                phone,
                content,
                content_sid,
                content_variables,
                clock,
                config.status_callback_base,
            )
            uow.commit()
        attempt = twilio.send(message)
        with uow:
            result = _record(uow.session, template_id, phone, message, attempt, operator, clock.now())
            uow.commit()
    log.info(
        "template test send",
        extra={"template_id": template_id, "outcome": result.outcome.value, "error_code": result.error_code},
    )
    return result


def _checked_message(
    session: Session,
    phone: str,
    content: str,
    content_sid: str | None,
    content_variables: dict[str, str],
    clock: Clock,
    callback: str,
) -> OutboundMessage:
    user = user_sql.get_user(session, phone)
    if user is None:
        raise NotFound("user", phone)
    # The campaign path's consent rule (shared.services.send_admission.check): OPT_IN, or nothing is sent.
    if user.consent_state != ConsentState.OPT_IN.value:
        raise NotOptedIn(
            f"{mask_phone(phone)} is {user.consent_state}: only an opted-in user may receive a test send",
            field="phone",
            consent_state=user.consent_state,
        )
    variables = recipient_variables(phone, user.attributes)
    body = render(content, variables)
    rendered = render_content_variables(content_variables, variables) if content_sid else None
    payload = choose_payload(clock.now(), user.last_inbound_at, body, content_sid, rendered)
    if isinstance(payload, Withheld):
        raise NotSendable(
            f"not sent: {payload.reason} (the user last wrote to the sender more than 24 hours ago, or never)",
            field="phone",
        )
    # Test sends get no per-message callback id (they are not campaign messages); Twilio's callbacks still
    # reach the status webhook, which keeps them as receipts under the message's SID.
    if isinstance(payload, FreeForm):
        if len(payload.body) > WHATSAPP_BODY_LIMIT:
            raise InvalidTemplate(
                f"the rendered text is {len(payload.body)} characters; WhatsApp messages through Twilio "
                f"are limited to {WHATSAPP_BODY_LIMIT} (Twilio error 21617)",
                field="content",
            )
        return OutboundMessage(phone, callback, body=payload.body)
    return OutboundMessage(
        phone,
        callback,
        content_sid=payload.content_sid,
        content_variables=payload.content_variables,
    )


def _record(
    session: Session,
    template_id: int,
    phone: str,
    message: OutboundMessage,
    attempt: SendAttempt,
    operator: str,
    now: datetime,
) -> TemplateTestSendResult:
    if attempt.sid is not None:
        outcome, error = TemplateSendOutcome.ACCEPTED, None
    elif attempt.ambiguous:
        outcome = TemplateSendOutcome.AMBIGUOUS
        error = f"no answer from Twilio ({attempt.error_message}): it may have been accepted; check before resending"
    else:
        outcome = TemplateSendOutcome.FAILED
        error = _twilio_error(attempt)
    row = session.execute(
        insert(TemplateTestSend)
        .values(
            template_id=template_id,
            recipient_phone=phone,
            body=message.body,
            content_sid=message.content_sid,
            outcome=outcome.value,
            provider_sid=attempt.sid,
            error_code=attempt.error_code,
            error_message=error,
            operator=operator,
            created_at=now,
        )
        .returning(TemplateTestSend.id, TemplateTestSend.created_at)
    ).one()
    record_audit(
        session,
        AUDIT_KIND,
        user_phone=phone,
        source=operator,
        detail={
            "template_id": template_id,
            "test_send_id": row.id,
            "operator": operator,
            "phone": mask_phone(phone),
            "outcome": outcome.value,
            "provider_sid": attempt.sid,
            "error_code": attempt.error_code,
            "error": error,
        },
        at=now,
    )
    if (
        attempt.error_code is not None
        and classify(attempt.http_status, attempt.error_code) is ErrorClass.OPT_OUT
    ):
        # As on the campaign path: Twilio says this person opted out; this send holds their lock already.
        change_consent(
            session,
            phone,
            ConsentState.STOP,
            source=f"send_error:{attempt.error_code}",
            at=now,
            detail={"template_test_send": row.id},
            wait_for_sends=False,
        )
    return TemplateTestSendResult(
        id=row.id,
        template_id=template_id,
        phone=phone,
        outcome=outcome,
        body=message.body,
        content_sid=message.content_sid,
        provider_sid=attempt.sid,
        error_code=attempt.error_code,
        error=error,
        created_at=row.created_at,
    )


def _twilio_error(attempt: SendAttempt) -> str:
    if attempt.error_code is not None:
        detail = f": {attempt.error_message}" if attempt.error_message else ""
        return f"Twilio refused it: {describe(attempt.error_code)}{detail}"
    if attempt.http_status is not None:
        return f"Twilio answered HTTP {attempt.http_status}: {attempt.error_message or 'no detail'}"
    return attempt.error_message or "Twilio could not be reached"
