"""1M-recipient campaign: a million users imported through `POST /v1/users/import`, one campaign to all of
them (the configured single sender, 80/s), and what it costs at the start and at the end.

- import: wall time of the import request (the real route, a CSV of 1M valid, distinct users);
- fan-out: from the trigger until every page is fanned out and 1M message rows exist (sends run meanwhile,
  at the campaign's rate, as they would);
- send rate and CPU per message by process (/proc, as the send figure) over the first N sends after the
  fan-out finished (the sends during the fan-out share their CPU with it, so they are not counted);
- then over the last N sends, after a fast-forward (below); the target is that the product's CPU per
  message (its functions and PostgreSQL) at the end is within 10% of the start: nothing grows with the
  messages already sent;
- database size (messages, delivery_receipts, audit_events, the whole database) per 1M messages;
- the campaign summary (`GET /v1/campaigns/{id}/summary`) and the dashboard's campaign page and overview,
  server time at 1M messages, with the last window's tally deltas unfolded and again after one fold (the
  bench's stack runs no scheduler; production's tick folds every minute);
- an extrapolation to production (a pool of 10 senders at 80/s each), shown as its calculation.

**The middle of the campaign is fast-forwarded, not sent.** This machine sends about 85 messages/s, so a
million real sends would take about 3.3 hours. After the first window the campaign is paused through the
API, the send queues purged, and in SQL every message still QUEUED except the last N (by recipient phone)
is marked DELIVERED, with sent_at spread back from the pause at the campaign's rate, delivered_at 3 s
later, a unique fabricated provider_sid (prefix "FF") and the two status callbacks (sent, delivered) a
delivered message leaves in delivery_receipts (payloads shaped like the real ones of the first sends).
The triggers on messages write that UPDATE's deltas to message_tallies, which are then folded, as the
scheduler's ticks would have folded them during real sends (docs/architecture.md, "Analytics at a million
messages"). The last N (plus a lead-in of 5 s of sends) are left parked (QUEUED, scheduled_at and slot_at NULL) and
the campaign's planning cursor cleared, the state a campaign whose middle had really been sent would be
paused in; resuming through the API re-plans and sends them for real. The last window's CPU is counted
from when every parked message has its send time again (the resume's re-planning of all pages is not a
send cost; the lead-in goes out meanwhile) over the next N sends, among the campaign's last.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pg8000.native import Connection

from infra.bench.campaigns import (
    IN_FLIGHT,
    call,
    configure_twilio,
    create_campaign,
    message_counts,
    pages_left,
    purge_queues,
    trigger,
    wait_until,
)
from infra.bench.context import BenchContext
from infra.bench.cpu import CpuSample, per_unit_ms, sample, stack_groups
from infra.bench.dashboard_client import page_times, signed_in
from infra.bench.datasets import import_csv
from infra.bench.db import connect
from infra.bench.figures.bulk_import import post_import
from infra.bench.measurement import Measurement, median, timed
from shared.db.queries.message_tallies import FOLD_SQL, VACUUM_SQL

FIGURE = "1M-recipient campaign"
UNIT = "x (CPU per message, last N ÷ first N)"
TARGET = (
    "CPU per message of the last 10,000 sends within 10% of the first 10,000; summary, campaign page "
    "and overview < 300 ms at 1M messages"
)
# The server `--profile` samples while the figure runs.
PROFILED: str | None = "send_message"
CAMPAIGN_RATE = 80
MAX_CPU_DRIFT = 0.10
MAX_SERVER_MS = 300
IMPORT_SEED = 18
# The extrapolation: production's pool and its ceilings.
PRODUCTION_SENDERS = 10
PRODUCTION_SENDER_RATE = 80
QUEUE_MAX_RATE = 500  # Cloud Tasks' ceiling per queue, dispatches/s
# As infra/terraform/send_queues.tf sizes them: room for the senders' total rate, 500/s a queue.
PRODUCTION_SEND_QUEUES = math.ceil(PRODUCTION_SENDERS * PRODUCTION_SENDER_RATE / QUEUE_MAX_RATE)
# Parked beyond the last window: about what goes out while the resume re-plans, before the window opens.
LEAD_IN = CAMPAIGN_RATE * 5


@dataclass(frozen=True)
class Size:
    users: int
    window: int  # N: the sends measured at the start and at the end
    page_runs: int  # per timed page / summary, after one warm-up
    timeout: float


FULL = Size(users=1_000_000, window=10_000, page_runs=5, timeout=3_600)
SMOKE = Size(users=3_000, window=50, page_runs=2, timeout=300)


@dataclass(frozen=True)
class Window:
    sends: int
    seconds: float
    cpu_ms: dict[str, float]  # per message, by process group (per_unit_ms)

    @property
    def rate(self) -> float:
        return self.sends / self.seconds if self.seconds else 0.0


def run(ctx: BenchContext, size: Size) -> Measurement:
    data = import_csv(size.users, seed=IMPORT_SEED, invalid=0.0, duplicates=0.0)
    import_s, report = post_import(ctx, data)
    if report.get("inserted") != size.users:
        raise RuntimeError(f"the import inserted {report.get('inserted')} of {size.users} users")
    # Two callbacks per message (sent, delivered), the trail the fast-forwarded messages are given too.
    configure_twilio(ctx, {"final_status": "delivered"})
    groups = stack_groups(ctx)
    campaign = create_campaign(ctx, "one million", CAMPAIGN_RATE)
    started = time.monotonic()
    trigger(ctx, campaign)
    wait_until(lambda: pages_left(ctx, campaign) == 0, size.timeout, "every page fanned out", 1.0)
    fanned = wait_until(
        lambda: _message_rows(ctx, campaign) == size.users, size.timeout, "a message row per user", 1.0
    )
    _vacuum(ctx, "messages", "campaign_recipients", "campaign_pages", "users")
    sent_during_fanout = size.users - _waiting(ctx, campaign)
    first = _window(ctx, campaign, groups, size.window, size.timeout)
    forwarded = _fast_forward(ctx, campaign, size.window + LEAD_IN)
    call(ctx, "POST", f"/v1/campaigns/{campaign}/resume")
    wait_until(lambda: _parked(ctx, campaign) == 0, size.timeout, "every parked message re-planned", 0.5)
    last = _window(ctx, campaign, groups, size.window, size.timeout)
    wait_until(lambda: _waiting(ctx, campaign) == 0, size.timeout, "every message sent", 1.0)
    counts = _settled(ctx, campaign, size.users)
    sizes = _sizes_mb(ctx)
    rows = _message_rows(ctx, campaign)
    # The bench's stack runs no scheduler, so the last window's tally deltas are all still unfolded: more
    # than production would hold (its tick folds every minute). Timed as they are, then after one fold,
    # the state right after a tick; the target is judged on the latter (docs/architecture.md, "Analytics
    # at a million messages").
    unfolded = _scalar(ctx, "SELECT count(*) FROM message_tallies WHERE NOT folded")
    unfolded_summary_ms = _summary_ms(ctx, campaign, size.page_runs)
    unfolded_pages = _pages_ms(ctx, campaign, size.page_runs)
    _fold(ctx)
    summary_ms = _summary_ms(ctx, campaign, size.page_runs)
    pages = _pages_ms(ctx, campaign, size.page_runs)
    product = [*ctx.function_ports, "PostgreSQL"]
    first_ms, last_ms = product_ms(first.cpu_ms, product), product_ms(last.cpu_ms, product)
    ratio = last_ms / first_ms
    # A control: the emulators' work per message does not depend on how many rows the database holds.
    controls = ["Cloud Tasks emulator", "Twilio emulator", "front end"]
    control_ratio = product_ms(last.cpu_ms, controls) / product_ms(first.cpu_ms, controls)
    functions_ms = product_ms(last.cpu_ms, list(ctx.function_ports))
    production = extrapolate(1_000_000, functions_ms)
    met = (
        abs(ratio - 1) <= MAX_CPU_DRIFT
        and max([summary_ms, *pages.values()]) < MAX_SERVER_MS
        and counts.get("DELIVERED", 0) == size.users
    )
    return Measurement(
        figure=FIGURE,
        unit=UNIT,
        target=TARGET if size == FULL else f"{TARGET} (smoke: {size.users:,} users, N = {size.window})",
        value=ratio,
        met=met,
        runs=1,
        details={
            "users imported": size.users,
            "import (s)": import_s,
            "import (rows/s)": size.users / import_s,
            "fan-out: trigger to every page and message row (s)": fanned - started,
            "fan-out (recipients/s)": size.users / (fanned - started),
            "sent during the fan-out (not in the first window)": sent_during_fanout,
            "fast-forwarded (marked DELIVERED in SQL, not sent)": forwarded,
            "why: 1M real sends at the first window's rate would take (h)": 1_000_000 / first.rate / 3600
            if first.rate
            else "—",
            **_window_details("first", first),
            **_window_details("last", last),
            "product CPU per message (functions + PostgreSQL), first → last (ms)": f"{first_ms:.2f} → {last_ms:.2f}",
            "control, not judged: the emulators' and front end's CPU per message, last ÷ first": round(
                control_ratio, 3
            ),
            "final message states": counts,
            **{f"{name} per 1M messages (MB)": mb * 1_000_000 / rows for name, mb in sizes.items()},
            "GET /v1/campaigns/{id}/summary round trip (ms, median)": summary_ms,
            **{f"{page} server time (ms, median)": ms for page, ms in pages.items()},
            "before the fold: unfolded tally rows (the last window's deltas)": unfolded,
            "before the fold: summary round trip (ms, median)": unfolded_summary_ms,
            **{
                f"before the fold: {page} server time (ms, median)": ms for page, ms in unfolded_pages.items()
            },
            **production.as_details(),
        },
        notes=(
            "THE MIDDLE OF THE CAMPAIGN IS FAST-FORWARDED, NOT SENT: this machine sends ~85 msg/s, so 1M "
            "real sends would take ~3.3 h; after the first window the campaign is paused (API), the send "
            "queues purged, every QUEUED message but the last N marked DELIVERED in SQL (fabricated 'FF' "
            "SIDs, sent/delivered receipts), the last N parked, and the campaign resumed (API): the last N "
            "are real sends",
            "first window: the N sends after the fan-out finished; last window: the N sends from when "
            f"the resume had re-planned every parked message (N + {LEAD_IN} were parked)",
            "VACUUM ANALYZE of the tables just written before each window, so neither pays for autovacuum",
            "pages and summary at 1M: timed with the last window's tally deltas unfolded (the bench runs no "
            "scheduler), then after one fold and the VACUUM of the tallies that follows it, as right after a "
            "scheduler tick; the target is judged on the folded times",
            "CPU per message: each server's processes (user + system, /proc) over the window's sends; the "
            "ratio is over the product's processes (its functions and PostgreSQL), not the emulators",
            "the bench counts a window's backlog a handful of times, on one connection: each count is "
            "PostgreSQL CPU, and the first window's backlog is a million rows deep",
            "control, not judged: the emulators and the front end do the same work per message whatever the "
            "database holds, so their last ÷ first is the machine's own drift between the windows",
            "no same-run baseline: the replaced system cannot run here",
        ),
    )


def _settled(ctx: BenchContext, campaign: int, users: int, patience: float = 120) -> dict[str, int]:
    """The final message states, once every message is DELIVERED (its last callback in) or `patience`
    seconds have passed: a message that ends otherwise is reported, not waited for."""
    deadline = time.monotonic() + patience
    while True:
        counts = message_counts(ctx, campaign)
        if counts.get("DELIVERED", 0) >= users or time.monotonic() > deadline:
            return counts
        time.sleep(2)


def _window_details(label: str, window: Window) -> dict[str, Any]:
    return {
        f"{label} window: sends": window.sends,
        f"{label} window: rate (msg/s)": window.rate,
        f"{label} window: CPU per message by process (ms)": window.cpu_ms,
    }


def product_ms(cpu_ms: Mapping[str, float], names: list[str]) -> float:
    """The CPU per message of the named process groups together."""
    return sum(cpu_ms.get(name, 0.0) for name in names)


@dataclass(frozen=True)
class Production:
    messages: int
    wall_seconds: float
    sender_bound_seconds: float
    queue_bound_seconds: float
    cpu_ms: float
    instance_seconds: float
    instances_at_pool_rate: int

    def as_details(self) -> dict[str, str]:
        pool_rate = PRODUCTION_SENDERS * PRODUCTION_SENDER_RATE
        return {
            f"production: wall time of {self.messages:,} on {PRODUCTION_SENDERS} senders at "
            f"{PRODUCTION_SENDER_RATE}/s": (
                f"max({self.messages:,} / ({PRODUCTION_SENDERS} x {PRODUCTION_SENDER_RATE}), "
                f"{self.messages:,} / ({PRODUCTION_SEND_QUEUES} x {QUEUE_MAX_RATE})) = "
                f"max({self.sender_bound_seconds:,.0f} s, {self.queue_bound_seconds:,.0f} s) = "
                f"{self.wall_seconds:,.0f} s ({self.wall_seconds / 60:.1f} min)"
            ),
            "production: instance-seconds (functions' CPU per message, last window)": (
                f"{self.messages:,} x {self.cpu_ms:.2f} ms = {self.instance_seconds:,.0f} vCPU-s"
            ),
            f"production: instances (1 vCPU) at {pool_rate}/s": (
                f"ceil({pool_rate} x {self.cpu_ms:.2f} ms / 1000 ms) = {self.instances_at_pool_rate}"
            ),
        }


def extrapolate(messages: int, cpu_ms: float) -> Production:
    """A campaign of `messages` on production's pool: bound by the senders' ceilings or by the send
    queues' dispatch ceiling, whichever is slower; the CPU it needs from the measured CPU per message."""
    sender_bound = messages / (PRODUCTION_SENDERS * PRODUCTION_SENDER_RATE)
    queue_bound = messages / (PRODUCTION_SEND_QUEUES * QUEUE_MAX_RATE)
    pool_rate = PRODUCTION_SENDERS * PRODUCTION_SENDER_RATE
    return Production(
        messages=messages,
        wall_seconds=max(sender_bound, queue_bound),
        sender_bound_seconds=sender_bound,
        queue_bound_seconds=queue_bound,
        cpu_ms=cpu_ms,
        instance_seconds=messages * cpu_ms / 1000,
        instances_at_pool_rate=math.ceil(pool_rate * cpu_ms / 1000),
    )


