"""SQL for one campaign's analytics (docs/architecture.md, "Campaign analytics"): delivery and read times,
deferrals by cause, opt-outs and replies attributed to the campaign, sends per minute, and the
per-recipient export.

Every figure is aggregated in PostgreSQL, never by fetching the rows: counts from message_tallies,
percentiles from the rows at their positions in an index (the ledger pass; docs/architecture.md, "Analytics
at a million messages"). The export reads the campaign's
messages in phone order, one bounded page per query, so it is never held in memory whole.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, text
from sqlalchemy.orm import Session

from shared.db.models import USER_STOP_WHERE
from shared.db.queries import message_tallies as tallies

# A reply or a STOP within this long after the campaign's message to that user is attributed to it.
ATTRIBUTION_WINDOW = timedelta(hours=72)
# A user's own STOP (a keyword, Twilio's opt-out handling; not an operator or a file) in the audit trail,
# spelled as the partial index's predicate so that the planner uses it.
USER_STOP_PREDICATE = USER_STOP_WHERE
QUIET_HOURS_KIND = "message.deferred"
THROTTLED_KIND = "message.throttled"
# Causes as the report names them.
QUIET_HOURS = "quiet hours"
RATE_LIMIT = "rate limit"
THROUGHPUT = "Twilio throughput limit"
# A message the frequency caps held back for a campaign that skips: SKIPPED with this status_reason.
FREQUENCY_CAP_REASON = "frequency_cap"
# WhatsApp refused it: the recipient reached its limit of marketing messages from businesses.
MARKETING_LIMIT_ERROR = 63049


@dataclass(frozen=True)
class Percentiles:
    count: int
    median: float | None
    p90: float | None


@dataclass(frozen=True)
class LedgerPass:
    handed_to_twilio: int  # messages with a provider SID
    sent: int  # messages Twilio reported sent (sent_at)
    first_sent_at: datetime | None
    last_sent_at: datetime | None
    to_deliver: Percentiles  # seconds from sent_at to delivered_at
    to_read: Percentiles  # seconds from sent_at to read_at
    rate_limited: int  # messages deferred for a rate slot at least once
    rate_limit_deferrals: int
    rate_limit_wait: Percentiles  # per message, the seconds its rate-slot deferrals added up to
    rate_limit_max_wait: float | None
    cap_deferred: int  # messages the frequency caps deferred at least once
    cap_deferrals: int  # times they did
    cap_skipped: int  # SKIPPED with status_reason frequency_cap
    marketing_limit_failed: int  # error 63049: WhatsApp's per-user marketing limit


# The ledger pass at 1M messages (docs/architecture.md, "Analytics at a million messages"): the counts come
# from message_tallies (a few thousand rows, not the campaign's messages), the first and last send from
# two ends of ix_messages_campaign_id_sent_at, the delivery time's percentiles from delivery_time_tallies
# (the delivered messages counted by whole milliseconds of delivery time), and the other percentiles from
# the one or two rows at their position in a partial index ordered by the measured value
# (ix_messages_campaign_id_to_read, _rate_limit_wait): percentile_cont's own interpolation between them,
# with the count taken from the tallies in the same statement, so position and rows are of one snapshot.
# A pass over 1M rows with three percentile_cont sorts took 0.7-1.8 s on the bench machine; a walk to the
# median ~0.1 s, and up to 0.5 s when the messages sent since the last VACUUM lay on the way.
_SENT_SPAN = text("""
SELECT min(sent_at) AS first_sent_at, max(sent_at) AS last_sent_at
FROM messages WHERE campaign_id = :campaign_id AND sent_at IS NOT NULL
""")
# (value expression, the index's order, the messages it covers, their tally flag)
_MEASURES = {
    "to_read": (
        "date_part('epoch', read_at - sent_at)",
        "read_at - sent_at",
        "read_at IS NOT NULL AND sent_at IS NOT NULL",
        "read",
    ),
    "rate_limit_wait": (
        "rate_limit_wait_seconds",
        "rate_limit_wait_seconds",
        "rate_limit_deferrals > 0",
        "rate_limited",
    ),
}
# The two rows around position p x (n - 1), walked to from whichever end of the index is nearer.
_AT_POSITION = """
WITH n AS (
    SELECT coalesce(sum(messages), 0) AS n FROM message_tallies WHERE campaign_id = :campaign_id AND {flag}
)
SELECT (SELECT n FROM n) AS n, {value} AS value
FROM messages
WHERE campaign_id = :campaign_id AND {where}
ORDER BY {order} {direction}
OFFSET (SELECT greatest(0, {offset}) FROM n)
LIMIT 2
"""
_FROM_START = "floor(:p * (n - 1))"
_FROM_END = "n - 1 - ceil(:p * (n - 1))"


# The delivery time: percentile_cont over the delivered messages' delivery times in whole milliseconds,
# from their counts per millisecond (delivery_time_tallies, migration 0015): `upto` is how many messages
# took at most `ms`, so the value at position k (from 0) is the least ms with upto > k. It reads one row
# per distinct millisecond (a few hundred to a few thousand at 1M messages), never the messages, so it
# does not depend on the visibility map as an index-only walk to position p x n does.
_DELIVERY_TIME_AT = text("""
WITH counts AS (
    SELECT ms, sum(messages) AS c FROM delivery_time_tallies WHERE campaign_id = :campaign_id
    GROUP BY ms HAVING sum(messages) <> 0
), cumulative AS (
    SELECT ms, sum(c) OVER (ORDER BY ms) AS upto FROM counts
), n AS (
    SELECT coalesce(max(upto), 0) AS n FROM cumulative
)
SELECT n.n,
       (SELECT min(ms) FROM cumulative WHERE upto > floor(:p * (n.n - 1))) AS low,
       (SELECT min(ms) FROM cumulative WHERE upto > ceil(:p * (n.n - 1))) AS high
