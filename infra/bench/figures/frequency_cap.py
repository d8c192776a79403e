"""Frequency cap under contention: a cap of one message per user per 24 hours, and three campaigns over the
same users, each with frequency_cap_policy "skip", triggered together (one thread each, released at once).

When all three have completed, the Twilio emulator's accepted messages are counted per recipient: every
user must have exactly one (none with zero, none with more than one), whichever campaign won them. The
value is the time from the triggers to the last campaign's completion; the split of sends and skips
across the campaigns is in the details. The caps are removed afterwards (the runner's reset between
figures empties the table too).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from infra.bench.campaigns import (
    accepted_messages,
    call,
    create_campaign,
    message_counts,
    trigger,
    wait_until,
)
from infra.bench.context import BenchContext
from infra.bench.datasets import seed_users
from infra.bench.db import connect
from infra.bench.measurement import Measurement

FIGURE = "frequency cap under contention"
UNIT = "s (triggers to all complete)"
TARGET = "cap 1 per 24 h, 3 campaigns over 5,000 users at once: every user exactly one message (0 with none, 0 with more)"
# The server `--profile` samples while the figure runs.
PROFILED: str | None = "send_message"
CAPS = [{"max_messages": 1, "window_hours": 24}]
CAMPAIGNS = 3
CAMPAIGN_RATE = 500
CAP_REASON = "frequency_cap"


@dataclass(frozen=True)
class Size:
    users: int
    timeout: float


FULL = Size(users=5_000, timeout=900)
SMOKE = Size(users=50, timeout=120)


def run(ctx: BenchContext, size: Size) -> Measurement:
    seed_users(ctx.database_url, 0, size.users)
    call(ctx, "PUT", "/v1/frequency-caps", {"caps": CAPS})
    try:
        campaigns = [
            create_campaign(ctx, f"capped #{n}", CAMPAIGN_RATE, frequency_cap_policy="skip")
            for n in range(CAMPAIGNS)
        ]
        started, spread = _trigger_together(ctx, campaigns)
        done = wait_until(
            lambda: _all_completed(ctx, campaigns), size.timeout, "every capped campaign completed", 1.0
        )
        seconds = done - started
        per_user = Counter(m["to"] for m in accepted_messages(ctx))
        split = {f"campaign #{n}": _split(message_counts(ctx, c)) for n, c in enumerate(campaigns)}
        reasons = _skip_reasons(ctx, campaigns)
    finally:
        call(ctx, "PUT", "/v1/frequency-caps", {"caps": []})
    none = size.users - len(per_user)
    several = sum(1 for n in per_user.values() if n > 1)
    return Measurement(
        figure=FIGURE,
        unit=UNIT,
        target=TARGET if size.users == FULL.users else f"{TARGET} (smoke: {size.users} users)",
        value=seconds,
        met=none == 0 and several == 0 and set(reasons) <= {CAP_REASON},
        runs=1,
        details={
            "users": size.users,
            "caps": CAPS,
            "users with no message": none,
            "users with more than one message": several,
            "messages accepted by Twilio": sum(per_user.values()),
            "sends and skips by campaign": split,
            "skip reasons (all campaigns)": reasons,
            "triggers: first to last answered (s)": round(spread, 3),
        },
        notes=(
            f"{CAMPAIGNS} campaigns to every user, frequency_cap_policy skip, campaign rate {CAMPAIGN_RATE}/s, "
            "triggered from one thread each released together; value: from the triggers until every "
            "campaign was COMPLETED",
            "messages counted per recipient at the Twilio emulator",
            "no same-run baseline: the replaced system had no frequency cap",
        ),
    )


def _trigger_together(ctx: BenchContext, campaigns: list[int]) -> tuple[float, float]:
    """Trigger every campaign at once; (the monotonic time they were released, seconds from the first
    trigger answered to the last)."""
    gate = threading.Barrier(len(campaigns) + 1)
    answered: list[float] = []
    errors: list[BaseException] = []

    def fire(campaign: int) -> None:
        gate.wait()
        try:
            trigger(ctx, campaign)
        except BaseException as error:  # re-raised in the caller's thread below
            errors.append(error)
        answered.append(time.monotonic())

    threads = [threading.Thread(target=fire, args=(c,)) for c in campaigns]
    for thread in threads:
        thread.start()
    gate.wait()
    released = time.monotonic()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return released, max(answered) - min(answered)


def _all_completed(ctx: BenchContext, campaigns: list[int]) -> bool:
    conn = connect(ctx.database_url)
    try:
        rows = conn.run("SELECT status FROM campaigns WHERE id = ANY(CAST(:ids AS bigint[]))", ids=campaigns)
    finally:
        conn.close()
    return len(rows) == len(campaigns) and all(status == "COMPLETED" for (status,) in rows)


def _split(counts: dict[str, int]) -> dict[str, int]:
    skipped = counts.get("SKIPPED", 0)
    return {"sent": sum(counts.values()) - skipped, "skipped": skipped}


def _skip_reasons(ctx: BenchContext, campaigns: list[int]) -> dict[str, Any]:
    conn = connect(ctx.database_url)
    try:
        rows = conn.run(
            "SELECT coalesce(status_reason, ''), count(*) FROM messages "
            "WHERE campaign_id = ANY(CAST(:ids AS bigint[])) AND status = 'SKIPPED' GROUP BY 1",
            ids=campaigns,
        )
    finally:
        conn.close()
    return {str(reason): int(count) for reason, count in rows}