def _window(
    ctx: BenchContext, campaign: int, groups: dict[str, list[int]], sends: int, timeout: float
) -> Window:
    """CPU by process over the next `sends` sends (or all that are left, if fewer). The CPU samples
    bracket the two counts, and the clock is read right after each count.

    The bench's own polls are PostgreSQL CPU inside the window, and counting the waiting messages costs
    what the backlog holds: about a million index entries in the first window, ten thousand in the last.
    Polled every 0.25 s on a fresh connection, as before, that put the bench's counts (and a backend's fork
    each time) into the first window's cost per message and hardly any into the last's. So one connection
    serves the window, and each poll sleeps for most of what is left at the rate seen so far
    (`next_poll_in`): a handful of polls a window, whatever its backlog."""
    conn = connect(ctx.database_url)
    try:
        before: CpuSample = sample(groups)
        left_before = _waiting_on(conn, campaign)
        start = time.monotonic()
        goal = max(0, left_before - sends)
        left, seen = left_before, start
        while left > goal:
            if seen - start > timeout:
                raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {left_before - goal} sends")
            time.sleep(next_poll_in(left - goal, left_before - left, seen - start, CAMPAIGN_RATE))
            left, seen = _waiting_on(conn, campaign), time.monotonic()
        after = sample(groups)
    finally:
        conn.close()
    done = left_before - left
    return Window(done, seen - start, per_unit_ms(before, after, done))


