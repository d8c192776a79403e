"""SQL only the dashboard needs (everything else comes through the services it shares with the API).

Sized for 1M users and 1M+ messages: each query is bounded by an index range or a LIMIT, and messages are
counted through message_tallies (docs/architecture.md, "Analytics at a million messages").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, func, select
from sqlalchemy.orm import Session

from shared.db.models import AuditEvent, Campaign, CampaignPage, Message, Segment, Template
from shared.db.queries import message_tallies as tallies
from shared.domain.enums import CampaignStatus, MessageStatus

_WAITING = (MessageStatus.QUEUED.value, MessageStatus.SENDING.value)
_DELIVERED = (MessageStatus.DELIVERED.value, MessageStatus.READ.value)
_LIVE = (CampaignStatus.RUNNING.value, CampaignStatus.PAUSED.value)
CONSENT_KIND = "consent.changed"


def sends_per_bucket(
    session: Session, since: datetime, bucket: timedelta, *, campaign_id: int | None = None
) -> dict[datetime, int]:
    """Messages sent per time bucket from `since` (bucket starts aligned on `since`), both whole minutes:
    from message_tallies' sent minutes (docs/architecture.md, "Analytics at a million messages")."""
    return tallies.sends_per_bucket(session, since, bucket, campaign_id)


@dataclass(frozen=True)
class Progress:
    audience: int
    messages: int
    waiting: int
    handed_to_twilio: int
    delivered: int

    @property
    def done(self) -> int:
        return self.messages - self.waiting

    @property
    def fraction(self) -> float:
        total = max(self.audience, self.messages)
        return self.done / total if total else 0.0

    @property
    def delivery_rate(self) -> float | None:
        return self.delivered / self.handed_to_twilio if self.handed_to_twilio else None


def campaign_progress(session: Session, campaign_ids: Sequence[int]) -> dict[int, Progress]:
    """Progress of one page of campaigns in two grouped queries (not two per campaign); the message counts
    from message_tallies."""
    if not campaign_ids:
        return {}
    audience = audiences(session, campaign_ids)
    counts = {
        row.campaign_id: row for row in tallies.campaign_progress(session, list(campaign_ids), _WAITING)
    }
    result = {}
    for campaign_id in campaign_ids:
        row = counts.get(campaign_id)
        result[campaign_id] = Progress(
            audience=audience.get(campaign_id, 0),
            messages=int(row.messages) if row else 0,
            waiting=int(row.waiting) if row else 0,
            handed_to_twilio=int(row.handed) if row else 0,
            delivered=int(row.delivered) if row else 0,
        )
    return result


def progress_from_counts(
    audience: int, counts: Mapping[MessageStatus, int], handed_to_twilio: int
) -> Progress:
    """One campaign's progress from the per-status counts its summary already holds: on the detail page
    this saves another pass over the campaign's messages (for 55k of them, 18 ms of the page's ~80 ms of
    queries, best of 7 at load 6)."""
    return Progress(
        audience=audience,
        messages=sum(counts.values()),
        waiting=sum(counts.get(MessageStatus(status), 0) for status in _WAITING),
        handed_to_twilio=handed_to_twilio,
        delivered=sum(counts.get(MessageStatus(status), 0) for status in _DELIVERED),
    )


def audiences(session: Session, campaign_ids: Sequence[int]) -> dict[int, int]:
    """Recipients frozen per started campaign: the sum of its pages' sizes (a few rows per campaign)."""
    statement = (
        select(CampaignPage.campaign_id, func.sum(CampaignPage.size))
        .where(CampaignPage.campaign_id.in_(campaign_ids))
        .group_by(CampaignPage.campaign_id)
    )
    return {int(campaign_id): int(size or 0) for campaign_id, size in session.execute(statement)}


def consent_history(session: Session, phone_e164: str, limit: int = 50) -> Sequence[Row[Any]]:
    """Newest first, from ix_audit_events_user_phone_occurred_at."""
    statement = (
        select(AuditEvent.occurred_at, AuditEvent.source, AuditEvent.detail)
        .where(AuditEvent.user_phone == phone_e164, AuditEvent.kind == CONSENT_KIND)
        .order_by(AuditEvent.occurred_at.desc(), AuditEvent.id.desc())
        .limit(limit)
    )
    return session.execute(statement).all()


def recent_errors(session: Session, limit: int = 20) -> Sequence[Any]:
    """The newest messages carrying a Twilio error code: a backward walk of the primary key that stops
    after `limit` matches, so it is cheap while errors are common and bounded by the table otherwise."""
    statement = (
        select(
            Message.id,
            Message.campaign_id,
            Message.recipient_phone,
            Message.status,
            Message.error_code,
            Message.updated_at,
        )
        .where(Message.error_code.is_not(None))
        .order_by(Message.id.desc())
        .limit(limit)
    )
    return session.execute(statement).all()


def backlog(session: Session, now: datetime) -> Sequence[Any]:
    """Per running or paused campaign, what is still waiting to be sent and how much of it is overdue.
    Campaigns come first (few), then ix_messages_campaign_id_status finds each one's waiting rows."""
    statement = (
        select(
            Campaign.id,
            Campaign.name,
            Campaign.status,
            func.count(Message.id).filter(Message.status == MessageStatus.QUEUED.value).label("queued"),
            func.count(Message.id).filter(Message.status == MessageStatus.SENDING.value).label("sending"),
            func.count(Message.id).filter(Message.scheduled_at <= now).label("overdue"),
            func.min(Message.scheduled_at).label("next_send_at"),
        )
        .outerjoin(Message, (Message.campaign_id == Campaign.id) & Message.status.in_(_WAITING))
        .where(Campaign.status.in_(_LIVE))
        .group_by(Campaign.id)
        .order_by(Campaign.id)
    )
    return session.execute(statement).all()


def choices(
    session: Session, model: type[Template] | type[Segment], limit: int = 500
) -> list[tuple[int, str]]:
    """(id, name) for a form's select, by name."""
    statement = select(model.id, model.name).order_by(model.name).limit(limit)
    return [(int(i), str(n)) for i, n in session.execute(statement)]
