"""SQL for a campaign's lifecycle: compare-and-set transitions, the frozen audience and its pages, the
planning cursor, completion, and counts from the message ledger."""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any, cast

from sqlalchemy import Select, func, insert, literal, select, text, update
from sqlalchemy.orm import Session

from shared.db.models import Campaign, CampaignPage, CampaignRecipient, Segment, Template
from shared.db.unit_of_work import UnitOfWork
from shared.domain.enums import CampaignStatus, MessageStatus

# Messages whose outcome is not settled; the campaign cannot be COMPLETED while any exist. AMBIGUOUS is
# among them: reconciliation either finds it at Twilio or sends it again (shared.services.reconciliation).
UNSETTLED = (MessageStatus.QUEUED.value, MessageStatus.SENDING.value, MessageStatus.AMBIGUOUS.value)


def transition(
    session: Session,
    campaign_id: int,
    target: CampaignStatus,
    sources: Collection[CampaignStatus],
    **values: Any,
) -> bool:
    """Compare-and-set: move to `target` only from one of `sources`, so two racing callers cannot both win."""
    statement = (
        update(Campaign)
        .where(Campaign.id == campaign_id, Campaign.status.in_([s.value for s in sources]))
        .values(status=target.value, **values)
        .returning(Campaign.id)
    )
    return session.execute(statement).first() is not None


def current_status(session: Session, campaign_id: int) -> CampaignStatus | None:
    value = session.execute(select(Campaign.status).where(Campaign.id == campaign_id)).scalar_one_or_none()
    return None if value is None else CampaignStatus(value)


def paused_from(session: Session, campaign_id: int) -> CampaignStatus | None:
    value = session.execute(
        select(Campaign.paused_from).where(Campaign.id == campaign_id)
    ).scalar_one_or_none()
    return None if value is None else CampaignStatus(value)


def due_campaign_ids(session: Session, now: datetime) -> list[int]:
    """READY campaigns whose schedule_time has come: a range scan on ix_campaigns_status_schedule_time."""
    statement = (
        select(Campaign.id)
        .where(Campaign.status == CampaignStatus.READY.value, Campaign.schedule_time <= now)
        .order_by(Campaign.schedule_time, Campaign.id)
    )
    return list(session.execute(statement).scalars())


@dataclass(frozen=True)
class AudienceSource:
    definition: Any
    topic: str | None


def audience_source(session: Session, campaign_id: int) -> AudienceSource:
    statement = (
        select(Segment.definition, Campaign.topic)
        .join(Segment, Segment.id == Campaign.segment_id)
        .where(Campaign.id == campaign_id)
    )
    definition, topic = session.execute(statement).one()
    return AudienceSource(definition, topic)


def freeze_audience(session: Session, campaign_id: int, audience: Select[Any]) -> None:
    """One INSERT ... SELECT: the audience never travels through Python, so a 1M-recipient start is one
    statement in the database rather than a million rows through the driver."""
    phones = audience.order_by(None).subquery()
    source = select(literal(campaign_id), phones.c[0])
    session.execute(insert(CampaignRecipient).from_select(["campaign_id", "phone"], source))


def create_pages(session: Session, campaign_id: int, page_size: int) -> list[int]:
    """Cut the frozen audience into key ranges of `page_size` phones; returns O(pages) rows.

    row_number() over the primary key order numbers the recipients once; grouping by (n - 1) / size gives
    each page its first and last phone, so fan-out reads a page as an index range scan.
    """
    statement = text(
        """
        INSERT INTO campaign_pages (campaign_id, page_no, first_phone, last_phone, size)
        SELECT :campaign_id, page_no, min(phone), max(phone), count(*)
        FROM (
            SELECT phone, (row_number() OVER (ORDER BY phone) - 1) / :page_size AS page_no
            FROM campaign_recipients WHERE campaign_id = :campaign_id
        ) AS numbered
        GROUP BY page_no
        RETURNING page_no
        """
    )
    rows = session.execute(statement, {"campaign_id": campaign_id, "page_size": page_size}).scalars()
    return sorted(rows)


def mark_pages_published(session: Session, campaign_id: int, page_nos: Sequence[int], now: datetime) -> None:
    session.execute(
        update(CampaignPage)
        .where(CampaignPage.campaign_id == campaign_id, CampaignPage.page_no.in_(page_nos))
        .values(published_at=now)
    )


