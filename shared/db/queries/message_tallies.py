"""SQL over message_tallies: messages counted by what the reports group them by, exact in every transaction
(docs/architecture.md, "Analytics at a million messages").

Triggers on `messages` (migration 0013) append a write's deltas: -1 for each row as it was, +1 as it is, in
the group of each. A group's messages are therefore the sum of its rows, whatever has been folded, so every
count here is `sum(messages)` over the campaign's rows, a few thousand of them at 1M messages where a pass
over the messages themselves read 1M. `fold` (the scheduler's tick) replaces a campaign's rows by one per
group; it changes no sum, so a read before, during or after it sees the same counts.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

GROUPS = (
    "campaign_id, status, sender, handed, sent_minute, delivered_minute, failed_minute, delivered, read, "
    "error_code, cap_skipped, rate_limited, cap_deferred"
)

# The campaigns with rows not yet folded (ix_message_tallies_unfolded), each folded whole: its rows are
# deleted and their sums written back as one folded row per group. A row appended meanwhile is not in the
# DELETE's snapshot and stays for the next fold; two folds at once delete each row once between them.
# delivery_time_tallies (one group per campaign and millisecond) is folded alike in the same statement; the
# counts returned are of both tables together.
FOLD_SQL = f"""
WITH due_times AS (
    SELECT DISTINCT campaign_id FROM delivery_time_tallies WHERE NOT folded
), gone_times AS (
    DELETE FROM delivery_time_tallies t USING due_times WHERE t.campaign_id = due_times.campaign_id
    RETURNING t.*
), kept_times AS (
    INSERT INTO delivery_time_tallies (campaign_id, ms, messages, folded)
    SELECT campaign_id, ms, sum(messages), true
    FROM gone_times
    GROUP BY campaign_id, ms
    HAVING sum(messages) <> 0
    RETURNING 1
), due AS (
    SELECT DISTINCT campaign_id FROM message_tallies WHERE NOT folded
), gone AS (
    DELETE FROM message_tallies t USING due WHERE t.campaign_id = due.campaign_id
    RETURNING t.*
), kept AS (
    INSERT INTO message_tallies ({GROUPS}, messages, rate_limit_deferrals, cap_deferrals, folded)
    SELECT {GROUPS}, sum(messages), sum(rate_limit_deferrals), sum(cap_deferrals), true
    FROM gone
    GROUP BY {GROUPS}
    HAVING sum(messages) <> 0
    RETURNING 1
)
SELECT (SELECT count(*) FROM (SELECT campaign_id FROM due UNION SELECT campaign_id FROM due_times) c)
           AS campaigns,
       (SELECT count(*) FROM gone) + (SELECT count(*) FROM gone_times) AS folded,
       (SELECT count(*) FROM kept) + (SELECT count(*) FROM kept_times) AS kept
