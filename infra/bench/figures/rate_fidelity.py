"""Rate fidelity: a campaign at 80/s for 60 s, then the same with 20% transient Twilio faults and a fifth
of the recipients deferred by quiet hours, read at the Twilio emulator from its acceptance timestamps.

- ceiling: the most messages accepted in any 1-second window (sliding, not aligned to whole seconds);
- mean: (accepted - 1) / (last - first acceptance) — judged on the clean run only, since a faulted run
  spends slots on rejected attempts and waits for its deferrals by design;
- drops: recipients Twilio never accepted a message for; duplicates: accepted messages beyond one per recipient.

The faults (HTTP 429, Twilio 20429, seeded) are on for the first run-length of the second campaign, then
cleared, so every message gets through within its retries (the stack retries after 10, 20 and 40 s instead
of 1, 5 and 15 minutes, so the last retry always falls after the burst; see infra/bench/stack.py). The
deferred recipients live at UTC+3, where the campaign's quiet hours end about half a minute after the
trigger, so they pile onto seconds that first sends already fill: the case the slot calendar exists for.
Rejected attempts are not listed by the Twilio emulator, so the ceiling is over accepted messages.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from infra.bench.campaigns import (
    acceptance_times,
    accepted_messages,
    create_campaign,
    message_counts,
    set_twilio_faults,
    trigger,
    wait_until_all_sent,
)
from infra.bench.context import BenchContext
from infra.bench.cpu import CORES, machine_ceiling, per_unit_ms, sample, stack_groups
from infra.bench.datasets import seed_users
from infra.bench.measurement import Measurement
from infra.bench.rates import max_in_window, mean_rate
from infra.local.stack_reset import reset_stack

FIGURE = "rate fidelity"
UNIT = "msg/s (mean)"
TARGET = "no 1 s window over 80 in any run, mean ≥ 0.975 x 80, zero drops, zero duplicates"
# The server `--profile` samples while the figure runs.
PROFILED: str | None = "send_message"
RATE = 80
MIN_MEAN_RATIO = 0.975
DEFERRED_ZONE, DEFERRED_OFFSET = "Etc/GMT-3", timedelta(hours=3)  # POSIX sign: Etc/GMT-3 is UTC+3
QUIET_HOURS_LEFT = timedelta(seconds=30)
FAULTS = {"rate": 0.2, "http_status": 429, "error_code": 20429, "seed": 7}


@dataclass(frozen=True)
class Size:
    rate: int
    seconds: int
    deferred_share: float
    timeout: float
    clean_runs: int  # the value is their median; the faulted campaign runs once (it waits on deferrals)


FULL = Size(rate=RATE, seconds=60, deferred_share=0.2, timeout=600, clean_runs=3)
# Quiet hours end on a minute boundary, so a deferral waits 30 to 90 s: too long for `make test`.
SMOKE = Size(rate=20, seconds=2, deferred_share=0.0, timeout=180, clean_runs=1)


@dataclass(frozen=True)
class Fidelity:
    recipients: int
    max_window: int
    mean: float
    drops: int
    duplicates: int
    final_counts: dict[str, int]
    # What this machine's cores could carry at the run's whole-machine CPU per message (cpu.machine_ceiling).
    machine_ceiling: float | None

    def as_details(self, label: str) -> dict[str, Any]:
        return {
            f"{label}: max in any 1 s window": self.max_window,
            f"{label}: mean (msg/s)": self.mean,
            f"{label}: drops": self.drops,
            f"{label}: duplicates": self.duplicates,
            f"{label}: final message states": self.final_counts,
        }


def run(ctx: BenchContext, size: Size) -> Measurement:
    recipients = size.rate * size.seconds
    cleans = []
    # The runner resets the stack before a figure; each clean campaign resets it for the next campaign.
    for attempt in range(size.clean_runs):
        seed_users(ctx.database_url, 0, recipients)
        campaign = create_campaign(ctx, f"fidelity clean #{attempt}", size.rate)
        cleans.append(_measure(ctx, campaign, recipients, size, faults=False))
        reset_stack(ctx.env)
    # The run of median mean stands for all of them, except for the ceiling: every run must hold it.
    clean = sorted(cleans, key=lambda r: r.mean)[len(cleans) // 2]
    deferred = int(recipients * size.deferred_share)
    seed_users(ctx.database_url, 0, recipients - deferred)
    seed_users(ctx.database_url, recipients - deferred, deferred, timezone=DEFERRED_ZONE)
    stressed_campaign = create_campaign(
        ctx, "fidelity faults, quiet hours", size.rate, **_quiet_hours_ending_soon()
    )
    stressed = _measure(ctx, stressed_campaign, recipients, size, faults=True)
    runs = (*cleans, stressed)
    met = (
        all(r.max_window <= size.rate and r.drops == 0 and r.duplicates == 0 for r in runs)
        and clean.mean >= MIN_MEAN_RATIO * size.rate
    )
    return Measurement(
        figure=FIGURE,
        unit=UNIT,
        target=TARGET if size.rate == RATE else f"{TARGET} (smoke: at {size.rate}/s)",
        value=clean.mean,
        met=met,
        runs=size.clean_runs,
        details={
            "recipients per campaign": recipients,
            "campaign rate (msg/s)": size.rate,
            "clean runs: mean (msg/s)": [round(r.mean, 2) for r in cleans],
            "clean runs: max in any 1 s window": [r.max_window for r in cleans],
            f"clean runs: the machine's ceiling at their CPU per message, {CORES} cores 100% busy (msg/s)": [
                r.machine_ceiling for r in cleans
            ],
            **clean.as_details("clean (median run)"),
            **stressed.as_details("faults + quiet hours"),
        },
        notes=(
            f"{size.clean_runs} clean campaigns and one with faults and quiet hours, each sending for "
            f"{size.seconds} s; value = the median of the clean runs' means",
            f"faults: {FAULTS} for the first {size.seconds} s of the second campaign, then cleared; "
            f"{deferred} recipients at UTC+3 deferred by quiet hours ending ~{QUIET_HOURS_LEFT.seconds} s after the trigger",
            "no same-run baseline: the replaced system (at 100/s it skipped 676 of 2,000 recipients and re-sent to 1,920) cannot run here",
        ),
    )


def _quiet_hours_ending_soon() -> dict[str, Any]:
    """A quiet window that covers now at UTC+3 and ends on the minute at least QUIET_HOURS_LEFT away;
    it lies hours away from now in UTC, so UTC recipients are not deferred."""
    local = datetime.now(UTC) + DEFERRED_OFFSET
    end = (local + QUIET_HOURS_LEFT + timedelta(minutes=1)).replace(second=0, microsecond=0)
    start = local - timedelta(hours=1)
    return {"quiet_hours_start": start.strftime("%H:%M"), "quiet_hours_end": end.strftime("%H:%M")}


def _measure(ctx: BenchContext, campaign: int, recipients: int, size: Size, faults: bool) -> Fidelity:
    if faults:
        set_twilio_faults(ctx, FAULTS)
    groups = stack_groups(ctx)
    before = sample(groups)
    trigger(ctx, campaign)
    if faults:
        time.sleep(size.seconds)
        set_twilio_faults(ctx, {"rate": 0})
    wait_until_all_sent(ctx, campaign, recipients, size.timeout)
    cpu_ms = per_unit_ms(before, sample(groups), recipients)
    messages = accepted_messages(ctx)
    times = acceptance_times(messages)
    if not times:
        raise RuntimeError(f"campaign {campaign}: Twilio accepted no message at all")
    distinct = len({m["to"] for m in messages})
    return Fidelity(
        recipients=recipients,
        max_window=max_in_window(times, 1.0),
        mean=mean_rate(times),
        drops=recipients - distinct,
        duplicates=len(messages) - distinct,
        final_counts=message_counts(ctx, campaign),
        machine_ceiling=machine_ceiling(cpu_ms),
    )
