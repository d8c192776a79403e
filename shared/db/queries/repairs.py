"""SQL for what crashes and outages leave behind, as the sweeper finds it: sends whose sender died, answers
lost, callbacks never received, tasks gone, pages never fanned out. Each query is bounded by a limit and
reads through an index on (status, time) or a campaign's pages, so a sweep costs the same whatever the
ledger's size (migration 0005's partial indexes)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, select, text, update
from sqlalchemy.orm import Session

from shared.db.models import Campaign, CampaignPage, Message
from shared.domain.enums import CampaignStatus, MessageStatus


@dataclass(frozen=True)
class Unsettled:
    """A message whose send may or may not have reached Twilio."""

    id: int
    campaign_id: int
    recipient_phone: str
    body: str | None
    claimed_at: datetime | None
    generation: int
    created_at: datetime
    campaign_status: CampaignStatus
    uses_template: bool
    # The pool sender it went out from (None: the configured sender): Twilio's list is searched from it.
    sender: str | None = None


def stuck_sending(session: Session, claimed_before: datetime, limit: int) -> list[tuple[int, int]]:
    """(id, campaign id) of SENDING messages claimed long enough ago that their sender must be gone (its
    answer would have been recorded by now)."""
    statement = (
        select(Message.id, Message.campaign_id)
        .where(Message.status == MessageStatus.SENDING.value, Message.claimed_at < claimed_before)
        .order_by(Message.claimed_at)
        .limit(limit)
    )
    return [(mid, cid) for mid, cid in session.execute(statement)]


_UNSETTLED = text(
    """
    SELECT m.id, m.campaign_id, m.recipient_phone, m.body, m.claimed_at, m.generation, m.created_at,
           c.status, t.content_sid IS NOT NULL, m.sender
    FROM messages AS m
    JOIN campaigns AS c ON c.id = m.campaign_id
    JOIN templates AS t ON t.id = c.template_id
    WHERE m.status = :ambiguous AND (m.claimed_at IS NULL OR m.claimed_at < :claimed_before)
    ORDER BY m.claimed_at NULLS FIRST
    LIMIT :limit
    FOR UPDATE OF m SKIP LOCKED
    """
)


def lock_ambiguous(session: Session, claimed_before: datetime, limit: int) -> list[Unsettled]:
    """AMBIGUOUS messages claimed before `claimed_before`, locked (two sweeps never settle one twice; one
    locked by a callback being recorded is left for the next sweep)."""
    rows = session.execute(
        _UNSETTLED,
        {"ambiguous": MessageStatus.AMBIGUOUS.value, "claimed_before": claimed_before, "limit": limit},
    )
    return [
        Unsettled(
            id=row[0],
            campaign_id=row[1],
            recipient_phone=row[2],
            body=row[3],
            claimed_at=row[4],
            generation=row[5],
            created_at=row[6],
            campaign_status=CampaignStatus(row[7]),
            uses_template=bool(row[8]),
            sender=row[9],
        )
        for row in rows
    ]


def known_sids(session: Session, sids: Collection[str]) -> set[str]:
    """The SIDs among `sids` another message already holds (provider_sid is unique)."""
    if not sids:
        return set()
    statement = select(Message.provider_sid).where(Message.provider_sid.in_(list(sids)))
    return {sid for sid in session.execute(statement).scalars() if sid is not None}


@dataclass(frozen=True)
class Stale:
    id: int
    provider_sid: str


def stale_accepted(
    session: Session, updated_before: datetime, sent_after: datetime, limit: int
) -> list[Stale]:
    """ACCEPTED or SENT messages nothing has moved since `updated_before` (their callbacks were lost),
    claimed after `sent_after` (older ones are left as they are: Twilio keeps no promise for them)."""
    statement = (
        select(Message.id, Message.provider_sid)
        .where(
            Message.status.in_([MessageStatus.ACCEPTED.value, MessageStatus.SENT.value]),
            Message.updated_at < updated_before,
            Message.claimed_at > sent_after,
            Message.provider_sid.is_not(None),
        )
        .order_by(Message.updated_at)
        .limit(limit)
    )
    return [Stale(mid, sid) for mid, sid in session.execute(statement) if sid is not None]


def touch(session: Session, message_ids: Sequence[int], now: datetime) -> None:
    """Mark messages as just looked at, so the next look comes a full interval later."""
    if message_ids:
        session.execute(
            update(Message).where(Message.id.in_(list(message_ids))).values(updated_at=now),
            execution_options={"synchronize_session": False},
        )


@dataclass(frozen=True)
class Overdue:
    id: int
    campaign_id: int
    generation: int
    created_at: datetime
    scheduled_at: datetime | None


def overdue_queued(session: Session, scheduled_before: datetime, limit: int) -> list[Overdue]:
    """QUEUED messages of running campaigns whose send time is long past: their task should have run.
    A parked one (no send time) of a running campaign counts once it has been parked that long."""
    statement = (
        select(Message.id, Message.campaign_id, Message.generation, Message.created_at, Message.scheduled_at)
        .join(Campaign, Campaign.id == Message.campaign_id)
        .where(
            Message.status == MessageStatus.QUEUED.value,
            Campaign.status == CampaignStatus.RUNNING.value,
            (Message.scheduled_at < scheduled_before)
            | (Message.scheduled_at.is_(None) & (Message.updated_at < scheduled_before)),
        )
        .order_by(Message.scheduled_at.nulls_first())
        .limit(limit)
    )
    return [Overdue(*row) for row in session.execute(statement)]


def requeue(session: Session, overdue: Sequence[Overdue], at: datetime) -> list[Overdue]:
    """A new generation, due at `at`, for each message still as it was read (compare-and-set on status
    and generation); returns those moved, with their new generation."""
    moved = []
    statement = (
        update(Message)
        .where(
            Message.id == bindparam("mid"),
            Message.status == MessageStatus.QUEUED.value,
            Message.generation == bindparam("gen"),
        )
        .values(generation=Message.generation + 1, scheduled_at=at, slot_at=None, updated_at=at)
        .returning(Message.id)
    )
    for row in overdue:
        if session.execute(statement, {"mid": row.id, "gen": row.generation}).first() is not None:
            moved.append(Overdue(row.id, row.campaign_id, row.generation + 1, row.created_at, at))
    return moved


def unfanned_pages(session: Session, published_before: datetime) -> dict[int, list[int]]:
    """Pages of running campaigns published long ago and still not fanned out (their push was lost, or
    dead-lettered): publishing them again is harmless, fan-out being idempotent."""
    statement = (
        select(CampaignPage.campaign_id, CampaignPage.page_no)
        .join(Campaign, Campaign.id == CampaignPage.campaign_id)
        .where(
            Campaign.status == CampaignStatus.RUNNING.value,
            CampaignPage.published_at < published_before,
            CampaignPage.fanned_out_at.is_(None),
            CampaignPage.dropped_at.is_(None),
        )
        .order_by(CampaignPage.campaign_id, CampaignPage.page_no)
    )
    pages: dict[int, list[int]] = {}
    for campaign_id, page_no in session.execute(statement):
        pages.setdefault(campaign_id, []).append(page_no)
    return pages