# The last polls of a window: no shorter than this apart.
MIN_POLL_SECONDS = 0.25


def next_poll_in(remaining: int, done: int, elapsed: float, nominal_rate: float) -> float:
    """Seconds to sleep before the next count: 90% of what `remaining` sends take at the rate seen so far
    (the nominal rate before any was seen), never less than MIN_POLL_SECONDS. Each poll then leaves about
    a tenth of the last one's remainder, so a window of 10,000 sends takes about six polls."""
    rate = done / elapsed if done > 0 and elapsed > 0 else nominal_rate
    return max(MIN_POLL_SECONDS, 0.9 * remaining / rate)


def _fast_forward(ctx: BenchContext, campaign: int, keep: int) -> int:
    """Pause, purge, mark all but the last `keep` waiting messages DELIVERED and park those (see the
    module docstring); returns how many were marked."""
    call(ctx, "POST", f"/v1/campaigns/{campaign}/pause")
    purge_queues(ctx)
    conn = connect(ctx.database_url)
    try:
        templates = _receipt_templates(conn.run)
        now = datetime.now(UTC)
        conn.run("BEGIN")
        forwarded = conn.run(
            _FAST_FORWARD,
            campaign=campaign,
            keep=keep,
            now=now,
            step=timedelta(seconds=1 / CAMPAIGN_RATE),
            sent_payload=templates["sent"],
            delivered_payload=templates["delivered"],
        )[0][0]
        conn.run(_PARK_THE_REST, campaign=campaign, now=now)
        conn.run("UPDATE campaigns SET plan_cursor = NULL WHERE id = :campaign", campaign=campaign)
        conn.run("COMMIT")
        # Sent for real, these would have been folded minute by minute by the scheduler's ticks; folded
        # now, not by a tick inside the last window, whose CPU per message it would inflate.
        conn.run(FOLD_SQL)
    finally:
        conn.close()
    _vacuum(ctx, "messages", "delivery_receipts", "message_tallies", "delivery_time_tallies")
    return int(forwarded)


