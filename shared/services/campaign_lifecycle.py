"""Campaign lifecycle: mark ready, start (freeze the audience, publish its pages), pause, resume, cancel,
complete. Every transition is the compare-and-set in shared.db.queries.campaigns against the table in
shared.domain.campaign_states, and each is audited.

The API and the trigger function both call these; each takes a unit of work and a clock (and the Pub/Sub
publisher where pages are published), so tests run them on real PostgreSQL at chosen instants.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from shared.adapters.pubsub import Publisher
from shared.clock import Clock
from shared.db.audit import record_audit
from shared.db.queries import campaigns as campaign_sql
from shared.db.queries import heartbeats, send_guard
from shared.db.queries import messages as message_sql
from shared.db.queries.reports import status_counts
from shared.db.queries.segments import audience_query
from shared.db.unit_of_work import UnitOfWork
from shared.domain.campaign_states import sources
from shared.domain.enums import CampaignStatus
from shared.domain.errors import DomainError
from shared.services.page_publishing import publish_pages

log = logging.getLogger(__name__)

CANCELLED_REASON = "campaign cancelled"
# A start still publishing its pages is left alone this long by the scheduler's republish pass.
REPUBLISH_GRACE = timedelta(minutes=1)


@dataclass(frozen=True)
class TransitionResult:
    changed: bool
    # The status after the call; None when the campaign does not exist.
    status: CampaignStatus | None


@dataclass(frozen=True)
class StartResult:
    campaign_id: int
    started: bool
    status: CampaignStatus | None
    recipients: int = 0
    pages: int = 0
    # Why it did not start, or why its pages are not all published yet.
    problem: str | None = None
    details: dict[str, object] = field(default_factory=dict)


def mark_ready(uow: UnitOfWork, campaign_id: int, clock: Clock) -> TransitionResult:
    """DRAFT -> READY (a paused READY campaign goes back through resume, not here)."""
    now = clock.now()
    with uow:
        changed = campaign_sql.transition(
            uow.session, campaign_id, CampaignStatus.READY, {CampaignStatus.DRAFT}
        )
        if changed:
            record_audit(uow.session, "campaign.ready", campaign_id=campaign_id, source="api", at=now)
        status = campaign_sql.current_status(uow.session, campaign_id)
        uow.commit()
    return TransitionResult(changed, status)


def start_campaign(
    uow: UnitOfWork, publisher: Publisher, campaign_id: int, clock: Clock, page_size: int
) -> StartResult:
    """READY -> RUNNING, the audience frozen and cut into pages in the same transaction, pages published
    after the commit. The work here is O(pages) rows through Python whatever the audience size."""
    now = clock.now()
    with uow:
        if not campaign_sql.transition(
            uow.session, campaign_id, CampaignStatus.RUNNING, {CampaignStatus.READY}, started_at=now
        ):
            status = campaign_sql.current_status(uow.session, campaign_id)
            problem = "no such campaign" if status is None else f"campaign is {status.value}, not READY"
            return StartResult(campaign_id, False, status, problem=problem)
        source = campaign_sql.audience_source(uow.session, campaign_id)
        try:
            audience = audience_query(source.definition, topic=source.topic)
        except DomainError as error:
            # The segment became invalid since it was saved: refuse to start rather than guess.
            return StartResult(campaign_id, False, CampaignStatus.READY, problem=error.message)
        campaign_sql.freeze_audience(uow.session, campaign_id, audience)
        page_nos = campaign_sql.create_pages(uow.session, campaign_id, page_size)
        recipients = campaign_sql.audience_size(uow.session, campaign_id)
        record_audit(
            uow.session,
            "campaign.started",
            campaign_id=campaign_id,
            detail={"recipients": recipients, "pages": len(page_nos)},
            at=now,
        )
        uow.commit()
    if not page_nos:
        complete_if_done(uow, campaign_id, clock)
        return StartResult(campaign_id, True, CampaignStatus.COMPLETED)
    publish_problem = publish_pages_or_explain(uow, publisher, campaign_id, page_nos, now)
    return StartResult(campaign_id, True, CampaignStatus.RUNNING, recipients, len(page_nos), publish_problem)


def start_due_campaigns(
    uow: UnitOfWork, publisher: Publisher, clock: Clock, page_size: int
) -> list[StartResult]:
    """The scheduler's tick: start every READY campaign whose time has come, then republish any page a
    failed publish left behind. Two ticks racing are harmless: only one compare-and-set wins each start."""
    with uow:
        due = campaign_sql.due_campaign_ids(uow.session, clock.now())
    results = [start_campaign(uow, publisher, campaign_id, clock, page_size) for campaign_id in due]
    republished = republish_unpublished_pages(uow, publisher, clock)
    with uow:
        # The health view and `make smoke` tell a silent scheduler from a working one by this.
        detail = {"started": sum(r.started for r in results), "republished_pages": republished}
        heartbeats.beat(uow.session, heartbeats.SCHEDULER_TICK, clock.now(), detail)
        uow.commit()
    return results


def republish_unpublished_pages(uow: UnitOfWork, publisher: Publisher, clock: Clock) -> int:
    now = clock.now()
    with uow:
        pending = campaign_sql.unpublished_pages(uow.session, started_before=now - REPUBLISH_GRACE)
    for campaign_id, page_nos in pending.items():
        publish_pages_or_explain(uow, publisher, campaign_id, page_nos, now)
    return sum(len(pages) for pages in pending.values())


def pause_campaign(uow: UnitOfWork, campaign_id: int, clock: Clock, source: str = "api") -> TransitionResult:
    """Nothing is accepted by Twilio once this returns: it first waits for the campaign's sends already in
    their Twilio call (shared.db.queries.send_guard), and every later send re-checks the campaign at its
    claim and parks the message (QUEUED, no task) instead."""
    with uow:
        send_guard.wait_out_sends_of_campaign(uow.session, campaign_id)
        changed = pause_in_session(uow.session, campaign_id, clock.now(), source)
        status = campaign_sql.current_status(uow.session, campaign_id)
        uow.commit()
    return TransitionResult(changed, status)


def pause_in_session(session: Session, campaign_id: int, now: datetime, source: str) -> bool:
    """The pause transition inside the caller's transaction (the sender pauses on credential errors, from
    inside its own send: it does not wait for the campaign's other sends, which would wait for it)."""
    current = campaign_sql.current_status(session, campaign_id)
    if current is None or current not in sources(CampaignStatus.PAUSED):
        return False
    changed = campaign_sql.transition(
        session, campaign_id, CampaignStatus.PAUSED, {current}, paused_from=current.value
    )
    if changed:
        record_audit(session, "campaign.paused", campaign_id=campaign_id, source=source, at=now)
    return changed