FROM n
""")
# What a delivery time's millisecond is, spelled as migration 0015's triggers compute it (a test recounts
# the tallies with it and compares percentiles with percentile_cont over it).
DELIVERY_MS = "round(extract(epoch FROM delivered_at - sent_at) * 1000)"


def _delivery_time(session: Session, campaign_id: int, p: float) -> tuple[int, float | None]:
    row = session.execute(_DELIVERY_TIME_AT, {"campaign_id": campaign_id, "p": p}).one()
    n = int(row.n)
    if not n:
        return 0, None
    position = p * (n - 1)
    low, high = float(row.low), float(row.high)
    value = low if low == high else low + (high - low) * (position - math.floor(position))
    return n, value / 1000


def percentile(session: Session, campaign_id: int, measure: str, p: float) -> tuple[int, float | None]:
    """(messages measured, percentile_cont(p) of the measure over them), exact; the delivery time
    ("to_deliver") is measured in whole milliseconds."""
    if measure == "to_deliver":
        return _delivery_time(session, campaign_id, p)
    value, order, where, flag = _MEASURES[measure]
    ascending = p <= 0.5
    sql = _AT_POSITION.format(
        flag=flag,
        value=value,
        where=where,
        order=order,
        direction="ASC" if ascending else "DESC",
        offset=_FROM_START if ascending else _FROM_END,
    )
    rows = session.execute(text(sql), {"campaign_id": campaign_id, "p": p}).all()
    if not rows:
        return 0, None
    n = int(rows[0].n)
    position = p * (n - 1)
    low, high = math.floor(position), math.ceil(position)
    values = [float(row.value) for row in rows]
    if ascending:  # values[0] is at `low`, values[1] (if any) at low + 1
        first, second = values[0], values[-1]
    else:  # values[0] is at `high`, values[1] at high - 1
        first, second = (values[0], values[0]) if low == high else (values[-1], values[0])
    if low == high:
        return n, first
    return n, first + (second - first) * (position - low)


def _measured(session: Session, campaign_id: int, measure: str, counted: int | None = None) -> Percentiles:
    """`counted`: the tallies' count of measured messages, when the caller has it: none, no query."""
    if counted == 0:
        return Percentiles(0, None, None)
    n, median = percentile(session, campaign_id, measure, 0.5)
    if not n:
        return Percentiles(0, None, None)
    _, p90 = percentile(session, campaign_id, measure, 0.9)
    return Percentiles(n, median, p90)


