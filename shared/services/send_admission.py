"""Deciding a send. Every send passes the same checks (its row still QUEUED for this task's generation, the
campaign running, the user opted in, outside quiet hours, a payload WhatsApp's 24-hour window allows),
made twice:

- at admission, the send's first transaction, before a rate slot is reserved for it (a message that will
  be withheld takes no slot); the row stays QUEUED, with its slot remembered;
- at the claim, after the wait for the slot and immediately before the Twilio call, under the send
  guard's locks (shared.db.queries.send_guard), where the row becomes SENDING. Nothing is claimed while a
  send waits, so a crash during the wait leaves a row that is provably unsent, and the task's retry simply
  sends it.

Every branch is decided under the message's row lock, so a duplicate task waits and then finds the row
moved on. The rate limiter's rows are touched last, just before the commit, to hold them for as little
time as possible: every send of the sender passes through one of them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from shared.adapters.tasks import MAX_TASK_AHEAD, SendTask
from shared.adapters.twilio_forms import status_callback_url
from shared.adapters.twilio_send import OutboundMessage
from shared.clock import Clock
from shared.db.audit import record_audit
from shared.db.queries import cap_check
from shared.db.queries import messages as message_sql
from shared.db.queries.messages import SendContext
from shared.db.queries.senders import active_pool_senders
from shared.db.unit_of_work import UnitOfWork
from shared.domain.enums import CampaignStatus, ConsentState, FrequencyCapPolicy, MessageStatus, SenderState
from shared.domain.quiet_hours import QuietHours, is_quiet, resolve_timezone, window_end
from shared.domain.sender_choice import choose_sender
from shared.domain.session_window import ApprovedTemplate, FreeForm, Withheld, choose_payload
from shared.outcome import Outcome, Result
from shared.services import rate_limiter
from shared.services.campaign_lifecycle import CANCELLED_REASON
from shared.services.send_config import SendConfig

CONSENT_REVOKED_REASON = "consent revoked before sending"
# The status_reason of a message the per-user frequency caps skipped (and the reason of their deferrals).
FREQUENCY_CAP = "frequency_cap"
# ... of a message still waiting when its campaign's ends_at came: nothing is sent after it.
CAMPAIGN_ENDED = "campaign_ended"
# How long a message of a pool with no active sender waits before it looks again.
NO_SENDER_RETRY = timedelta(minutes=1)


@dataclass(frozen=True)
class Admission:
    result: Result
    # A task to create once committed (a reschedule), if any.
    task: SendTask | None = None
    # The message reached a final state: its campaign may be complete.
    finished: bool = False
    campaign_id: int | None = None
    # Set when the caller is to send: the message as checked, its payload and its reserved slot.
    context: SendContext | None = None
    outbound: OutboundMessage | None = None
    slot: datetime | None = None
    # The row is SENDING (claimed at the last moment): the Twilio call comes next.
    claimed: bool = False


def admit(session: Session, message_id: int, generation: int, clock: Clock, config: SendConfig) -> Admission:
    context = message_sql.lock_for_send(session, message_id)
    now = clock.now()
    if context is None:
        return Admission(Result(Outcome.DONE, "no such message"))
    if context.status is MessageStatus.SENDING and context.generation == generation:
        admission = _sending_already(session, context, now, config)
    elif context.status is not MessageStatus.QUEUED:
        admission = Admission(Result(Outcome.DONE, f"already {context.status.value}"))
    elif context.generation != generation:
        admission = _stale_task(context)
    else:
        admission = _check_and_reserve(session, context, clock, config)
    return replace(admission, campaign_id=context.campaign_id)


def claim_for_send(
    session: Session, message_id: int, generation: int, clock: Clock, config: SendConfig
) -> Admission:
    """The last moment: the same checks again, after the slot's wait, and the claim (QUEUED -> SENDING).
    The caller holds the send guard's locks, so the consent and campaign state read here cannot change
    before its Twilio call is over."""
    context = message_sql.lock_for_send(session, message_id)
    if context is None:
        return Admission(Result(Outcome.DONE, "no such message"))
    if context.status is not MessageStatus.QUEUED or context.generation != generation:
        # Another delivery of this task claimed it, or it was rescheduled meanwhile.
        status = context.status.value
        return Admission(Result(Outcome.DONE, f"already {status}"), campaign_id=context.campaign_id)
    if not context.transactional and context.caps_configured:
        cap_check.lock_user_caps(session, context.recipient_phone)
    now = clock.now()
    decided = check(session, context, now, config)
    if isinstance(decided, Admission):
        return replace(decided, campaign_id=context.campaign_id)
    if decided.context.sender != context.sender:
        # Its sender was paused during the wait: the slot was on that sender's calendar, so it goes back
        # to be admitted (a slot on the new sender's) right away.
        return replace(
            reschedule(session, decided.context, now, "moved to another sender"),
            campaign_id=context.campaign_id,
        )
    message_sql.claim(session, context.id, generation, now)
    return Admission(
        Result(Outcome.DONE),
        campaign_id=context.campaign_id,
        context=decided.context,
        outbound=decided.outbound,
        claimed=True,
    )


def _sending_already(session: Session, context: SendContext, now: datetime, config: SendConfig) -> Admission:
    """A retry of the task that claimed this row: its sender died (or is still in its Twilio call).
    Past the Twilio timeout the call may have reached Twilio, so the row is AMBIGUOUS (the status
    callback reconciles it); before that, Cloud Tasks is asked to come back when it can be judged."""
    assert context.claimed_at is not None
    waited = now - context.claimed_at
    if waited < config.ambiguous_after:
        retry_after = math.ceil((config.ambiguous_after - waited).total_seconds())
        return Admission(Result(Outcome.TRANSIENT_FAILURE, "send in flight", retry_after_seconds=retry_after))
    reason = "the sender stopped between the Twilio call and recording its answer"
    message_sql.set_fields(
        session, context.id, MessageStatus.SENDING, status=MessageStatus.AMBIGUOUS.value, status_reason=reason
    )
    audit_message(session, context, "message.ambiguous", now, {"reason": reason})
    return Admission(Result(Outcome.DONE, "marked ambiguous"), finished=True)


def _stale_task(context: SendContext) -> Admission:
    """An older generation's task. If its successor's task may never have been created (the process
    rescheduled, committed, and failed to create it), creating it again is free: the name dedupes."""
    if context.generation > 0 and context.scheduled_at and context.campaign_status is CampaignStatus.RUNNING:
        task = SendTask(context.id, context.generation, context.created_at, context.scheduled_at)
        return Admission(Result(Outcome.DONE, "stale task; current task ensured"), task=task)
    return Admission(Result(Outcome.DONE, "stale task"))


def _check_and_reserve(session: Session, context: SendContext, clock: Clock, config: SendConfig) -> Admission:
    decided = check(session, context, clock.now(), config)
    if isinstance(decided, Admission):
        return decided
    return _take_slot(session, decided.context, clock, config, decided.outbound)


@dataclass(frozen=True)
class Ready:
    """The message may go now: what to send, and the context as decided (its pool sender chosen)."""

    context: SendContext
    outbound: OutboundMessage


def check(session: Session, context: SendContext, now: datetime, config: SendConfig) -> Admission | Ready:
    """Whether this QUEUED message may go now: what to send, or the decision made instead (withheld,
    parked, deferred, skipped), already written in `session`."""
    if context.consent_state != ConsentState.OPT_IN.value:
        return _withhold(session, context, now, CONSENT_REVOKED_REASON)
    if context.campaign_status is CampaignStatus.CANCELLED:
        return _withhold(session, context, now, CANCELLED_REASON)
    if context.campaign_status is not CampaignStatus.RUNNING:
        park(session, context)
        return Admission(Result(Outcome.DONE, f"parked: campaign is {context.campaign_status.value}"))
    if context.ends_at is not None and now >= context.ends_at:
        return _skip(session, context, now, CAMPAIGN_ENDED, {"ends_at": context.ends_at.isoformat()})
    zone = resolve_timezone(context.user_timezone, context.campaign_timezone).zone
    window = QuietHours.from_columns(context.quiet_hours_start, context.quiet_hours_end)
    if is_quiet(now, window, zone):
        until = window_end(now, window, zone)
        audit_message(
            session, context, "message.deferred", now, {"reason": "quiet hours", "until": until.isoformat()}
        )
        return reschedule(session, context, until, "deferred: quiet hours")
    if context.sender_pool is not None:
        resolved = _resolve_sender(session, context, now, config)
        if isinstance(resolved, Admission):
            return resolved
        context = resolved
    if not context.transactional and context.caps_configured:
        capped = _frequency_cap(session, context, now)
        if capped is not None:
            return capped
    last_inbound = context.sender_last_inbound_at if context.sender_pool else context.last_inbound_at
    payload = choose_payload(now, last_inbound, context.body, context.content_sid, context.content_variables)
    if isinstance(payload, Withheld):
        return _withhold(session, context, now, payload.reason)
    return Ready(context, _outbound(context, payload, config))


def _resolve_sender(
    session: Session, context: SendContext, now: datetime, config: SendConfig
) -> Admission | SendContext:
    """The message's pool sender: the one fan-out (or an earlier admission) chose, while that stays active
    in the pool and the user has not since written to another of its senders; else a sticky choice among
    the pool's active senders (docs/architecture.md, "Sender pools"), remembered on the row. A changed
    sender drops the slot reserved on the old one's calendar. No active sender: deferred, never dropped."""
    if (
        context.sender is not None
        and context.sender_state == SenderState.ACTIVE.value
        and context.pool_wrote_to in (None, context.sender)
    ):
        return context
    assert context.sender_pool is not None
    chosen = choose_sender(
        context.recipient_phone, active_pool_senders(session, context.sender_pool, context.recipient_phone)
    )
    if chosen is None:
        # Until an operator resumes or adds a sender: each try is a task dispatch, an UPDATE and an audit
        # row per waiting message, so a whole campaign waiting tries once a minute, not every few seconds.
        until = now + max(config.throughput_defer, NO_SENDER_RETRY)
        reason = f"no active sender in pool {context.sender_pool!r}"
        audit_message(
            session, context, "message.deferred", now, {"reason": reason, "until": until.isoformat()}
        )
        return reschedule(session, context, until, f"deferred: {reason}")
    message_sql.set_fields(session, context.id, context.status, sender=chosen.address, slot_at=None)
    return replace(
        context,
        sender=chosen.address,
        sender_state=SenderState.ACTIVE.value,
        sender_rate=chosen.rate_limit_per_second,
        sender_last_inbound_at=chosen.last_inbound_at,
        slot_at=None,
    )