def unpublished_pages(session: Session, started_before: datetime) -> dict[int, list[int]]:
    """Pages of running campaigns whose publish was never confirmed (the start crashed or Pub/Sub failed
    after the commit). `started_before` keeps a start still publishing right now out of it."""
    statement = (
        select(CampaignPage.campaign_id, CampaignPage.page_no)
        .join(Campaign, Campaign.id == CampaignPage.campaign_id)
        .where(
            Campaign.status == CampaignStatus.RUNNING.value,
            Campaign.started_at < started_before,
            CampaignPage.published_at.is_(None),
        )
        .order_by(CampaignPage.campaign_id, CampaignPage.page_no)
    )
    pages: dict[int, list[int]] = {}
    for campaign_id, page_no in session.execute(statement):
        pages.setdefault(campaign_id, []).append(page_no)
    return pages


def live_pages(session: Session, campaign_id: int) -> list[int]:
    """Every page not dropped: what a resumed campaign republishes so fan-out re-creates parked tasks."""
    statement = select(CampaignPage.page_no).where(
        CampaignPage.campaign_id == campaign_id, CampaignPage.dropped_at.is_(None)
    )
    return sorted(session.execute(statement).scalars())


@dataclass(frozen=True)
class PageContext:
    first_phone: str
    last_phone: str
    fanned_out: bool
    campaign_status: CampaignStatus
    rate_limit_per_second: int
    quiet_hours_start: time | None
    quiet_hours_end: time | None
    timezone: str
    content: str
    content_variables: dict[str, Any]
    sender_pool: str | None


def lock_page(session: Session, campaign_id: int, page_no: int) -> PageContext | None:
    """The page with what fan-out needs from its campaign and template, the page row locked so that two
    concurrent deliveries of one page serialize: the second sees it fanned out and only re-creates tasks."""
    statement = (
        select(
            CampaignPage.first_phone,
            CampaignPage.last_phone,
            CampaignPage.fanned_out_at.is_not(None),
            Campaign.status,
            Campaign.rate_limit_per_second,
            Campaign.quiet_hours_start,
            Campaign.quiet_hours_end,
            Campaign.timezone,
            Template.content,
            Template.content_variables,
            Campaign.sender_pool,
        )
        .join(Campaign, Campaign.id == CampaignPage.campaign_id)
        .join(Template, Template.id == Campaign.template_id)
        .where(CampaignPage.campaign_id == campaign_id, CampaignPage.page_no == page_no)
        .with_for_update(of=CampaignPage)
    )
    row = session.execute(statement).first()
    if row is None:
        return None
    return PageContext(
        first_phone=row[0],
        last_phone=row[1],
        fanned_out=row[2],
        campaign_status=CampaignStatus(row[3]),
        rate_limit_per_second=row[4],
        quiet_hours_start=row[5],
        quiet_hours_end=row[6],
        timezone=row[7],
        content=row[8],
        content_variables=row[9],
        sender_pool=row[10],
    )


def mark_page(session: Session, campaign_id: int, page_no: int, **values: datetime) -> None:
    session.execute(
        update(CampaignPage)
        .where(CampaignPage.campaign_id == campaign_id, CampaignPage.page_no == page_no)
        .values(**values)
    )


def advance_plan_cursor(
    session: Session, campaign_id: int, now: datetime, slots: int, step: timedelta
) -> datetime:
    """Reserve `slots` consecutive planned send times; returns the first.

    The row lock this takes lasts until the page's commit, so pages of one campaign plan one after the
    other (a page's insert is tens of milliseconds; Pub/Sub pushes only a couple at a time anyway)."""
    statement = (
        update(Campaign)
        .where(Campaign.id == campaign_id)
        .values(plan_cursor=func.greatest(func.coalesce(Campaign.plan_cursor, now), now) + slots * step)
        .returning(Campaign.plan_cursor)
    )
    end = cast(datetime, session.execute(statement).scalar_one())
    return end - slots * step