def ledger_pass(session: Session, campaign_id: int, counted: tallies.CampaignTallies) -> LedgerPass:
    """`counted`: the campaign's tallies already read (`tallies.snapshot`), so that they are not scanned
    again; a measure they count no message for is not looked up."""
    counts = counted.totals
    read, rate_limited = counts.read, counts.rate_limited
    span = session.execute(_SENT_SPAN, {"campaign_id": campaign_id}).one()
    rate_limit_wait = _measured(session, campaign_id, "rate_limit_wait", rate_limited)
    max_wait = None
    if rate_limit_wait.count:
        max_wait = percentile(session, campaign_id, "rate_limit_wait", 1.0)[1]
    return LedgerPass(
        handed_to_twilio=int(counts.handed_to_twilio),
        sent=int(counts.sent),
        first_sent_at=span.first_sent_at,
        last_sent_at=span.last_sent_at,
        to_deliver=_measured(session, campaign_id, "to_deliver"),
        to_read=_measured(session, campaign_id, "to_read", read),
        rate_limited=int(counts.rate_limited),
        rate_limit_deferrals=int(counts.rate_limit_deferrals),
        rate_limit_wait=rate_limit_wait,
        rate_limit_max_wait=max_wait,
        cap_deferred=int(counts.cap_deferred),
        cap_deferrals=int(counts.cap_deferrals),
        cap_skipped=int(counts.cap_skipped),
        marketing_limit_failed=int(counts.marketing_limit_failed),
    )


def _percentiles(count: int, values: Sequence[float] | None) -> Percentiles:
    if not count or values is None:
        return Percentiles(int(count), None, None)
    return Percentiles(int(count), float(values[0]), float(values[1]))


@dataclass(frozen=True)
class DeferralRow:
    cause: str
    messages: int  # messages deferred at least once for this cause
    deferrals: int  # times, a message may be deferred more than once
    wait: Percentiles  # per message: the seconds its deferrals for this cause added up to
    max_wait: float | None


# Quiet hours (fan-out and send time) and Twilio's throughput errors are in the audit trail with the
# instant they were moved to (`until`), read through ix_audit_events_campaign_id_kind; waits add up per
# message first. Rate-limit deferrals are counted on the message itself (the ledger pass).
_AUDITED_DEFERRALS = text("""
WITH per_message AS (
    SELECT CASE WHEN kind = :throttled THEN :throughput ELSE coalesce(detail->>'reason', :quiet) END AS cause,
           message_id,
           count(*) AS deferrals,
           sum(date_part('epoch', CAST(detail->>'until' AS timestamptz) - occurred_at)) AS wait
    FROM audit_events
    WHERE campaign_id = :campaign_id AND kind IN (:deferred, :throttled)
    GROUP BY 1, 2
)
SELECT cause, count(*) AS messages, sum(deferrals) AS deferrals,
       count(wait) AS timed,
       percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (ORDER BY wait) AS wait,
       max(wait) AS max_wait
FROM per_message
GROUP BY cause
ORDER BY cause
""")


def deferrals(session: Session, campaign_id: int, ledger: LedgerPass) -> list[DeferralRow]:
    """Every cause that deferred a message of the campaign, by cause."""
    params = {
        "campaign_id": campaign_id,
        "deferred": QUIET_HOURS_KIND,
        "throttled": THROTTLED_KIND,
        "throughput": THROUGHPUT,
        "quiet": QUIET_HOURS,
    }
    rows = [
        DeferralRow(
            cause=row.cause,
            messages=int(row.messages),
            deferrals=int(row.deferrals),
            wait=_percentiles(row.timed, row.wait),
            max_wait=None if row.max_wait is None else float(row.max_wait),
        )
        for row in session.execute(_AUDITED_DEFERRALS, params)
    ]
    if ledger.rate_limited:
        rate = DeferralRow(
            cause=RATE_LIMIT,
            messages=ledger.rate_limited,
            deferrals=ledger.rate_limit_deferrals,
            wait=ledger.rate_limit_wait,
            max_wait=ledger.rate_limit_max_wait,
        )
        rows.append(rate)
    return sorted(rows, key=lambda row: row.cause)


