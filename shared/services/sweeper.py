"""The sweeper: on every scheduler tick, find and repair what crashes and outages leave behind, so no
recipient is silently dropped and no state is stuck (docs/architecture.md, "Self-healing"):

1. SENDING messages whose sender must be gone (claimed longer ago than a Twilio call and its record can
   take) become AMBIGUOUS;
2. AMBIGUOUS messages are settled against Twilio (shared.services.reconciliation), and ACCEPTED/SENT ones
   whose callbacks were lost get their status from Twilio;
3. QUEUED messages of running campaigns long past their send time whose task no longer exists (a queue
   that gave up retrying, a task store that lost it) get a new generation and a new task;
4. pages published long ago and never fanned out are published again (fan-out is idempotent).

Every repair is audited (kind `repair.*` or `reconcile.*`, with the message or page), counted in the
sweep's heartbeat for the health view, and logged. Each step is bounded, so a tick stays short.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from shared.adapters.pubsub import Publisher
from shared.adapters.tasks import SendTask, TaskScheduler
from shared.adapters.twilio_lookup import MessageLookup
from shared.clock import Clock
from shared.config import Settings
from shared.db.audit import record_audit_many
from shared.db.queries import heartbeats, repairs
from shared.db.queries import messages as message_sql
from shared.db.unit_of_work import UnitOfWork
from shared.domain.enums import MessageStatus
from shared.services.campaign_lifecycle import complete_if_done, publish_pages_or_explain
from shared.services.reconciliation import ReconcileConfig, Reconciled, reconcile_ambiguous, refresh_stale
from shared.services.send_config import SendConfig

log = logging.getLogger(__name__)

SWEEP = "sweep"
STUCK_SENDING_REASON = "the sender stopped between the claim and recording Twilio's answer"


@dataclass(frozen=True)
class SweepConfig:
    reconcile: ReconcileConfig
    # A SENDING claim older than this has no sender left (the Twilio timeout plus a grace).
    sending_gone_after: timedelta
    # A QUEUED message this far past its send time should have been sent: is its task still there?
    task_overdue_after: timedelta
    # A page published this long ago and not fanned out lost its push.
    page_overdue_after: timedelta
    limit: int = 1000

    @classmethod
    def from_settings(cls, settings: Settings, send: SendConfig) -> SweepConfig:
        return cls(
            reconcile=ReconcileConfig(
                settle_after=timedelta(seconds=settings.reconcile_after_seconds),
                call_window=send.ambiguous_after,
                stale_after=timedelta(seconds=settings.stale_status_after_seconds),
                limit=settings.sweep_limit,
            ),
            sending_gone_after=send.ambiguous_after,
            task_overdue_after=timedelta(seconds=settings.task_overdue_after_seconds),
            page_overdue_after=timedelta(seconds=settings.page_overdue_after_seconds),
            limit=settings.sweep_limit,
        )


@dataclass
class SweepReport:
    marked_ambiguous: int = 0
    reconciled_found: int = 0
    reconciled_resent: int = 0
    reconcile_conflicts: int = 0
    status_refreshed: int = 0
    tasks_recreated: int = 0
    pages_republished: int = 0

    @property
    def repairs(self) -> int:
        counts: dict[str, int] = asdict(self)
        return sum(counts.values()) - self.reconcile_conflicts


def sweep(
    uow: UnitOfWork,
    tasks: TaskScheduler,
    lookup: MessageLookup,
    publisher: Publisher,
    clock: Clock,
    config: SweepConfig,
) -> SweepReport:
    now = clock.now()
    report = SweepReport()
    report.marked_ambiguous = _mark_gone_senders(uow, now, config)
    reconciled = Reconciled()
    reconcile_ambiguous(uow, lookup, now, config.reconcile, reconciled)
    _schedule(tasks, reconciled.tasks)
    refresh_stale(uow, lookup, now, config.reconcile, reconciled)
    report.reconciled_found, report.reconciled_resent = reconciled.found, reconciled.resent
    report.reconcile_conflicts, report.status_refreshed = reconciled.conflicts, reconciled.refreshed
    report.tasks_recreated = _recreate_lost_tasks(uow, tasks, now, config)
    report.pages_republished = _republish_unfanned_pages(uow, publisher, now, config)
    for campaign_id in reconciled.finished_campaigns:
        complete_if_done(uow, campaign_id, clock)
    with uow:
        heartbeats.beat(uow.session, SWEEP, now, asdict(report))
        uow.commit()
    if report.repairs or report.reconcile_conflicts:
        log.warning("sweeper repaired what crashes or outages left behind", extra=asdict(report))
    return report


def _mark_gone_senders(uow: UnitOfWork, now: datetime, config: SweepConfig) -> int:
    with uow:
        session = uow.session
        stuck = repairs.stuck_sending(session, now - config.sending_gone_after, config.limit)
        marked = [
            (mid, cid)
            for mid, cid in stuck
            if message_sql.set_fields(
                session,
                mid,
                MessageStatus.SENDING,
                status=MessageStatus.AMBIGUOUS.value,
                status_reason=STUCK_SENDING_REASON,
                updated_at=now,
            )
        ]
        _audit(session, "repair.marked_ambiguous", marked, now)
        uow.commit()
    return len(marked)


def _recreate_lost_tasks(uow: UnitOfWork, tasks: TaskScheduler, now: datetime, config: SweepConfig) -> int:
    """Only where the task is really gone: a paused queue's tasks still exist and are left alone."""
    with uow:
        overdue = repairs.overdue_queued(uow.session, now - config.task_overdue_after, config.limit)
    lost = [
        row
        for row in overdue
        if row.scheduled_at is None
        or not tasks.exists(SendTask(row.id, row.generation, row.created_at, row.scheduled_at))
    ]
    if not lost:
        return 0
    with uow:
        moved = repairs.requeue(uow.session, lost, now)
        _audit(uow.session, "repair.task_recreated", [(row.id, row.campaign_id) for row in moved], now)
        uow.commit()
    _schedule(tasks, [SendTask(row.id, row.generation, row.created_at, now) for row in moved])
    return len(moved)


def _republish_unfanned_pages(
    uow: UnitOfWork, publisher: Publisher, now: datetime, config: SweepConfig
) -> int:
    with uow:
        pending = repairs.unfanned_pages(uow.session, now - config.page_overdue_after)
        events = [
            _event("repair.page_republished", now, campaign_id=c, detail={"page_no": p})
            for c, pages in pending.items()
            for p in pages
        ]
        record_audit_many(uow.session, events)
        uow.commit()
    for campaign_id, page_nos in pending.items():
        publish_pages_or_explain(uow, publisher, campaign_id, page_nos, now)
    return len(events)


def _schedule(tasks: TaskScheduler, new: list[SendTask]) -> None:
    if new:
        # A failure here leaves the rows QUEUED and overdue: the next sweep finds their tasks missing.
        try:
            tasks.schedule(new)
        except Exception as error:  # any RPC failure
            log.warning("sweeper could not create tasks; the next tick retries", extra={"error": repr(error)})


def _audit(session: Session, kind: str, messages: list[tuple[int, int]], now: datetime) -> None:
    record_audit_many(session, [_event(kind, now, message_id=mid, campaign_id=cid) for mid, cid in messages])


def _event(kind: str, now: datetime, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "kind": kind,
        "campaign_id": None,
        "message_id": None,
        "user_phone": None,
        "source": "sweeper",
        "detail": {},
        "occurred_at": now,
    }
    return base | fields