_ADVANCE_SENDER_CURSORS = text(
    """
    INSERT INTO sender_plan_cursors AS c (campaign_id, sender, cursor)
    SELECT :campaign_id, w.sender, CAST(:now AS timestamptz) + w.length
    FROM jsonb_to_recordset(CAST(:wanted AS jsonb)) AS w(sender text, length interval)
    ORDER BY w.sender
    ON CONFLICT (campaign_id, sender) DO UPDATE
    SET cursor = greatest(c.cursor, CAST(:now AS timestamptz)) + (EXCLUDED.cursor - CAST(:now AS timestamptz))
    RETURNING c.sender, c.cursor
    """
)


def advance_sender_cursors(
    session: Session, campaign_id: int, now: datetime, wanted: Mapping[str, tuple[int, timedelta]]
) -> dict[str, datetime]:
    """`advance_plan_cursor` per pool sender: reserve, for each sender, `slots` consecutive planned send
    times `step` apart on that sender's own cursor; returns each one's first. The rows are locked in
    sender order (two pages never deadlock), until the page's commit."""
    payload = json.dumps(
        [
            {"sender": sender, "length": f"{slots * step // timedelta(microseconds=1)} microseconds"}
            for sender, (slots, step) in sorted(wanted.items())
        ]
    )
    rows = session.execute(
        _ADVANCE_SENDER_CURSORS, {"campaign_id": campaign_id, "now": now, "wanted": payload}
    )
    ends = {sender: cast(datetime, end) for sender, end in rows}
    return {sender: ends[sender] - slots * step for sender, (slots, step) in wanted.items()}


# RUNNING, every page fanned out (or dropped), and no message unsettled: an EXISTS on
# campaign_pages' key and one on ix_messages_campaign_id_status (two index probes). Written once for the
# UPDATE that completes the campaign and for the read-only probe the send path asks first.
_COMPLETABLE = f"""
campaigns.id = :campaign_id
AND campaigns.status = '{CampaignStatus.RUNNING.value}'
AND NOT EXISTS (
    SELECT FROM campaign_pages AS p
    WHERE p.campaign_id = campaigns.id AND p.fanned_out_at IS NULL AND p.dropped_at IS NULL
)
AND NOT EXISTS (
    SELECT FROM messages AS m
    WHERE m.campaign_id = campaigns.id AND m.status IN ({", ".join(f"'{s}'" for s in UNSETTLED)})
)
"""
_COULD_COMPLETE = f"SELECT EXISTS (SELECT FROM campaigns WHERE {_COMPLETABLE})"
_COMPLETE = text(
    f"""
    UPDATE campaigns SET status = '{CampaignStatus.COMPLETED.value}', completed_at = :now, updated_at = now()
    WHERE {_COMPLETABLE}
    RETURNING id
    """
)


def complete_if_done(session: Session, campaign_id: int, now: datetime) -> bool:
    """RUNNING -> COMPLETED once every page is fanned out (or dropped) and no message is waiting or sending.
    Whichever finishing send commits last is the one that sees nothing left."""
    return session.execute(_COMPLETE, {"campaign_id": campaign_id, "now": now}).first() is not None


def could_complete(uow: UnitOfWork, campaign_id: int) -> bool:
    """Whether complete_if_done would complete the campaign now, as one autocommit statement (outside `with
    uow:`): nearly every finished send leaves work behind, and learns it in one round trip instead
    of a transaction's seven or more."""
    ((possible,),) = uow.prepared(_COULD_COMPLETE, {"campaign_id": campaign_id})
    return bool(possible)


def audience_size(session: Session, campaign_id: int) -> int:
    statement = select(func.coalesce(func.sum(CampaignPage.size), 0)).where(
        CampaignPage.campaign_id == campaign_id
    )
    return int(session.execute(statement).scalar_one())


# A template being sent from (or about to be) must not change under the campaign.
_SENDING_FROM_TEMPLATE = (
    CampaignStatus.READY.value,
    CampaignStatus.RUNNING.value,
    CampaignStatus.PAUSED.value,
)


def template_is_live(session: Session, template_id: int) -> bool:
    """Whether a ready, running or paused campaign uses the template."""
    statement = select(Campaign.id).where(
        Campaign.template_id == template_id, Campaign.status.in_(_SENDING_FROM_TEMPLATE)
    )
    return session.execute(statement.limit(1)).first() is not None
