"""SQL for operator reports: one campaign's summary and the monitoring dashboard.

Every figure comes from the message ledger, receipts and audit trail, never from a cursor or a counter
kept on the side, so a report can be recomputed at any time and always agrees with the rows. Messages are
counted through message_tallies, which triggers keep equal to the rows' counts in every transaction
(docs/architecture.md, "Analytics at a million messages").
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, func, literal_column, select
from sqlalchemy.orm import Session

from shared.db.models import AuditEvent, Campaign, DeliveryReceipt, InboundEvent, Message, User
from shared.db.queries import message_tallies as tallies
from shared.domain.enums import CampaignStatus, ConsentState, MessageStatus

# The audit kind the fan-out and sender record when quiet hours move a send (reported as "deferred").
DEFERRED_KIND = "message.deferred"
TOP_ERROR_CODES = 10
DASHBOARD_CAMPAIGNS = 100


def status_counts(session: Session, campaign_id: int) -> dict[str, int]:
    """From message_tallies: a few thousand rows at 1M messages, where counting the messages read 1M index
    entries (docs/architecture.md, "Analytics at a million messages")."""
    return tallies.status_counts(session, campaign_id)


def status_counts_overall(session: Session) -> dict[str, int]:
    """Messages per status across every campaign (message_tallies)."""
    return tallies.status_counts(session, None)


def reasons(session: Session, campaign_id: int, status: MessageStatus) -> dict[str, int]:
    reason = func.coalesce(Message.status_reason, literal_column("'unspecified'")).label("reason")
    statement = (
        select(reason, func.count())
        .where(Message.campaign_id == campaign_id, Message.status == status.value)
        .group_by(reason)
    )
    return {reason: int(count) for reason, count in session.execute(statement).all()}


def deferrals(session: Session, campaign_id: int) -> dict[str, int]:
    """Deferrals by reason, from the audit trail (ix_audit_events_campaign_id_kind)."""
    # Literal columns, not bound parameters: the GROUP BY must repeat the select expression exactly.
    reason = func.coalesce(
        AuditEvent.detail.op("->>")(literal_column("'reason'")), literal_column("'quiet hours'")
    ).label("reason")
    statement = (
        select(reason, func.count())
        .where(AuditEvent.campaign_id == campaign_id, AuditEvent.kind == DEFERRED_KIND)
        .group_by(reason)
    )
    return {reason: int(count) for reason, count in session.execute(statement).all()}


# The audit kinds the sweeper and reconciliation write (shared.services.sweeper, .reconciliation).
REPAIR_KINDS = (
    "repair.marked_ambiguous",
    "repair.task_recreated",
    "repair.page_republished",
    "reconcile.found",
    "reconcile.resent",
    "reconcile.conflict",
)


def repairs_of_campaign(session: Session, campaign_id: int) -> dict[str, int]:
    """What the sweeper and reconciliation did for this campaign, by kind (ix_audit_events_campaign_id_kind)."""
    statement = (
        select(AuditEvent.kind, func.count())
        .where(AuditEvent.campaign_id == campaign_id, AuditEvent.kind.in_(REPAIR_KINDS))
        .group_by(AuditEvent.kind)
    )
    counts = {kind: int(n) for kind, n in session.execute(statement).all()}
    return {kind: counts.get(kind, 0) for kind in REPAIR_KINDS}


def repairs_since(session: Session, since: datetime) -> dict[str, int]:
    """The same, over all campaigns, since `since` (the audit trail's occurred_at index)."""
    # The LIKE conditions repeat the partial index's predicate, so the planner can use it.
    statement = (
        select(AuditEvent.kind, func.count())
        .where(
            AuditEvent.occurred_at >= since,
            AuditEvent.kind.like("repair.%") | AuditEvent.kind.like("reconcile.%"),
        )
        .group_by(AuditEvent.kind)
    )
    counts = {kind: int(n) for kind, n in session.execute(statement).all()}
    return {kind: counts.get(kind, 0) for kind in REPAIR_KINDS}


# Campaigns an operator counts as active: started (RUNNING) or due to start at their time (READY).
ACTIVE_STATES = (CampaignStatus.READY.value, CampaignStatus.RUNNING.value)


def dashboard(session: Session, now: datetime) -> dict[str, Any]:
    """Today is the UTC day. Sized for 1M users and 100k messages (docs/architecture.md, "Health checks"
    has the timings): users are counted per consent state by an index-only scan of ix_users_consent_state;
    campaigns per state from their (status, schedule_time) index; the day's sent/delivered/failed from
    message_tallies' minutes; inbound by its received_at index."""
    day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    active = session.execute(
        select(Campaign.id, Campaign.name, Campaign.status, Campaign.started_at, Campaign.schedule_time)
        .where(Campaign.status.in_(ACTIVE_STATES))
        # RUNNING first (oldest start first), then READY by when they start.
        .order_by(Campaign.status.desc(), Campaign.started_at, Campaign.schedule_time, Campaign.id)
        .limit(DASHBOARD_CAMPAIGNS)
    ).all()
    by_state = {
        status: int(n)
        for status, n in session.execute(
            select(Campaign.status, func.count()).group_by(Campaign.status)
        ).all()
    }
    users = {
        state: int(n)
        for state, n in session.execute(
            select(User.consent_state, func.count()).group_by(User.consent_state)
        ).all()
    }
    today = tallies.since(session, day_start)
    inbound = session.execute(
        select(func.count())
        .select_from(InboundEvent)
        .where(InboundEvent.received_at >= now - timedelta(hours=1))
    ).scalar_one()
    return {
        "active_campaigns": [dict(row._mapping) for row in active],
        "campaigns_by_state": {state.value: by_state.get(state.value, 0) for state in CampaignStatus},
        "active_campaign_count": sum(by_state.get(state, 0) for state in ACTIVE_STATES),
        "total_users": sum(users.values()),
        "opted_in_users": users.get(ConsentState.OPT_IN.value, 0),
        "sent_today": int(today.sent),
        "delivered_today": int(today.delivered),
        "failed_today": int(today.failed),
        "inbound_last_hour": int(inbound),
    }


def recent_inbound(
    session: Session, *, before_id: int | None, limit: int
) -> Sequence[Row[int, str | None, str | None, str | None, datetime]]:
    """Newest first by id (monotonic with arrival), so the cursor is the last id seen."""
    statement = (
        select(
            InboundEvent.id,
            InboundEvent.from_phone,
            InboundEvent.body,
            InboundEvent.outcome,
            InboundEvent.received_at,
        )
        .order_by(InboundEvent.id.desc())
        .limit(limit)
    )
    if before_id is not None:
        statement = statement.where(InboundEvent.id < before_id)
    return session.execute(statement).all()


def message_receipts(session: Session, message_id: int) -> list[DeliveryReceipt]:
    """Every status callback for the message, in arrival order (ix_delivery_receipts_message_id)."""
    statement = (
        select(DeliveryReceipt).where(DeliveryReceipt.message_id == message_id).order_by(DeliveryReceipt.id)
    )
    return list(session.scalars(statement))


def message_audit(session: Session, message_id: int) -> list[AuditEvent]:
    """Why the message is where it is: the decisions recorded about it (ix_audit_events_message_id)."""
    statement = select(AuditEvent).where(AuditEvent.message_id == message_id).order_by(AuditEvent.id)
    return list(session.scalars(statement))
