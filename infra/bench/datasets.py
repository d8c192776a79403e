"""Seeded, reproducible data for the figures, generated into `.local/bench/` (git-ignored).

Every user is derived from its index: user i always has the same phone and attributes, so an import file,
the rows seeded for a segment and the recipients of a campaign agree from run to run and machine to machine.
Phones are valid US numbers (8 area codes x 700 exchanges x 10,000 lines, unique below 56 million).
"""

from __future__ import annotations

import csv
import io
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from infra.bench.db import connect
from infra.bench.paths import BENCH_DIR
from shared.domain.twilio_errors import describe
from shared.services.fanout import NO_CONSENT_REASON
from shared.services.send_admission import CONSENT_REVOKED_REASON

DATA_DIR = BENCH_DIR
AREA_CODES = ("212", "415", "312", "617", "206", "303", "404", "512")
CITIES = ("Lagos", "Nairobi", "Accra", "Cairo", "Kampala", "Kigali", "Dakar", "Tunis", "Lusaka", "Harare")
TIERS = ("bronze", "silver", "gold", "platinum")
FIRST_NAMES = ("Ada", "Kofi", "Amina", "Tendai", "Zola", "Musa", "Nia", "Tariq", "Lulu", "Sefu")
INVALID_PHONES = ("+1212555", "call me", "+999123456789", "12", "+1 (212) 555-01x9")
ATTRIBUTE_COLUMNS = ("first_name", "city", "age", "tier", "signup_date", "timezone")
# Part of the cached file names: bump it when the generated rows change.
FORMAT = "v2"
IMPORT_COLUMNS = ("phone", "consent_state", *ATTRIBUTE_COLUMNS)


def phone(index: int) -> str:
    rest = index // len(AREA_CODES)
    return f"+1{AREA_CODES[index % len(AREA_CODES)]}{200 + (rest // 10_000) % 700:03d}{rest % 10_000:04d}"


def attributes(index: int) -> dict[str, str | int]:
    bits = _mix(index)
    return {
        "first_name": FIRST_NAMES[bits % len(FIRST_NAMES)],
        "city": CITIES[(bits >> 8) % len(CITIES)],
        "age": 18 + (bits >> 16) % 63,
        "tier": TIERS[(bits >> 24) % len(TIERS)],
        "signup_date": (date(2020, 1, 1) + timedelta(days=(bits >> 32) % 2000)).isoformat(),
        "timezone": "UTC",
    }


def _mix(index: int) -> int:
    """splitmix64: well-spread bits from an index, far cheaper than a seeded Random per user."""
    mask = 2**64 - 1
    x = (index + 0x9E3779B97F4A7C15) & mask
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & mask
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & mask
    return x ^ (x >> 31)


@dataclass(frozen=True)
class ImportFile:
    path: Path
    rows: int
    invalid: int
    duplicates: int

    @property
    def valid_unique(self) -> int:
        return self.rows - self.invalid - self.duplicates


