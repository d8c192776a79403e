"""Fan-out of one page of a running campaign: a message row per recipient (or a recorded skip), a planned
send time for each, and one named Cloud Task per queued message.

Idempotent by construction: the page row is locked, so a second delivery waits and then finds the page
fanned out; rows are unique per (campaign, recipient); task names derive from (message, generation), so
re-creating a task that exists is a no-op. Tasks are created only after the commit, so send_message always
finds its row; if creating them fails, the page is redelivered and only the tasks are created again.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from shared.adapters.tasks import SendTask, TaskScheduler
from shared.clock import Clock
from shared.db.audit import record_audit, record_audit_many
from shared.db.queries import campaigns as campaign_sql
from shared.db.queries import messages as message_sql
from shared.db.queries import senders as senders_sql
from shared.db.unit_of_work import UnitOfWork
from shared.domain.enums import CampaignStatus, ConsentState, MessageStatus
from shared.domain.errors import DomainError
from shared.domain.quiet_hours import QuietHours, resolve_timezone
from shared.domain.send_schedule import PlannedSend, plan_sends, sendable_now, spacing
from shared.domain.sender_choice import PoolSender, choose_sender
from shared.domain.templates import recipient_variables, render, render_content_variables
from shared.outcome import Outcome, Result
from shared.services.campaign_lifecycle import CANCELLED_REASON, complete_if_done
from shared.services.page_publishing import PageMessage

log = logging.getLogger(__name__)

NO_CONSENT_REASON = "no consent: the user is not opted in"


@dataclass(frozen=True)
class FanoutConfig:
    max_page_age: timedelta
    rate_margin: float


@dataclass(frozen=True)
class _Draft:
    phone: str
    zone: ZoneInfo
    body: str | None = None
    content_variables: dict[str, str] | None = None
    skip_reason: str | None = None


def fanout_page(
    uow: UnitOfWork, tasks: TaskScheduler, clock: Clock, page: PageMessage, config: FanoutConfig
) -> Result:
    now = clock.now()
    if now - page.published_at > config.max_page_age:
        return _drop_stale_page(uow, clock, page, now)
    with uow:
        context = campaign_sql.lock_page(uow.session, page.campaign_id, page.page_no)
        if context is None:
            return Result(Outcome.MALFORMED, f"no page {page.page_no} of campaign {page.campaign_id}")
        if context.campaign_status not in (
            CampaignStatus.RUNNING,
            CampaignStatus.PAUSED,
            CampaignStatus.CANCELLED,
        ):
            return Result(Outcome.DONE, f"campaign is {context.campaign_status.value}: nothing to fan out")
        to_send = _fan_out_locked(uow.session, page, context, now, config)
        uow.commit()
    try:
        tasks.schedule(to_send)
    except Exception as error:  # any RPC failure: the rows are safe; a redelivery re-creates the tasks
        log.warning(
            "creating send tasks failed", extra={"campaign_id": page.campaign_id, "error": repr(error)}
        )
        return Result(Outcome.TRANSIENT_FAILURE, f"creating send tasks failed: {type(error).__name__}")
    # A page that queued sends leaves completion to them: send_message checks after each message it
    # finishes, and these finish after this commit. Only a page that queued nothing (every recipient
    # skipped) can be the campaign's last event, so only it checks (its own transaction, after the
    # commit, so that it sees every other page's).
    if context.campaign_status is CampaignStatus.RUNNING and not to_send:
        complete_if_done(uow, page.campaign_id, clock)
    return Result(Outcome.DONE, details={"tasks": len(to_send)})


def _fan_out_locked(
    session: Session,
    page: PageMessage,
    context: campaign_sql.PageContext,
    now: datetime,
    config: FanoutConfig,
) -> list[SendTask]:
    """Everything under the page lock; returns the tasks to create once committed.

    A first delivery writes the page's rows. Any delivery (a redelivery, or the republish that resumes a
    paused campaign) then plans the page's parked messages and re-creates every queued message's task."""
    running = context.campaign_status is CampaignStatus.RUNNING
    if context.fanned_out:
        existing = message_sql.queued_in_page(
            session, page.campaign_id, context.first_phone, context.last_phone
        )
        drafts = []
    else:
        # A page's rows are written in the transaction that marks it fanned out: until then it has none.
        existing = []
        drafts = _drafts(session, page.campaign_id, context)
        # Marked before the planning cursor below is locked: that lock holds up the page beside this one.
        campaign_sql.mark_page(session, page.campaign_id, page.page_no, fanned_out_at=now)
    fresh = [d for d in drafts if d.skip_reason is None]
    parked = [q for q in existing if q.scheduled_at is None] if running else []
    zones = [d.zone for d in fresh] + [_zone(q.user_timezone, context.timezone) for q in parked]
    pool = _pool_senders(session, context, [d.phone for d in fresh], parked)
    plans = _plan(session, page.campaign_id, context, zones, pool, now, config) if running else []
    fresh_plans, parked_plans = plans[: len(fresh)], plans[len(fresh) :]
    chosen = {d.phone: s.address for d, s in zip(fresh, pool.senders, strict=False) if s is not None}
    inserted = message_sql.insert_new(
        session, page.campaign_id, _rows(context.campaign_status, drafts, fresh_plans, chosen)
    )
    message_sql.schedule_parked(session, {q.id: p.at for q, p in zip(parked, parked_plans, strict=True)})
    _audit(session, page.campaign_id, drafts, inserted, fresh, fresh_plans, now)
    if not running:
        return []
    tasks = [SendTask(q.id, q.generation, q.created_at, q.scheduled_at) for q in existing if q.scheduled_at]
    tasks += [
        SendTask(q.id, q.generation, q.created_at, p.at) for q, p in zip(parked, parked_plans, strict=True)
    ]
    for draft, plan in zip(fresh, fresh_plans, strict=True):
        if draft.phone in inserted:
            message_id, created_at = inserted[draft.phone]
            tasks.append(SendTask(message_id, 0, created_at, plan.at))
    return tasks


def _drafts(session: Session, campaign_id: int, context: campaign_sql.PageContext) -> list[_Draft]:
    """Render each recipient's message, or say why it is skipped (consent is read now, not at the freeze)."""
    drafts = []
    for recipient in message_sql.page_recipients(
        session, campaign_id, context.first_phone, context.last_phone
    ):
        zone = _zone(recipient.attributes.get("timezone"), context.timezone)
        if recipient.consent_state != ConsentState.OPT_IN.value:
            drafts.append(_Draft(recipient.phone, zone, skip_reason=NO_CONSENT_REASON))
            continue
        variables = recipient_variables(recipient.phone, recipient.attributes)
        try:
            body = render(context.content, variables)
            content_variables = (
                render_content_variables(context.content_variables, variables)
                if context.content_variables
                else None
            )
        except DomainError as error:
            drafts.append(_Draft(recipient.phone, zone, skip_reason=error.message))
            continue
        drafts.append(_Draft(recipient.phone, zone, body, content_variables))
    return drafts