def _fold(ctx: BenchContext) -> None:
    """What the scheduler's tick does once a minute (shared/services/message_tallies.py): fold, then vacuum
    the tallies."""
    conn = connect(ctx.database_url)
    try:
        conn.run(FOLD_SQL)
        conn.run(VACUUM_SQL)
    finally:
        conn.close()


def _vacuum(ctx: BenchContext, *tables: str) -> None:
    """Before each window: autovacuum would soon get to the rows just written, and the window should not
    pay for it at random (the PostgreSQL group's CPU counts autovacuum's workers)."""
    conn = connect(ctx.database_url)
    try:
        for table in tables:
            conn.run(f"VACUUM ANALYZE {table}")
    finally:
        conn.close()


def _receipt_templates(run_sql: Callable[..., Any]) -> dict[str, str]:
    """The raw payload of a real callback per status, to shape the fabricated ones like it."""
    found = dict(
        run_sql(
            "SELECT DISTINCT ON (message_status) message_status, CAST(raw_payload AS text) "
            "FROM delivery_receipts WHERE message_status IN ('sent', 'delivered') "
            "ORDER BY message_status, id DESC"
        )
    )
    return {status: str(found.get(status, "{}")) for status in ("sent", "delivered")}


# Every QUEUED message of the campaign but the last :keep by phone, as if sent at the campaign's rate up
# to now and delivered 3 s later, with the two callbacks such a message leaves; returns how many.
_FAST_FORWARD = """
WITH ranked AS (
    SELECT id, row_number() OVER (ORDER BY recipient_phone DESC) AS k
    FROM messages WHERE campaign_id = :campaign AND status = 'QUEUED'
), forwarded AS (
    UPDATE messages m
    SET status = 'DELIVERED', status_reason = NULL, provider_sid = 'FF' || md5(CAST(m.id AS text)),
        attempts = 1, sent_at = CAST(:now AS timestamptz) - (r.k - :keep) * CAST(:step AS interval),
        delivered_at = CAST(:now AS timestamptz) - (r.k - :keep) * CAST(:step AS interval) + interval '3 seconds',
        slot_at = NULL, claimed_at = NULL, updated_at = CAST(:now AS timestamptz)
    FROM ranked r
    WHERE m.id = r.id AND r.k > :keep
    RETURNING m.id, m.provider_sid, m.recipient_phone, m.sent_at, m.delivered_at
), receipts AS (
    INSERT INTO delivery_receipts (message_sid, message_status, message_id, raw_payload, received_at)
    SELECT f.provider_sid, s.status, f.id,
           s.payload || jsonb_build_object('MessageSid', f.provider_sid, 'SmsSid', f.provider_sid,
                                           'MessageStatus', s.status, 'SmsStatus', s.status,
                                           'To', 'whatsapp:' || f.recipient_phone),
           CASE s.status WHEN 'sent' THEN f.sent_at + interval '1 second' ELSE f.delivered_at END
    FROM forwarded f CROSS JOIN (VALUES ('sent', CAST(:sent_payload AS jsonb)),
                                        ('delivered', CAST(:delivered_payload AS jsonb))) AS s(status, payload)
    ORDER BY f.id, s.status DESC
)
SELECT count(*) FROM forwarded"""
# The ones left: parked, as a paused campaign's waiting messages are, for the resume to re-plan.
_PARK_THE_REST = """
UPDATE messages SET scheduled_at = NULL, slot_at = NULL, updated_at = CAST(:now AS timestamptz)
WHERE campaign_id = :campaign AND status = 'QUEUED'"""