def import_csv(rows: int, seed: int = 1, invalid: float = 0.02, duplicates: float = 0.05) -> ImportFile:
    """A CSV of `rows` data rows: about `invalid` of them with a bad phone, `duplicates` repeating an
    earlier row's phone. Written once per (rows, seed) and reused."""
    # The shares are part of the name unless they are the defaults (whose files keep their old names).
    shares = "" if (invalid, duplicates) == (0.02, 0.05) else f"_i{invalid:g}_d{duplicates:g}"
    path = DATA_DIR / f"users_{rows}_s{seed}{shares}_{FORMAT}.csv"
    rng = random.Random(seed)
    kinds = [_row_kind(rng, invalid, duplicates) for _ in range(rows)]
    # The first row cannot repeat an earlier one.
    kinds[0] = "valid"
    if not path.exists():
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with tmp.open("w", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(IMPORT_COLUMNS)
            writer.writerows(_import_rows(kinds, random.Random(seed + 1)))
        tmp.replace(path)
    return ImportFile(path, rows, kinds.count("invalid"), kinds.count("duplicate"))


def _row_kind(rng: random.Random, invalid: float, duplicates: float) -> str:
    draw = rng.random()
    return "invalid" if draw < invalid else "duplicate" if draw < invalid + duplicates else "valid"


def _import_rows(kinds: list[str], rng: random.Random) -> Iterator[list[str]]:
    next_user, valid_users = 0, list[int]()
    for kind in kinds:
        if kind == "duplicate":
            # Only a valid row can be repeated: a repeat of a rejected phone would be a new valid user.
            index = valid_users[rng.randrange(len(valid_users))]
        else:
            index, next_user = next_user, next_user + 1
            if kind == "valid":
                valid_users.append(index)
        attrs = attributes(index)
        number = INVALID_PHONES[index % len(INVALID_PHONES)] if kind == "invalid" else phone(index)
        yield [number, "OPT_IN", *(str(attrs[column]) for column in ATTRIBUTE_COLUMNS)]


def seed_users(database_url: str, first: int, count: int, timezone: str = "UTC") -> None:
    """Opted-in users first..first+count-1 straight into `users` with COPY: setup for the figures that
    measure something else (segments, fan-out, sends), not a measured path."""
    conn = connect(database_url)
    try:
        conn.run(
            "COPY users (phone_e164, attributes, consent_state) FROM STDIN WITH (FORMAT csv)",
            stream=_user_chunks(first, count, timezone),
        )
    finally:
        conn.close()


def _user_chunks(first: int, count: int, timezone: str, chunk: int = 10_000) -> Iterator[str]:
    # Streamed in chunks so a million users never sit in memory at once.
    for start in range(first, first + count, chunk):
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        for index in range(start, min(start + chunk, first + count)):
            attrs = attributes(index) | {"timezone": timezone}
            writer.writerow([phone(index), json.dumps(attrs, separators=(",", ":")), "OPT_IN"])
        yield buffer.getvalue()


# --- a campaign history for the dashboard: messages, receipts, audit trail and inbound, all in SQL ---

# What became of a sent-to recipient, one entry per percent (READ 35%, DELIVERED 43%, ...).
MESSAGE_OUTCOMES = (
    (["READ"] * 35 + ["DELIVERED"] * 43 + ["SENT"] * 5 + ["FAILED"] * 5 + ["UNDELIVERED"] * 2)
    + ["SKIPPED"] * 6
    + ["WITHHELD"] * 4
)
# FAILED picks one of these by message, UNDELIVERED one of the last two. 21211 is refused at create (no
# SID); 30008 failed after three retries; the others came back in a status callback.
FAILURE_CODES = (30005, 30006, 63024, 21211, 30008)
UNDELIVERED_CODES = (30003, 30007)
MISSING_VARIABLE_REASON = "missing template variable: first_name"


@dataclass(frozen=True)
class HistoryCampaign:
    name: str
    status: str
    share: float  # of the messages
    started: timedelta  # ago
    span: timedelta  # first to last send
    waiting_percent: int  # still QUEUED (parked, when the campaign is PAUSED)


HISTORY_CAMPAIGNS = (
    HistoryCampaign("Spring sale", "COMPLETED", 0.55, timedelta(days=3), timedelta(hours=2), 0),
    HistoryCampaign("Loyalty points", "COMPLETED", 0.25, timedelta(hours=26), timedelta(hours=1), 0),
    HistoryCampaign("Flash offer", "RUNNING", 0.15, timedelta(minutes=50), timedelta(minutes=50), 15),
    HistoryCampaign("Survey", "PAUSED", 0.05, timedelta(hours=3), timedelta(minutes=20), 30),
)


@dataclass(frozen=True)
class CampaignHistory:
    campaign_ids: tuple[int, ...]  # in HISTORY_CAMPAIGNS order: the largest first
    failed_message_id: int  # one with retries, a failure callback and its audit trail
    stopped_phone: str  # a user who got campaigns, then said STOP


def seed_campaign_history(database_url: str, messages: int, inbound: int) -> CampaignHistory:
    """`messages` messages over HISTORY_CAMPAIGNS to users already seeded (each campaign to the first users
    by phone), with the receipts, audit events, consent changes and `inbound` inbound messages such a
    history leaves. Generated in SQL (INSERT ... SELECT), so 100k messages take seconds."""
    now = datetime.now(UTC)
    codes = [*FAILURE_CODES, *UNDELIVERED_CODES]
    conn = connect(database_url)
    try:
        conn.run("BEGIN")
        template = conn.run(_HISTORY_TEMPLATE)[0][0]
        segment = conn.run(_HISTORY_SEGMENT)[0][0]
        ids = []
        for campaign in HISTORY_CAMPAIGNS:
            started = now - campaign.started
            campaign_id = conn.run(
                _HISTORY_CAMPAIGN,
                name=campaign.name,
                template=template,
                segment=segment,
                status=campaign.status,
                started=started,
                completed=started + campaign.span if campaign.status == "COMPLETED" else None,
            )[0][0]
            conn.run(
                _HISTORY_MESSAGES,
                campaign=campaign_id,
                size=max(1, round(messages * campaign.share)),
                started=started,
                span=campaign.span,
                waiting=campaign.waiting_percent,
                parked=campaign.status == "PAUSED",
                outcomes=MESSAGE_OUTCOMES,
                codes=codes,
                meanings=[describe(code) for code in codes],
                skip_reasons=[NO_CONSENT_REASON, MISSING_VARIABLE_REASON],
                withhold_reasons=[CONSENT_REVOKED_REASON],
                now=now,
            )
            conn.run(_HISTORY_AUDIENCE, campaign=campaign_id, started=started)
            ids.append(int(campaign_id))
        for statement in _HISTORY_TRAILS:
            conn.run(statement, no_consent=NO_CONSENT_REASON)
        conn.run(_HISTORY_INBOUND, inbound=inbound, now=now)
        failed = conn.run(_HISTORY_PICK_FAILED, campaign=ids[0])[0][0]
        stopped = conn.run("SELECT min(phone_e164) FROM users WHERE consent_state = 'STOP'")[0][0]
        conn.run("COMMIT")
        # Fresh statistics and visibility map, as autovacuum would leave tables that size.
        conn.run("VACUUM ANALYZE")
    finally:
        conn.close()
    return CampaignHistory(tuple(ids), int(failed), str(stopped))


_HISTORY_TEMPLATE = f"""
INSERT INTO templates (name, content, content_sid, content_variables)
VALUES ('bench history', 'Hi {{first_name}}, our offer is on', 'HX{"b" * 32}', '{{"1": "first_name"}}')
RETURNING id"""
_HISTORY_SEGMENT = """
INSERT INTO segments (name, definition)
VALUES ('bench history', '{"attribute": "tier", "operator": "in", "value": ["gold", "platinum"]}')
RETURNING id"""
_HISTORY_CAMPAIGN = """
INSERT INTO campaigns (name, template_id, segment_id, status, paused_from, started_at, completed_at,
                       quiet_hours_start, quiet_hours_end, created_at)
VALUES (:name, :template, :segment, :status, CASE WHEN :status = 'PAUSED' THEN 'RUNNING' END,
        CAST(:started AS timestamptz), CAST(:completed AS timestamptz), '21:00', '08:00',
        CAST(:started AS timestamptz) - interval '1 hour')
RETURNING id"""
# One row per recipient: its fate by position (QUEUED for the first `waiting` percent of each hundred,
# else MESSAGE_OUTCOMES, stepped by 37 so neighbouring phones differ), its send time spread evenly over
# the campaign's span, and the timestamps, SID and error its fate implies.
_HISTORY_MESSAGES = """
WITH recipients AS (
    SELECT phone_e164 AS phone, attributes->>'first_name' AS first_name,
           row_number() OVER (ORDER BY phone_e164) - 1 AS n
    FROM users ORDER BY phone_e164 LIMIT :size
), fated AS (
    SELECT phone, first_name, n,
           CAST(:started AS timestamptz) + CAST(:span AS interval) * (n::float8 / :size) AS at,
           CASE WHEN n % 100 < :waiting THEN 'QUEUED'
                ELSE (CAST(:outcomes AS text[]))[1 + (n * 37) % 100] END AS status
    FROM recipients
), coded AS (
    SELECT *, CASE status WHEN 'FAILED' THEN (CAST(:codes AS int[]))[1 + n % 5]
                          WHEN 'UNDELIVERED' THEN (CAST(:codes AS int[]))[6 + n % 2] END AS error_code
    FROM fated
), timed AS (
    SELECT *, CASE WHEN status IN ('READ', 'DELIVERED', 'SENT', 'UNDELIVERED') THEN at END AS sent_at,
           status IN ('READ', 'DELIVERED', 'SENT', 'UNDELIVERED')
               OR (status = 'FAILED' AND error_code <> 21211) AS handed
    FROM coded
)
INSERT INTO messages (campaign_id, recipient_phone, body, content_variables, status, status_reason,
                      provider_sid, attempts, retry_count, error_code, scheduled_at, sent_at, delivered_at,
                      read_at, failed_at, created_at, updated_at)
SELECT CAST(:campaign AS bigint), t.phone, 'Hi ' || t.first_name || ', our offer is on', jsonb_build_object('1', t.first_name),
       t.status,
       CASE t.status
           WHEN 'SKIPPED' THEN (CAST(:skip_reasons AS text[]))[1 + t.n % 2]
           WHEN 'WITHHELD' THEN (CAST(:withhold_reasons AS text[]))[1]
           WHEN 'QUEUED' THEN CASE WHEN CAST(:parked AS boolean) THEN 'parked: campaign paused' END
           ELSE e.meaning END,
       CASE WHEN t.handed THEN 'SM' || md5(CAST(:campaign AS bigint) || t.phone) END,
       CASE WHEN t.status IN ('QUEUED', 'SKIPPED', 'WITHHELD') THEN 0 WHEN t.error_code = 30008 THEN 4 ELSE 1 END,
       CASE WHEN t.error_code = 30008 THEN 3 ELSE 0 END,
       t.error_code,
       CASE WHEN t.status <> 'QUEUED' THEN t.at
            WHEN NOT CAST(:parked AS boolean) THEN CAST(:now AS timestamptz) + (t.n % 600) * interval '1 second' END,
       t.sent_at,
       CASE WHEN t.status IN ('READ', 'DELIVERED') THEN t.at + interval '4 seconds' END,
       CASE WHEN t.status = 'READ' THEN t.at + (t.n % 900) * interval '1 second' END,
       CASE WHEN t.status IN ('FAILED', 'UNDELIVERED') THEN t.at + interval '3 seconds' END,
       CAST(:started AS timestamptz), greatest(t.at, CAST(:started AS timestamptz))
FROM timed t LEFT JOIN unnest(CAST(:codes AS int[]), CAST(:meanings AS text[])) AS e(code, meaning)
    ON e.code = t.error_code"""
# The frozen audience and its pages of 1,000, as the trigger and fan-out leave them.
_HISTORY_AUDIENCE = """
WITH frozen AS (
    INSERT INTO campaign_recipients (campaign_id, phone)
    SELECT campaign_id, recipient_phone FROM messages WHERE campaign_id = :campaign
    RETURNING phone
)
INSERT INTO campaign_pages (campaign_id, page_no, first_phone, last_phone, size, published_at, fanned_out_at)
SELECT :campaign, page_no, min(phone), max(phone), count(*), CAST(:started AS timestamptz),
       CAST(:started AS timestamptz)
FROM (SELECT phone, (row_number() OVER (ORDER BY phone) - 1) / 1000 AS page_no FROM frozen) paged
GROUP BY page_no"""
_HISTORY_TRAILS = (
    # Twilio's callbacks, oldest first: sent, then delivered and read, or failed / undelivered.
    """
INSERT INTO delivery_receipts (message_sid, message_status, message_id, error_code, raw_payload, received_at)
SELECT m.provider_sid, r.status, m.id, CASE WHEN r.status IN ('failed', 'undelivered') THEN m.error_code END,
       jsonb_build_object('MessageSid', m.provider_sid, 'MessageStatus', r.status,
                          'To', 'whatsapp:' || m.recipient_phone, 'ErrorCode', m.error_code),
       coalesce(m.sent_at, m.scheduled_at) + r.step * interval '2 seconds'
FROM messages m CROSS JOIN LATERAL unnest(CASE m.status
    WHEN 'READ' THEN ARRAY['sent', 'delivered', 'read'] WHEN 'DELIVERED' THEN ARRAY['sent', 'delivered']
    WHEN 'SENT' THEN ARRAY['sent'] WHEN 'UNDELIVERED' THEN ARRAY['sent', 'undelivered']
    WHEN 'FAILED' THEN ARRAY['failed'] END) WITH ORDINALITY AS r(status, step)
WHERE m.provider_sid IS NOT NULL
ORDER BY m.id, r.step""",
    # The decisions: skipped at fan-out, withheld at send time, failed, retried, deferred by quiet hours.
    """
INSERT INTO audit_events (occurred_at, kind, campaign_id, message_id, user_phone, source, detail)
SELECT coalesce(m.failed_at, m.scheduled_at),
       CASE m.status WHEN 'SKIPPED' THEN 'message.skipped' WHEN 'WITHHELD' THEN 'message.withheld'
                     ELSE 'message.failed' END,
       m.campaign_id, m.id,
       m.recipient_phone,
       CASE m.status WHEN 'SKIPPED' THEN 'fanout'
                     WHEN 'WITHHELD' THEN 'send_message'
                     ELSE CASE WHEN m.provider_sid IS NULL THEN 'send_message' ELSE 'status_callback' END END,
       jsonb_strip_nulls(jsonb_build_object('reason', m.status_reason, 'error_code', m.error_code))
FROM messages m WHERE m.status IN ('SKIPPED', 'WITHHELD', 'FAILED', 'UNDELIVERED')
UNION ALL
SELECT m.scheduled_at - (4 - r) * interval '5 minutes', 'message.retried', m.campaign_id, m.id,
       m.recipient_phone, 'send_message', jsonb_build_object('retry', r, 'error_code', m.error_code)
FROM messages m CROSS JOIN generate_series(1, 3) AS r WHERE m.retry_count >= r
UNION ALL
SELECT m.created_at, 'message.deferred', m.campaign_id, m.id, m.recipient_phone, 'fanout',
       jsonb_build_object('reason', 'quiet hours', 'until', m.scheduled_at, 'timezone', 'UTC')
FROM messages m WHERE m.id % 10 = 0 AND m.sent_at IS NOT NULL
UNION ALL
SELECT c.started_at, 'campaign.started', c.id, NULL, NULL, 'api', '{}' FROM campaigns c
UNION ALL
SELECT c.completed_at, 'campaign.completed', c.id, NULL, NULL, 'send_message', '{}'
FROM campaigns c WHERE c.completed_at IS NOT NULL
ORDER BY 1""",
    # Those skipped for want of consent had said STOP before the campaign.
    """
WITH stopped AS (
    UPDATE users u SET consent_state = 'STOP', consent_updated_at = m.created_at - interval '1 day'
    FROM (SELECT recipient_phone, min(created_at) AS created_at FROM messages
          WHERE status_reason = :no_consent GROUP BY recipient_phone) m
    WHERE u.phone_e164 = m.recipient_phone
    RETURNING u.phone_e164, u.consent_updated_at
)
INSERT INTO audit_events (occurred_at, kind, user_phone, source, detail)
SELECT consent_updated_at, 'consent.changed', phone_e164, 'inbound_keyword',
       jsonb_build_object('from', 'OPT_IN', 'to', 'STOP', 'keyword', 'STOP')
FROM stopped""",
)
# Replies from recipients of the largest campaign, one every 20 seconds back from now.
_HISTORY_INBOUND = """
WITH phones AS (
    SELECT array_agg(phone_e164) AS list FROM (SELECT phone_e164 FROM users ORDER BY 1 LIMIT 1000) first_users
), said AS (
    SELECT i, phones.list[1 + i % cardinality(phones.list)] AS phone,
           (ARRAY['Thanks!', 'When does the sale end?', 'STOP', 'HELP', 'START'])[1 + i % 5] AS body,
           (ARRAY['none', 'none', 'consent:STOP', 'help', 'consent:OPT_IN'])[1 + i % 5] AS outcome
    FROM generate_series(:inbound - 1, 0, -1) AS i CROSS JOIN phones
)
INSERT INTO events_inbound (message_sid, from_phone, body, raw_payload, outcome, received_at)
SELECT 'SM' || md5('inbound' || i), phone, body,
       jsonb_build_object('MessageSid', 'SM' || md5('inbound' || i), 'From', 'whatsapp:' || phone, 'Body', body),
       outcome, CAST(:now AS timestamptz) - i * interval '20 seconds'
FROM said ORDER BY i DESC"""
_HISTORY_PICK_FAILED = """
SELECT min(id) FROM messages WHERE campaign_id = :campaign AND status = 'FAILED' AND retry_count > 0"""