@dataclass(frozen=True)
class _Pool:
    """A pool campaign's sender for each recipient to plan (fresh ones, then parked ones), and the summed
    ceilings of the pool's active senders; empty without a pool."""

    senders: Sequence[PoolSender | None] = ()
    rate: int = 0


def _pool_senders(
    session: Session,
    context: campaign_sql.PageContext,
    fresh: Sequence[str],
    parked: Sequence[message_sql.QueuedMessage],
) -> _Pool:
    """The sticky choice (docs/architecture.md, "Sender pools") made for the whole page at once: written
    on the fresh rows, so that their sends need not make it one by one, and used to plan each sender's
    messages at its own ceiling. A parked message keeps the sender it has. Admission checks the choice
    again: a sender paused since, or a user who wrote to another sender since, changes it."""
    if context.sender_pool is None:
        return _Pool()
    phones = [*fresh, *(q.recipient_phone for q in parked if q.sender is None)]
    active, by_phone = senders_sql.pool_senders_for(session, context.sender_pool, phones)
    rates = {s.address: s.rate_limit_per_second for s in active}
    chosen = [choose_sender(phone, by_phone[phone]) for phone in fresh]
    for message in parked:
        if message.sender is None:
            chosen.append(choose_sender(message.recipient_phone, by_phone[message.recipient_phone]))
        elif message.sender in rates:
            chosen.append(PoolSender(message.sender, rates[message.sender]))
        else:
            chosen.append(None)  # its sender was paused: admission chooses again
    return _Pool(chosen, sum(rates.values()))


def _plan(
    session: Session,
    campaign_id: int,
    context: campaign_sql.PageContext,
    zones: Sequence[ZoneInfo],
    pool: _Pool,
    now: datetime,
    config: FanoutConfig,
) -> list[PlannedSend]:
    """The planned send times. A pool campaign whose rate is at least its active senders' summed ceilings
    is bounded by those ceilings alone: each sender's messages are planned at that sender's ceiling, on
    its own cursor. Planned at the campaign's rate instead, each sender would get the random share of
    each second that the hash gives it: idle below its ceiling in one second, deferring above it in the
    next (docs/architecture.md, "Sender pools")."""
    window = QuietHours.from_columns(context.quiet_hours_start, context.quiet_hours_end)
    if pool.rate and context.rate_limit_per_second >= pool.rate and None not in pool.senders:
        return _plan_per_sender(session, campaign_id, zones, pool, window, now, config)
    step = spacing(context.rate_limit_per_second, config.rate_margin)
    slots = sendable_now(zones, now, window)
    start = campaign_sql.advance_plan_cursor(session, campaign_id, now, slots, step) if slots else now
    return plan_sends(zones, now, start, step, window)


