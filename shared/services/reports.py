"""Reports an operator reads: one campaign's summary from its message ledger, today's figures for the
overview, and recent inbound messages with phone numbers masked."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field

from shared.db.models import Campaign
from shared.db.pagination import Page, decode_cursor, page_of
from shared.db.queries import campaign_analytics as analytics
from shared.db.queries import message_tallies as tallies
from shared.db.queries import reports
from shared.db.queries.dashboard import audiences
from shared.db.queries.rows import get_row
from shared.db.unit_of_work import UnitOfWork
from shared.domain.enums import CampaignStatus, MessageStatus
from shared.domain.twilio_errors import describe
from shared.log import mask_phone

# Twilio accepted these and they did arrive: the numerator of the delivery rate.
_DELIVERED = (MessageStatus.DELIVERED.value, MessageStatus.READ.value)


class ErrorCodeCount(BaseModel):
    error_code: int
    count: int


class StatusShare(BaseModel):
    status: MessageStatus
    count: int
    share_of_audience: float | None = Field(description="count / audience (0 to 1); null while it is 0.")


class ErrorCodeShare(BaseModel):
    error_code: int
    count: int
    share_of_audience: float | None = Field(description="count / audience (0 to 1).")
    meaning: str = Field(description="Twilio's meaning, with the link to its reference.")


class Timing(BaseModel):
    messages: int = Field(description="Messages measured (those that reached this state).")
    median_seconds: float | None
    p90_seconds: float | None


class FunnelStep(BaseModel):
    step: str
    count: int
    share_of_sent: float | None = Field(description="count / sent (0 to 1); null before any send.")


class DeferralCause(BaseModel):
    cause: str = Field(description="quiet hours, rate limit, or Twilio throughput limit.")
    messages: int = Field(description="Messages deferred at least once for this cause.")
    deferrals: int = Field(description="Deferrals in all (a message may be deferred more than once).")
    median_wait_seconds: float | None = Field(
        description="Per message, the time its deferrals for this cause added: the median."
    )
    p90_wait_seconds: float | None
    max_wait_seconds: float | None


class SendMinute(BaseModel):
    minute: datetime = Field(description="Start of the UTC minute.")
    sent: int = Field(
        description="Messages Twilio reported sent in that minute (minutes with none are left out)."
    )


class FrequencyCapEffect(BaseModel):
    deferred_messages: int = Field(description="Messages the per-user frequency caps deferred at least once.")
    deferrals: int = Field(description="Times the caps deferred them (a message may be deferred again).")
    skipped: int = Field(description="Messages SKIPPED by the caps (status_reason frequency_cap).")
    failed_marketing_limit: int = Field(
        description="Messages WhatsApp refused for its own per-user marketing limit (error 63049)."
    )


class SenderCounts(BaseModel):
    sender: str | None = Field(description="The pool sender (null: none chosen yet, e.g. still QUEUED).")
    messages: int
    statuses: dict[str, int] = Field(description="Its messages per status (only statuses it has).")


class CampaignAnalytics(BaseModel):
    audience: int = Field(
        description="Recipients frozen at start, or the ledger's rows if more: the denominator."
    )
    statuses: list[StatusShare] = Field(description="Every message status with its count and share.")
    error_codes: list[ErrorCodeShare] = Field(description="Every error code, most frequent first.")
    time_to_deliver: Timing = Field(description="From Twilio's sent (sent_at) to delivered (delivered_at).")
    time_to_read: Timing = Field(description="From Twilio's sent (sent_at) to read (read_at).")
    funnel: list[FunnelStep] = Field(description="sent (handed to Twilio) -> delivered -> read.")
    attribution_window_hours: float
    opted_out: int = Field(
        description="Recipients who said STOP (a keyword, or Twilio's opt-out handling) within the window "
        "after this campaign's message to them; a STOP before it is not counted."
    )
    replied: int = Field(description="Recipients who wrote to us within the window after their message.")
    replies: int = Field(description="Their inbound messages within the window (STOPs included).")
    deferrals: list[DeferralCause]
    sends_per_minute: list[SendMinute]
    frequency_caps: FrequencyCapEffect = Field(
        description="What the per-user frequency caps (and WhatsApp's own marketing limit) did."
    )
    senders: list[SenderCounts] = Field(
        description="A pool campaign's messages by sender and status; [] for the configured sender."
    )


class CampaignSummary(BaseModel):
    campaign_id: int
    status: CampaignStatus
    messages: int = Field(description="Rows in the ledger so far (the audience, once fan-out is done).")
    counts: dict[MessageStatus, int] = Field(description="Messages per status; every status is present.")
    handed_to_twilio: int = Field(description="Messages Twilio accepted (they have a provider SID).")
    delivery_rate: float | None = Field(description="(delivered + read) / handed to Twilio; null before any.")
    read_rate: float | None = Field(description="read / handed to Twilio; null before any.")
    skipped_by_reason: dict[str, int]
    withheld_by_reason: dict[str, int]
    deferred: int = Field(description="Sends moved out of quiet hours (a message may be deferred twice).")
    deferred_by_reason: dict[str, int]
    top_error_codes: list[ErrorCodeCount]
    started_at: datetime | None
    completed_at: datetime | None
    first_sent_at: datetime | None
    last_sent_at: datetime | None
    send_rate_per_second: float | None = Field(description="Sent messages over the first-to-last send span.")
    repairs: dict[str, int] = Field(
        description="What the sweeper and reconciliation did for this campaign, by kind: senders gone "
        "(repair.marked_ambiguous), tasks re-created, pages republished, sends found at Twilio "
        "(reconcile.found) or sent again (reconcile.resent), and conflicts left to an operator."
    )
    analytics: CampaignAnalytics = Field(
        description="Shares of the audience, delivery and read times, attributed opt-outs and replies, "
        'deferrals by cause, sends per minute (docs/architecture.md, "Campaign analytics").'
    )


@dataclass(frozen=True)
class InboundMessage:
    id: int
    from_phone: str | None
    body: str | None
    outcome: str | None
    received_at: datetime


def campaign_summary(uow: UnitOfWork, campaign_id: int) -> CampaignSummary:
    with uow:
        session = uow.session
        campaign = get_row(session, Campaign, campaign_id)
        # The campaign's tallies read once for every count below (docs/architecture.md, "Analytics at a
        # million messages").
        counted = tallies.snapshot(session, campaign_id, analytics.MARKETING_LIMIT_ERROR)
        counts = counted.status_counts
        ledger = analytics.ledger_pass(session, campaign_id, counted)
        deferred = reports.deferrals(session, campaign_id)
        errors = counted.error_codes
        handed = ledger.handed_to_twilio
        span = (
            (ledger.last_sent_at - ledger.first_sent_at).total_seconds()
            if ledger.first_sent_at is not None and ledger.last_sent_at is not None
            else 0.0
        )
        return CampaignSummary(
            campaign_id=campaign_id,
            status=CampaignStatus(campaign.status),
            messages=sum(counts.values()),
            counts={status: counts.get(status.value, 0) for status in MessageStatus},
            handed_to_twilio=handed,
            delivery_rate=sum(counts.get(s, 0) for s in _DELIVERED) / handed if handed else None,
            read_rate=counts.get(MessageStatus.READ.value, 0) / handed if handed else None,
            skipped_by_reason=reports.reasons(session, campaign_id, MessageStatus.SKIPPED),
            withheld_by_reason=reports.reasons(session, campaign_id, MessageStatus.WITHHELD),
            deferred=sum(deferred.values()),
            deferred_by_reason=deferred,
            top_error_codes=[
                ErrorCodeCount(error_code=code, count=n) for code, n in errors[: reports.TOP_ERROR_CODES]
            ],
            started_at=campaign.started_at,
            completed_at=campaign.completed_at,
            first_sent_at=ledger.first_sent_at,
            last_sent_at=ledger.last_sent_at,
            # A rate needs a span: one send, or all in the same instant, has none.
            send_rate_per_second=ledger.sent / span if span > 0 else None,
            repairs=reports.repairs_of_campaign(session, campaign_id),
            analytics=_analytics(session, campaign_id, counted, ledger, campaign.sender_pool),
        )


def _share(count: int, of: int) -> float | None:
    return count / of if of else None


def _analytics(
    session: Any,
    campaign_id: int,
    counted: tallies.CampaignTallies,
    ledger: analytics.LedgerPass,
    pool: str | None = None,
) -> CampaignAnalytics:
    """docs/architecture.md, "Campaign analytics"."""
    counts, errors = counted.status_counts, counted.error_codes
    audience = max(audiences(session, [campaign_id]).get(campaign_id, 0), sum(counts.values()))
    attributed = analytics.attribution(session, campaign_id, ledger)
    handed = ledger.handed_to_twilio
    delivered = counts.get(MessageStatus.DELIVERED.value, 0) + counts.get(MessageStatus.READ.value, 0)
    read = counts.get(MessageStatus.READ.value, 0)
    return CampaignAnalytics(
        audience=audience,
        statuses=[
            StatusShare(
                status=s,
                count=counts.get(s.value, 0),
                share_of_audience=_share(counts.get(s.value, 0), audience),
            )
            for s in MessageStatus
        ],
        error_codes=[
            ErrorCodeShare(
                error_code=code, count=n, share_of_audience=_share(n, audience), meaning=describe(code)
            )
            for code, n in errors
        ],
        time_to_deliver=_timing(ledger.to_deliver),
        time_to_read=_timing(ledger.to_read),
        funnel=[
            FunnelStep(step=step, count=n, share_of_sent=_share(n, handed))
            for step, n in (("sent", handed), ("delivered", delivered), ("read", read))
        ],
        attribution_window_hours=analytics.ATTRIBUTION_WINDOW / timedelta(hours=1),
        opted_out=attributed.opted_out,
        replied=attributed.replied,
        replies=attributed.replies,
        deferrals=[
            DeferralCause(
                cause=row.cause,
                messages=row.messages,
                deferrals=row.deferrals,
                median_wait_seconds=row.wait.median,
                p90_wait_seconds=row.wait.p90,
                max_wait_seconds=row.max_wait,
            )
            for row in analytics.deferrals(session, campaign_id, ledger)
        ],
        sends_per_minute=[SendMinute(minute=minute, sent=n) for minute, n in counted.sends_per_minute],
        frequency_caps=FrequencyCapEffect(
            deferred_messages=ledger.cap_deferred,
            deferrals=ledger.cap_deferrals,
            skipped=ledger.cap_skipped,
            failed_marketing_limit=ledger.marketing_limit_failed,
        ),
        senders=_senders(counted, pool),
    )


def _senders(counted: tallies.CampaignTallies, pool: str | None) -> list[SenderCounts]:
    """Only a pool campaign has senders to tell apart."""
    if pool is None:
        return []
    by_sender: dict[str | None, dict[str, int]] = {}
    for sender, status, n in counted.per_sender:
        by_sender.setdefault(sender, {})[status] = n
    return [
        SenderCounts(sender=sender, messages=sum(statuses.values()), statuses=statuses)
        for sender, statuses in by_sender.items()
    ]


def _timing(measured: analytics.Percentiles) -> Timing:
    return Timing(messages=measured.count, median_seconds=measured.median, p90_seconds=measured.p90)


# The per-recipient export (docs/architecture.md, "Campaign analytics"): one row per message, full phone
# numbers (the operator acts on them; the export is behind the API token or the dashboard's sign-in, and
# no row is ever logged), streamed a page at a time.
EXPORT_COLUMNS = (
    "message_id",
    "recipient_phone",
    "status",
    "status_reason",
    "error_code",
    "error_meaning",
    "provider_sid",
    "scheduled_at",
    "sent_at",
    "delivered_at",
    "read_at",
    "failed_at",
    "seconds_to_deliver",
    "seconds_to_read",
    "retries",
    "rate_limit_deferrals",
    "opted_out_within_72h",
    "replies_within_72h",
    "sender",
    "frequency_cap_deferrals",
)
EXPORT_PAGE_ROWS = 2000
# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection): such text cells
# get a leading apostrophe. Phones are E.164 (a "+" and digits, checked by the schema), never a formula.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def export_messages(uow: UnitOfWork, campaign_id: int, page_rows: int = EXPORT_PAGE_ROWS) -> Iterator[str]:
    """The campaign's messages as CSV text, header first, in recipient phone order. The campaign is looked
    up now (NotFound before anything is sent); the rows are read as the caller iterates, one short
    transaction per page, so neither memory nor a transaction grows with the campaign."""
    with uow:
        get_row(uow.session, Campaign, campaign_id)
    return _export_pages(uow, campaign_id, page_rows)


def _export_pages(uow: UnitOfWork, campaign_id: int, page_rows: int) -> Iterator[str]:
    yield _csv_line(EXPORT_COLUMNS)
    after = ""
    while True:
        with uow:
            rows = analytics.export_page(uow.session, campaign_id, after_phone=after, limit=page_rows)
        if not rows:
            return
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerows(_export_row(row) for row in rows)
        yield buffer.getvalue()
        if len(rows) < page_rows:
            return
        after = rows[-1].recipient_phone


def _csv_line(values: tuple[str, ...]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow(values)
    return buffer.getvalue()


def _export_row(row: Any) -> list[object]:
    def at(value: datetime | None) -> str:
        return "" if value is None else value.isoformat()

    def seconds(end: datetime | None) -> str:
        return "" if end is None or row.sent_at is None else f"{(end - row.sent_at).total_seconds():g}"

    return [
        row.id,
        row.recipient_phone,
        row.status,
        _text_cell(row.status_reason),
        "" if row.error_code is None else row.error_code,
        "" if row.error_code is None else describe(row.error_code),
        row.provider_sid or "",
        at(row.scheduled_at),
        at(row.sent_at),
        at(row.delivered_at),
        at(row.read_at),
        at(row.failed_at),
        seconds(row.delivered_at),
        seconds(row.read_at),
        row.retry_count,
        row.rate_limit_deferrals,
        "yes" if row.opted_out else "no",
        row.replies,
        row.sender or "",
        row.frequency_cap_deferrals,
    ]


def _text_cell(value: str | None) -> str:
    if value is None:
        return ""
    return "'" + value if value.startswith(_FORMULA_START) else value


def overview(uow: UnitOfWork, now: datetime) -> dict[str, Any]:
    """Active campaigns (READY and RUNNING), campaigns per state, users and opted-in users, and today's
    (UTC) sends, deliveries and failures, and the last hour's inbound messages."""
    with uow:
        return reports.dashboard(uow.session, now)


def recent_inbound(uow: UnitOfWork, *, limit: int, cursor: str | None) -> Page[InboundMessage]:
    """Newest first; phone numbers masked, in the sender and inside the text."""
    before = decode_cursor(cursor, [int])
    with uow:
        rows = reports.recent_inbound(uow.session, before_id=before[0] if before else None, limit=limit + 1)
    page = page_of(rows, limit, key=lambda row: [row.id])
    masked = [
        InboundMessage(
            id=row.id,
            from_phone=None if row.from_phone is None else mask_phone(row.from_phone),
            body=None if row.body is None else mask_phone(row.body),
            outcome=row.outcome,
            received_at=row.received_at,
        )
        for row in page.items
    ]
    return Page(masked, page.next_cursor)