"""
_FOLD = text(FOLD_SQL)


# A fold deletes every delta it sums: about 8 dead rows per message sent since the last tick, which every
# read of the tallies steps over until a VACUUM removes them. At 1M messages, right after a fold of 83k
# deltas, the bench's campaign summary took 304 ms; a copy of that state, folded and vacuumed, 26 ms
# (docs/architecture.md, "Analytics at a million messages"). Autovacuum gets there only after its nap (a minute by default), so the tick
# vacuums right after its fold. SKIP_LOCKED: a VACUUM already at work on a table (autovacuum, an
# overlapping tick) is left to finish it; the tick neither waits for it nor fails.
VACUUM_SQL = "VACUUM (SKIP_LOCKED) message_tallies, delivery_time_tallies"


def fold(session: Session) -> tuple[int, int, int]:
    """(campaigns, rows folded, rows they became)."""
    row = session.execute(_FOLD).one()
    return int(row.campaigns), int(row.folded), int(row.kept)


def status_counts(session: Session, campaign_id: int | None) -> dict[str, int]:
    """Messages per status, of one campaign or of all (only statuses with messages)."""
    where = "" if campaign_id is None else "WHERE campaign_id = :campaign_id"
    rows = session.execute(
        text(f"""
            SELECT status, sum(messages) AS n FROM message_tallies {where}
            GROUP BY status HAVING sum(messages) <> 0"""),
        {"campaign_id": campaign_id},
    )
    return {str(row.status): int(row.n) for row in rows}


# Every count of the ledger pass (shared.db.queries.campaign_analytics) but the first and last send, as
# sums over a campaign's tallies (the fields of Totals).
_TOTALS_COLUMNS = """coalesce(sum(messages) FILTER (WHERE handed), 0) AS handed_to_twilio,
       coalesce(sum(messages) FILTER (WHERE sent_minute IS NOT NULL), 0) AS sent,
       coalesce(sum(messages) FILTER (WHERE delivered), 0) AS delivered,
       coalesce(sum(messages) FILTER (WHERE read), 0) AS read,
       coalesce(sum(messages) FILTER (WHERE rate_limited), 0) AS rate_limited,
       coalesce(sum(rate_limit_deferrals), 0) AS rate_limit_deferrals,
       coalesce(sum(messages) FILTER (WHERE cap_deferred), 0) AS cap_deferred,
       coalesce(sum(cap_deferrals), 0) AS cap_deferrals,
       coalesce(sum(messages) FILTER (WHERE cap_skipped), 0) AS cap_skipped,
       coalesce(sum(messages) FILTER (WHERE error_code = :marketing_limit), 0) AS marketing_limit_failed"""
_TOTALS = text(f"""
SELECT {_TOTALS_COLUMNS}
FROM message_tallies
WHERE campaign_id = :campaign_id
""")


def totals(session: Session, campaign_id: int, marketing_limit: int) -> Any:
    return session.execute(_TOTALS, {"campaign_id": campaign_id, "marketing_limit": marketing_limit}).one()


# One campaign's tallies summed in one scan, by each grouping a campaign's report reads (GROUPING SETS: one
# hash table per set over the same rows), with the ledger pass's totals as the empty set: the campaign
# summary reads this once instead of scanning the campaign's rows once per count. Unfolded deltas (up to a
# minute of sends in production, ~8 per message; the bench runs no scheduler, so the deltas of its last
# window stay unfolded) make every scan cost about as much as the others: ~0.1 s each at 83k deltas.
_SNAPSHOT = text(f"""
SELECT GROUPING(status, sender, sent_minute, error_code) AS grouping, status, sender, sent_minute, error_code,
       sum(messages) AS messages,
       {_TOTALS_COLUMNS}
FROM message_tallies
WHERE campaign_id = :campaign_id
GROUP BY GROUPING SETS ((status), (sender, status), (sent_minute), (error_code), ())
""")
# GROUPING(status, sender, sent_minute, error_code): a bit per column, set when the column is summed over.
_BY_STATUS, _BY_SENDER_STATUS, _BY_MINUTE, _BY_ERROR, _ALL = 0b0111, 0b0011, 0b1101, 0b1110, 0b1111


@dataclass(frozen=True)
class Totals:
    """The ledger pass's counts (what `totals` returns)."""

    handed_to_twilio: int
    sent: int
    delivered: int
    read: int
    rate_limited: int
    rate_limit_deferrals: int
    cap_deferred: int
    cap_deferrals: int
    cap_skipped: int
    marketing_limit_failed: int


@dataclass(frozen=True)
class CampaignTallies:
    """One campaign's tallies from one statement (`snapshot`): what `status_counts`, `totals`,
    `sends_per_minute`, `per_sender` and `error_codes` give, each with a scan of its own."""

    totals: Totals
    status_counts: dict[str, int]
    sends_per_minute: list[tuple[datetime, int]]
    per_sender: list[tuple[str | None, str, int]]
    error_codes: list[tuple[int, int]]


def snapshot(session: Session, campaign_id: int, marketing_limit: int) -> CampaignTallies:
    rows = session.execute(_SNAPSHOT, {"campaign_id": campaign_id, "marketing_limit": marketing_limit}).all()
    sets: dict[int, list[Any]] = defaultdict(list)
    for row in rows:
        if row.messages is not None and int(row.messages) != 0:
            sets[int(row.grouping)].append(row)
    everything = [row for row in rows if int(row.grouping) == _ALL]
    totals = Totals(
        *(int(getattr(everything[0], field)) if everything else 0 for field in Totals.__dataclass_fields__)
    )
    senders = sorted(sets[_BY_SENDER_STATUS], key=lambda r: (r.sender is None, r.sender or "", r.status))
    errors = [(int(r.error_code), int(r.messages)) for r in sets[_BY_ERROR] if r.error_code is not None]
    return CampaignTallies(
        totals=totals,
        status_counts={str(r.status): int(r.messages) for r in sets[_BY_STATUS]},
        sends_per_minute=sorted(
            (r.sent_minute, int(r.messages)) for r in sets[_BY_MINUTE] if r.sent_minute is not None
        ),
        per_sender=[(r.sender, str(r.status), int(r.messages)) for r in senders],
        error_codes=sorted(errors, key=lambda e: (-e[1], e[0])),
    )