def _plan_per_sender(
    session: Session,
    campaign_id: int,
    zones: Sequence[ZoneInfo],
    pool: _Pool,
    window: QuietHours | None,
    now: datetime,
    config: FanoutConfig,
) -> list[PlannedSend]:
    positions: dict[str, list[int]] = defaultdict(list)
    steps: dict[str, timedelta] = {}
    for index, sender in enumerate(pool.senders):
        assert sender is not None
        positions[sender.address].append(index)
        steps[sender.address] = spacing(sender.rate_limit_per_second, config.rate_margin)
    wanted = {
        address: (sendable_now([zones[i] for i in indexes], now, window), steps[address])
        for address, indexes in positions.items()
    }
    starts = campaign_sql.advance_sender_cursors(
        session, campaign_id, now, {address: w for address, w in wanted.items() if w[0]}
    )
    plans: dict[int, PlannedSend] = {}
    for address, indexes in positions.items():
        planned = plan_sends(
            [zones[i] for i in indexes], now, starts.get(address, now), steps[address], window
        )
        plans.update(zip(indexes, planned, strict=True))
    return [plans[i] for i in range(len(zones))]


def _rows(
    status: CampaignStatus,
    drafts: Sequence[_Draft],
    plans: Sequence[PlannedSend],
    senders: Mapping[str, str],
) -> list[message_sql.NewMessage]:
    """Message rows for a first delivery: queued with its planned time while running, parked (no time)
    while paused, withheld once cancelled; skipped recipients are written too, with their reason. A pool
    campaign's queued rows carry their chosen sender."""
    planned = iter(plans)
    rows = []
    for draft in drafts:
        row_status, reason, at = MessageStatus.QUEUED, None, None
        if draft.skip_reason is not None:
            row_status, reason = MessageStatus.SKIPPED, draft.skip_reason
        elif status is CampaignStatus.CANCELLED:
            row_status, reason = MessageStatus.WITHHELD, CANCELLED_REASON
        elif status is CampaignStatus.RUNNING:
            at = next(planned).at
        sender = senders.get(draft.phone) if row_status is MessageStatus.QUEUED else None
        rows.append(
            message_sql.NewMessage(
                draft.phone, draft.body, draft.content_variables, row_status, reason, at, sender
            )
        )
    return rows


def _audit(
    session: Session,
    campaign_id: int,
    drafts: Sequence[_Draft],
    inserted: dict[str, tuple[int, datetime]],
    fresh: Sequence[_Draft],
    plans: Sequence[PlannedSend],
    now: datetime,
) -> None:
    def event(kind: str, phone: str, detail: dict[str, Any]) -> dict[str, Any]:
        message_id = inserted[phone][0] if phone in inserted else None
        base = {"kind": kind, "campaign_id": campaign_id, "user_phone": phone, "source": "fanout"}
        return base | {"message_id": message_id, "detail": detail, "occurred_at": now}

    skipped = [event("message.skipped", d.phone, {"reason": d.skip_reason}) for d in drafts if d.skip_reason]
    deferred = [
        event(
            "message.deferred",
            d.phone,
            {"reason": "quiet hours", "until": p.at.isoformat(), "timezone": d.zone.key},
        )
        for d, p in zip(fresh, plans, strict=False)
        if p.deferred_to is not None
    ]
    record_audit_many(session, skipped + deferred)


def _drop_stale_page(uow: UnitOfWork, clock: Clock, page: PageMessage, now: datetime) -> Result:
    """A page delivered too late (a backlog, a dead subscription revived) is not fanned out days after the
    operator expected: it is recorded as dropped, and the campaign can still complete."""
    log.warning(
        "dropping a stale campaign page", extra={"campaign_id": page.campaign_id, "page_no": page.page_no}
    )
    with uow:
        context = campaign_sql.lock_page(uow.session, page.campaign_id, page.page_no)
        if context is None or context.fanned_out:
            return Result(Outcome.DONE, "stale page already handled")
        campaign_sql.mark_page(uow.session, page.campaign_id, page.page_no, dropped_at=now)
        record_audit(
            uow.session,
            "page.dropped",
            campaign_id=page.campaign_id,
            source="fanout",
            detail={"page_no": page.page_no, "published_at": page.published_at.isoformat()},
            at=now,
        )
        uow.commit()
    complete_if_done(uow, page.campaign_id, clock)
    return Result(Outcome.DONE, "stale page dropped")


def _zone(user_timezone: object, campaign_timezone: str) -> ZoneInfo:
    return resolve_timezone(user_timezone, campaign_timezone).zone