@dataclass(frozen=True)
class Attribution:
    opted_out: int  # recipients whose STOP came within the window after their message
    replied: int  # recipients who wrote at least once within the window
    replies: int  # their inbound messages within the window


# Driven by the events, not by the messages: the users' STOPs (ix_audit_events_user_stops) and the inbound messages
# (events_inbound (received_at)) between the campaign's first send and its last send + the window, each
# matched to the recipient's message of this campaign by the unique (campaign_id, recipient_phone) index
# and checked against that message's own window. A few thousand events cost a few thousand index probes,
# where a probe per message of a 100k-message campaign took ~300 ms; with many events the planner hashes
# instead. A recipient has one message per campaign, so distinct messages count recipients.
_ATTRIBUTION = text(f"""
WITH stops AS (
    SELECT user_phone AS phone, occurred_at AS at
    FROM audit_events
    WHERE {USER_STOP_PREDICATE} AND occurred_at > :first_sent AND occurred_at <= :last_window_end
), inbound AS (
    SELECT from_phone AS phone, received_at AS at
    FROM events_inbound
    WHERE received_at > :first_sent AND received_at <= :last_window_end
)
SELECT stopped.opted_out, replies.replied, replies.replies
FROM (
    SELECT count(DISTINCT m.id) AS opted_out
    FROM stops x JOIN messages m ON m.campaign_id = :campaign_id AND m.recipient_phone = x.phone
    WHERE x.at > m.sent_at AND x.at <= m.sent_at + :window
) stopped, (
    SELECT count(DISTINCT m.id) AS replied, count(*) AS replies
    FROM inbound x JOIN messages m ON m.campaign_id = :campaign_id AND m.recipient_phone = x.phone
    WHERE x.at > m.sent_at AND x.at <= m.sent_at + :window
) replies
""")


def attribution(
    session: Session, campaign_id: int, ledger: LedgerPass, window: timedelta = ATTRIBUTION_WINDOW
) -> Attribution:
    if ledger.first_sent_at is None or ledger.last_sent_at is None:
        return Attribution(0, 0, 0)
    params = {
        "campaign_id": campaign_id,
        "window": window,
        "first_sent": ledger.first_sent_at,
        "last_window_end": ledger.last_sent_at + window,
    }
    row = session.execute(_ATTRIBUTION, params).one()
    return Attribution(int(row.opted_out), int(row.replied), int(row.replies))


# The export, a page at a time in phone order: a range of the unique (campaign_id, recipient_phone) index,
# already sorted, however the campaign's rows interleave with other campaigns'. Each row carries its own
# attribution, as in _ATTRIBUTION.
_EXPORT_PAGE = text(f"""
SELECT m.id, m.recipient_phone, m.status, m.status_reason, m.error_code, m.provider_sid,
       m.scheduled_at, m.sent_at, m.delivered_at, m.read_at, m.failed_at,
       m.retry_count, m.rate_limit_deferrals, m.sender, m.frequency_cap_deferrals,
       CASE WHEN m.sent_at IS NULL THEN false ELSE EXISTS (
           SELECT FROM audit_events
           WHERE user_phone = m.recipient_phone
             AND occurred_at > m.sent_at AND occurred_at <= m.sent_at + :window
             AND {USER_STOP_PREDICATE}
       ) END AS opted_out,
       CASE WHEN m.sent_at IS NULL THEN 0 ELSE (
           SELECT count(*) FROM events_inbound i
           WHERE i.from_phone = m.recipient_phone
             AND i.received_at > m.sent_at AND i.received_at <= m.sent_at + :window
       ) END AS replies
FROM messages m
WHERE m.campaign_id = :campaign_id AND m.recipient_phone > :after_phone
ORDER BY m.recipient_phone
LIMIT :limit
""")


def export_page(
    session: Session,
    campaign_id: int,
    *,
    after_phone: str,
    limit: int,
    window: timedelta = ATTRIBUTION_WINDOW,
) -> Sequence[Row[Any]]:
    """Up to `limit` messages whose recipient's phone sorts after `after_phone` ("" for the first page)."""
    params = {
        "campaign_id": campaign_id,
        "after_phone": after_phone,
        "limit": limit,
        "window": window,
    }
    return session.execute(_EXPORT_PAGE, params).all()