def _frequency_cap(session: Session, context: SendContext, now: datetime) -> Admission | None:
    """Held back by the per-user caps: deferred until they allow it (within the campaign's end), or
    skipped, by the campaign's policy (docs/architecture.md, "Frequency caps")."""
    until = cap_check.capped_until(session, context.recipient_phone, context.id, now)
    if until is None:
        return None
    deferring = context.frequency_cap_policy == FrequencyCapPolicy.DEFER.value
    if deferring and (context.ends_at is None or until <= context.ends_at):
        audit_message(
            session, context, "message.deferred", now, {"reason": FREQUENCY_CAP, "until": until.isoformat()}
        )
        # A window of weeks can put `until` past Cloud Tasks' horizon: the task comes back sooner, and finds
        # the cap still full until then.
        at = min(until, now + MAX_TASK_AHEAD)
        return reschedule(session, context, at, f"deferred: {FREQUENCY_CAP}", cap_deferral=True)
    return _skip(session, context, now, FREQUENCY_CAP, {"capped_until": until.isoformat()})


def _skip(
    session: Session, context: SendContext, now: datetime, reason: str, detail: dict[str, object]
) -> Admission:
    message_sql.set_fields(
        session, context.id, context.status, status=MessageStatus.SKIPPED.value, status_reason=reason
    )
    audit_message(session, context, "message.skipped", now, {"reason": reason, **detail})
    return Admission(Result(Outcome.DONE, f"skipped: {reason}"), finished=True)


