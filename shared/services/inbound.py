"""An inbound WhatsApp message: keep it raw, learn what it says about its sender, answer in TwiML.

The raw event (with Twilio's WhatsApp fields, the normalised body, the channel and the campaign message it
answers: docs/architecture.md, "Conversations"), the sender's 24-hour window and any consent change
commit together or not at all. The
reply decision is stored with the event (`outcome`), so when Twilio redelivers a webhook whose answer
it never got, the redelivery changes nothing and answers exactly what the first delivery answered.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from twilio.twiml.messaging_response import MessagingResponse

from shared.adapters.twilio_forms import InboundMessage
from shared.clock import Clock
from shared.config import Settings
from shared.db.queries.inbound import insert_inbound_event, record_sender_activity, recorded_outcome
from shared.db.queries.senders import record_inbound
from shared.db.unit_of_work import UnitOfWork
from shared.domain.consent_keywords import KeywordAction, classify_keyword, from_opt_out_type
from shared.domain.inbound_text import normalize_body
from shared.outcome import Outcome, Result
from shared.services.consent import change_consent

log = logging.getLogger(__name__)

REJECTED = "rejected:"
# What the first delivery made of a message, stored in events_inbound.outcome.
OUTCOME_STOP = "consent:STOP"
OUTCOME_START = "consent:OPT_IN"
OUTCOME_HELP = "help"
OUTCOME_AUTO_REPLY = "auto_reply"
OUTCOME_NONE = "none"
_KEYWORD_OUTCOMES = {
    KeywordAction.STOP: OUTCOME_STOP,
    KeywordAction.START: OUTCOME_START,
    KeywordAction.HELP: OUTCOME_HELP,
}


@dataclass(frozen=True)
class ReplyTexts:
    stop: str
    start: str
    help: str
    auto: str | None

    @classmethod
    def from_settings(cls, settings: Settings) -> ReplyTexts:
        return cls(
            settings.stop_reply_text,
            settings.start_reply_text,
            settings.help_reply_text,
            settings.auto_reply_text,
        )

    def for_outcome(self, outcome: str) -> str | None:
        texts = {OUTCOME_STOP: self.stop, OUTCOME_START: self.start, OUTCOME_HELP: self.help}
        # Never the auto-reply to a STOP: the confirmation is the only message an opted-out user gets.
        return texts.get(outcome, self.auto if outcome == OUTCOME_AUTO_REPLY else None)


def receive_inbound_message(
    uow: UnitOfWork,
    message: InboundMessage,
    *,
    idempotency_token: str | None,
    replies: ReplyTexts,
    clock: Clock,
) -> Result:
    message_sid, phone, reason = message.message_sid, message.sender, message.problem
    action, source = _keyword(message)
    decided = f"{REJECTED}{reason}" if reason else _outcome(action, replies)
    at = clock.now()
    with uow:
        new_id = insert_inbound_event(
            uow.session,
            message_sid=message_sid,
            from_phone=phone,
            body=message.body,
            raw_payload=dict(message.raw),
            idempotency_token=idempotency_token,
            outcome=decided,
            received_at=at,
            wa_id=message.wa_id,
            profile_name=message.profile_name,
            body_normalized=normalize_body(message.body),
            channel=message.channel.value if message.channel else None,
        )
        if new_id is None:
            assert message_sid is not None
            decided = recorded_outcome(uow.session, message_sid) or decided
            log.info("inbound webhook redelivered", extra={"message_sid": message_sid, "outcome": decided})
        elif phone is not None and reason is None:
            record_sender_activity(uow.session, phone, at)
            if message.business_number is not None:
                record_inbound(uow.session, phone, message.business_number, at)
            if action is not None and action.consent_state is not None:
                detail = {"message_sid": message_sid}
                change_consent(uow.session, phone, action.consent_state, source=source, at=at, detail=detail)
        uow.commit()
    return _answer(decided, replies)


def _keyword(message: InboundMessage) -> tuple[KeywordAction | None, str]:
    # Twilio's own opt-out handling, when it reports one, has already acted on the message: follow it.
    twilio_action = from_opt_out_type(message.opt_out_type)
    if twilio_action is not None:
        return twilio_action, "twilio_opt_out_type"
    return classify_keyword(message.body), "inbound_keyword"


def _outcome(action: KeywordAction | None, replies: ReplyTexts) -> str:
    if action is not None:
        return _KEYWORD_OUTCOMES[action]
    return OUTCOME_AUTO_REPLY if replies.auto else OUTCOME_NONE


def _answer(outcome: str, replies: ReplyTexts) -> Result:
    if outcome.startswith(REJECTED):
        return Result(Outcome.MALFORMED, reason=outcome.removeprefix(REJECTED))
    text = replies.for_outcome(outcome)
    if text is None:
        return Result(Outcome.DONE, reason=outcome)
    twiml = MessagingResponse()
    twiml.message(text)
    return Result(Outcome.DONE, reason=outcome, twiml=str(twiml))