def _scalar(ctx: BenchContext, sql: str, **params: Any) -> int:
    conn = connect(ctx.database_url)
    try:
        return int(conn.run(sql, **params)[0][0])
    finally:
        conn.close()


_WAITING_SQL = "SELECT count(*) FROM messages WHERE campaign_id = :c AND status = ANY(CAST(:s AS text[]))"


def _waiting(ctx: BenchContext, campaign: int) -> int:
    """Messages not yet answered by Twilio (QUEUED, SENDING, AMBIGUOUS)."""
    return _scalar(ctx, _WAITING_SQL, c=campaign, s=list(IN_FLIGHT))


def _waiting_on(conn: Connection, campaign: int) -> int:
    return int(conn.run(_WAITING_SQL, c=campaign, s=list(IN_FLIGHT))[0][0])


def _parked(ctx: BenchContext, campaign: int) -> int:
    return _scalar(
        ctx,
        "SELECT count(*) FROM messages WHERE campaign_id = :c AND status = 'QUEUED' AND scheduled_at IS NULL",
        c=campaign,
    )


def _message_rows(ctx: BenchContext, campaign: int) -> int:
    return _scalar(ctx, "SELECT count(*) FROM messages WHERE campaign_id = :c", c=campaign)


def _sizes_mb(ctx: BenchContext) -> dict[str, float]:
    conn = connect(ctx.database_url)
    try:
        row = conn.run(
            "SELECT pg_total_relation_size('messages'), pg_total_relation_size('delivery_receipts'), "
            "pg_total_relation_size('audit_events'), pg_database_size(current_database())"
        )[0]
    finally:
        conn.close()
    names = ("messages", "delivery_receipts", "audit_events", "the whole database")
    return {name: int(size) / 2**20 for name, size in zip(names, row, strict=True)}


def _summary_ms(ctx: BenchContext, campaign: int, runs: int) -> float:
    path = f"/v1/campaigns/{campaign}/summary"
    call(ctx, "GET", path)  # warm-up
    return median([1000 * timed(lambda: call(ctx, "GET", path)) for _ in range(runs)])


def _pages_ms(ctx: BenchContext, campaign: int, runs: int) -> dict[str, float]:
    browser = signed_in(ctx)
    pages = [f"/ui/campaigns/{campaign}", "/ui/"]
    for page in pages:
        page_times(browser, ctx, page)  # warm-up
    return {page: median([page_times(browser, ctx, page)[0] for _ in range(runs)]) for page in pages}