def _take_slot(
    session: Session, context: SendContext, clock: Clock, config: SendConfig, outbound: OutboundMessage
) -> Admission:
    # Read the clock again: the slot is measured from when it is reserved, not from before the lock wait.
    now = clock.now()
    # A slot reserved earlier is kept only if it is still ahead; a late arrival must not send off-slot.
    if context.slot_at is not None and context.slot_at >= now:
        slot = context.slot_at
    else:
        slot = rate_limiter.reserve_slot(session, _rate_keys(context, config), now + config.slot_lead)
    if slot - now > config.max_wait:
        return _wait_for_slot(session, context, slot, now, config, MessageStatus.QUEUED)
    message_sql.hold_slot(session, context.id, context.generation, slot)
    return Admission(Result(Outcome.DONE), context=context, outbound=outbound, slot=slot)


def retake_slot(session: Session, admission: Admission, clock: Clock, config: SendConfig) -> Admission:
    """The claimed send woke up too late for its slot (a stalled process): sending now could crowd the
    next slot's send into the same second, so it takes a fresh slot, or goes back to the queue for it
    when that slot is far."""
    assert admission.context is not None
    context = admission.context
    now = clock.now()
    slot = rate_limiter.reserve_slot(session, _rate_keys(context, config), now + config.slot_lead)
    if slot - now > config.max_wait:
        return _wait_for_slot(session, context, slot, now, config, MessageStatus.SENDING)
    return replace(admission, slot=slot)