def sends_per_minute(session: Session, campaign_id: int) -> list[tuple[datetime, int]]:
    rows = session.execute(
        text("""
            SELECT sent_minute, sum(messages) AS n FROM message_tallies
            WHERE campaign_id = :campaign_id AND sent_minute IS NOT NULL
            GROUP BY sent_minute HAVING sum(messages) <> 0 ORDER BY sent_minute"""),
        {"campaign_id": campaign_id},
    )
    return [(row.sent_minute, int(row.n)) for row in rows]


def per_sender(session: Session, campaign_id: int) -> list[tuple[str | None, str, int]]:
    rows = session.execute(
        text("""
            SELECT sender, status, sum(messages) AS n FROM message_tallies WHERE campaign_id = :campaign_id
            GROUP BY sender, status HAVING sum(messages) <> 0 ORDER BY sender NULLS LAST, status"""),
        {"campaign_id": campaign_id},
    )
    return [(row.sender, str(row.status), int(row.n)) for row in rows]


def error_codes(session: Session, campaign_id: int) -> list[tuple[int, int]]:
    rows = session.execute(
        text("""
            SELECT error_code, sum(messages) AS n FROM message_tallies
            WHERE campaign_id = :campaign_id AND error_code IS NOT NULL
            GROUP BY error_code HAVING sum(messages) <> 0 ORDER BY n DESC, error_code"""),
        {"campaign_id": campaign_id},
    )
    return [(int(row.error_code), int(row.n)) for row in rows]


def campaign_progress(session: Session, campaign_ids: list[int], waiting: tuple[str, ...]) -> Any:
    """Per campaign: messages, waiting (in `waiting` statuses), handed to Twilio, delivered or read."""
    return session.execute(
        text("""
            SELECT campaign_id, sum(messages) AS messages,
                   coalesce(sum(messages) FILTER (WHERE status = ANY(CAST(:waiting AS text[]))), 0) AS waiting,
                   coalesce(sum(messages) FILTER (WHERE handed), 0) AS handed,
                   coalesce(sum(messages) FILTER (WHERE status IN ('DELIVERED', 'READ')), 0) AS delivered
            FROM message_tallies WHERE campaign_id = ANY(CAST(:ids AS bigint[]))
            GROUP BY campaign_id"""),
        {"ids": list(campaign_ids), "waiting": list(waiting)},
    ).all()


def since(session: Session, start: datetime) -> Any:
    """Messages of every campaign sent, delivered and failed at or after `start` (a whole minute)."""
    _whole_minute(start)
    return session.execute(
        text("""
            SELECT coalesce(sum(messages) FILTER (WHERE sent_minute >= :start), 0) AS sent,
                   coalesce(sum(messages) FILTER (WHERE delivered_minute >= :start), 0) AS delivered,
                   coalesce(sum(messages) FILTER (WHERE failed_minute >= :start), 0) AS failed
            FROM message_tallies
            WHERE sent_minute >= :start OR delivered_minute >= :start OR failed_minute >= :start"""),
        {"start": start},
    ).one()


def sends_per_bucket(
    session: Session, start: datetime, bucket: timedelta, campaign_id: int | None
) -> dict[datetime, int]:
    """Messages sent per bucket from `start`; both whole minutes, so each minute falls in one bucket."""
    _whole_minute(start)
    if bucket % timedelta(minutes=1) or bucket <= timedelta(0):
        raise ValueError(f"a bucket of whole minutes is counted from the tallies, not {bucket}")
    campaign = "" if campaign_id is None else "AND campaign_id = :campaign_id"
    rows = session.execute(
        text(f"""
            SELECT date_bin(:bucket, sent_minute, :start) AS at, sum(messages) AS n FROM message_tallies
            WHERE sent_minute >= :start {campaign}
            GROUP BY 1 HAVING sum(messages) <> 0"""),
        {"start": start, "bucket": bucket, "campaign_id": campaign_id},
    )
    return {row.at: int(row.n) for row in rows}


def _whole_minute(at: datetime) -> None:
    if at.second or at.microsecond:
        raise ValueError(f"the tallies count whole minutes: {at.isoformat()} is not the start of one")


def vacuum(engine: Engine) -> None:
    """VACUUM_SQL, which runs outside a transaction: on a connection of its own in autocommit."""
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(VACUUM_SQL)