def resume_campaign(
    uow: UnitOfWork, publisher: Publisher, campaign_id: int, clock: Clock
) -> TransitionResult:
    """PAUSED -> where it was paused from. A running campaign's waiting messages all get a new generation
    and its pages are republished: fan-out of a page it has already done re-plans them on the rate cursor
    and creates their tasks under new names, whatever happened to their old tasks meanwhile."""
    now = clock.now()
    with uow:
        target = campaign_sql.paused_from(uow.session, campaign_id) or CampaignStatus.READY
        changed = campaign_sql.transition(
            uow.session, campaign_id, target, {CampaignStatus.PAUSED}, paused_from=None
        )
        if changed:
            record_audit(uow.session, "campaign.resumed", campaign_id=campaign_id, source="api", at=now)
        if changed and target is CampaignStatus.RUNNING:
            message_sql.park_all_queued(uow.session, campaign_id, now)
        pages = campaign_sql.live_pages(uow.session, campaign_id) if changed else []
        status = campaign_sql.current_status(uow.session, campaign_id)
        uow.commit()
    if changed and target is CampaignStatus.RUNNING:
        publish_pages_or_explain(uow, publisher, campaign_id, pages, now)
    return TransitionResult(changed, status)


def cancel_campaign(uow: UnitOfWork, campaign_id: int, clock: Clock, source: str = "api") -> TransitionResult:
    """Final. Every message still waiting is withheld with the reason in the same transaction; pages not
    yet fanned out are written as withheld when they arrive, so the ledger accounts for everyone."""
    now = clock.now()
    with uow:
        # As pause: the sends in their Twilio call finish first, and none starts after this commits.
        send_guard.wait_out_sends_of_campaign(uow.session, campaign_id)
        changed = campaign_sql.transition(
            uow.session,
            campaign_id,
            CampaignStatus.CANCELLED,
            sources(CampaignStatus.CANCELLED),
            paused_from=None,
        )
        if changed:
            withheld = message_sql.withhold_queued(uow.session, campaign_id, CANCELLED_REASON, now)
            record_audit(
                uow.session,
                "campaign.cancelled",
                campaign_id=campaign_id,
                source=source,
                detail={"withheld": withheld},
                at=now,
            )
        status = campaign_sql.current_status(uow.session, campaign_id)
        uow.commit()
    return TransitionResult(changed, status)


def complete_if_done(uow: UnitOfWork, campaign_id: int, clock: Clock) -> bool:
    """Called after anything that may have finished the campaign's last message; its own transaction so
    that it sees every other send's commit."""
    now = clock.now()
    with uow:
        completed = campaign_sql.complete_if_done(uow.session, campaign_id, now)
        if completed:
            counts = status_counts(uow.session, campaign_id)
            record_audit(uow.session, "campaign.completed", campaign_id=campaign_id, detail=counts, at=now)
        uow.commit()
    return completed


def publish_pages_or_explain(
    uow: UnitOfWork, publisher: Publisher, campaign_id: int, page_nos: list[int], now: datetime
) -> str | None:
    """Publish the pages; a failure is logged and explained, never raised: the pages stay unpublished (or
    unfanned) and the scheduler's tick publishes them again."""
    try:
        publish_pages(uow, publisher, campaign_id, page_nos, now)
    except Exception as error:  # any publish failure: the pages stay unpublished and are retried
        log.warning(
            "publishing campaign pages failed; the scheduler will republish them",
            extra={"campaign_id": campaign_id, "pages": len(page_nos), "error": repr(error)},
        )
        return f"publishing {len(page_nos)} page(s) failed ({type(error).__name__}); they will be republished"
    return None