def push_later(uow: UnitOfWork, admission: Admission, config: SendConfig, by: timedelta) -> bool:
    """The claimed send starts `by` later than its slot allows: move its keys' calendars as much later
    (rate_limiter.push_later), if it costs less than the slot a retake would leave unused. False: retake."""
    assert admission.context is not None and admission.slot is not None
    keys = _rate_keys(admission.context, config)
    if by > min(key.spacing for key in keys):
        return False
    return rate_limiter.push_later(uow, keys, admission.slot, by)


def give_back(session: Session, admission: Admission, now: datetime, config: SendConfig) -> Admission:
    """The claimed send kept missing its slot: back to the queue (the Twilio call was never made), to be
    admitted afresh a little later."""
    assert admission.context is not None
    return reschedule(
        session,
        admission.context,
        now + config.max_wait,
        "missed its rate slot",
        expected=MessageStatus.SENDING,
        rate_wait=config.max_wait,
    )


def _wait_for_slot(
    session: Session,
    context: SendContext,
    slot: datetime,
    now: datetime,
    config: SendConfig,
    expected: MessageStatus,
) -> Admission:
    # Come back a little early and wait for the slot, rather than risk arriving after it.
    at = slot - config.max_wait / 2
    return reschedule(
        session,
        context,
        at,
        "waiting for a rate slot",
        slot_at=slot,
        expected=expected,
        rate_wait=slot - now,
    )


def _rate_keys(context: SendContext, config: SendConfig) -> list[rate_limiter.RateKey]:
    """The campaign's key and its sender's: the pool sender's own ceiling, or the configured sender's.

    A pool campaign whose rate is at least its active senders' summed ceilings needs no key of its own:
    every 1-second window of each sender holds at most that sender's ceiling, so the campaign's holds at
    most their sum. It must not have one either: a slot is taken on every key at once, so a message for a
    sender whose calendar is ahead would move the campaign's key to that far slot, and every other
    sender's messages would wait behind the busiest one (docs/architecture.md, "Sender pools")."""
    if context.sender is not None and context.sender_rate is not None:
        sender = rate_limiter.sender_key(context.sender, context.sender_rate, config.rate_margin)
        if context.pool_rate is not None and context.rate_limit_per_second >= context.pool_rate:
            return [sender]
    else:
        sender = rate_limiter.sender_key(config.sender_id, config.sender_rate, config.rate_margin)
    return [
        rate_limiter.campaign_key(context.campaign_id, context.rate_limit_per_second, config.rate_margin),
        sender,
    ]


def reschedule(
    session: Session,
    context: SendContext,
    at: datetime,
    reason: str,
    *,
    slot_at: datetime | None = None,
    expected: MessageStatus = MessageStatus.QUEUED,
    retried: bool = False,
    error_code: int | None = None,
    rate_wait: timedelta | None = None,
    cap_deferral: bool = False,
    clear_sender: bool = False,
) -> Admission:
    """A new generation with a task at `at`; the old generation's task (if any) becomes a no-op.

    `rate_wait`: the deferral is for a rate slot this far off; the message's counters for the campaign
    analytics are bumped by this same UPDATE (docs/architecture.md, "Campaign analytics")."""
    generation = context.generation + 1
    values: dict[str, object] = {
        "status": MessageStatus.QUEUED.value,
        "generation": generation,
        "scheduled_at": at,
        "slot_at": slot_at,
        "status_reason": reason,
    }
    if retried:
        values["retry_count"] = context.retry_count + 1
    if error_code is not None:
        values["error_code"] = error_code
    if rate_wait is not None:
        values |= message_sql.rate_limit_deferral(rate_wait)
    if cap_deferral:
        values |= message_sql.frequency_cap_deferral()
    if clear_sender:
        values["sender"] = None  # chosen again among the pool's active senders at its next admission
    message_sql.set_fields(session, context.id, expected, **values)
    task = SendTask(context.id, generation, context.created_at, at)
    return Admission(Result(Outcome.DONE, reason), task=task)


def park(session: Session, context: SendContext, expected: MessageStatus = MessageStatus.QUEUED) -> None:
    """QUEUED with no task (scheduled_at NULL): resuming the campaign plans and re-creates it."""
    message_sql.set_fields(
        session,
        context.id,
        expected,
        status=MessageStatus.QUEUED.value,
        generation=context.generation + 1,
        scheduled_at=None,
        slot_at=None,
        status_reason="parked: campaign paused",
    )


def _withhold(session: Session, context: SendContext, now: datetime, reason: str) -> Admission:
    message_sql.set_fields(
        session, context.id, MessageStatus.QUEUED, status=MessageStatus.WITHHELD.value, status_reason=reason
    )
    audit_message(session, context, "message.withheld", now, {"reason": reason})
    return Admission(Result(Outcome.DONE, f"withheld: {reason}"), finished=True)


def _outbound(
    context: SendContext, payload: FreeForm | ApprovedTemplate, config: SendConfig
) -> OutboundMessage:
    callback = status_callback_url(config.status_callback_base, context.id)
    # A pool message names its sender; otherwise the Twilio client's configured one sends it.
    from_ = context.sender if context.sender_pool is not None else None
    if isinstance(payload, FreeForm):
        return OutboundMessage(context.recipient_phone, callback, body=payload.body, from_=from_)
    return OutboundMessage(
        context.recipient_phone,
        callback,
        content_sid=payload.content_sid,
        content_variables=payload.content_variables,
        from_=from_,
    )


def audit_message(
    session: Session, context: SendContext, kind: str, now: datetime, detail: dict[str, object]
) -> None:
    record_audit(
        session,
        kind,
        campaign_id=context.campaign_id,
        message_id=context.id,
        user_phone=context.recipient_phone,
        source="send_message",
        detail=detail,
        at=now,
    )
