"""Send: tasks dispatched by the Cloud Tasks emulator to `send_message`, which calls the Twilio emulator,
with nothing throttling below the service's own ceiling (queue 500/s, campaign 500/s, sender cap 500/s).

A campaign is fanned out with the send queue paused; the queue is then resumed, and the figure is the
rate at which Twilio accepted the messages: (accepted - 1) / (last acceptance - first acceptance), read
from the Twilio emulator's own timestamps, so polling here costs the system nothing it measures. Status
callbacks flow back to `status_webhook` meanwhile, as they would. There is no same-run baseline (the
replaced system's 123 msg/s cannot be run here), and no absolute target: two shared cores run the emulators
and PostgreSQL beside the product, so what is tracked is the CPU each process spends per message.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from infra.bench.campaigns import (
    IN_FLIGHT,
    acceptance_times,
    accepted_messages,
    configure_twilio,
    create_campaign,
    message_counts,
    pages_left,
    queued_tasks,
    set_queue_paused,
    trigger,
    wait_until,
)
from infra.bench.context import BenchContext
from infra.bench.cpu import per_unit_ms, sample, stack_groups
from infra.bench.datasets import seed_users
from infra.bench.measurement import Measurement, median
from infra.bench.rates import mean_rate
from infra.local.stack_reset import reset_stack

FIGURE = "send"
UNIT = "msg/s"
TARGET = "CPU per message by process reported (no absolute msg/s target); every message sent"
# The server `--profile` samples while the figure runs.
PROFILED: str | None = "send_message"
CORES = os.cpu_count() or 1
CAMPAIGN_RATE = 500


@dataclass(frozen=True)
class Size:
    messages: int
    runs: int
    timeout: float


FULL = Size(messages=10_000, runs=3, timeout=600)
SMOKE = Size(messages=100, runs=1, timeout=120)


def run(ctx: BenchContext, size: Size) -> Measurement:
    rates, failed = [], 0
    cpu_ms: dict[str, float] = {}
    for attempt in range(size.runs):
        reset_stack(ctx.env)
        seed_users(ctx.database_url, 0, size.messages)
        rate, counts, cpu_ms = _send_campaign(ctx, f"send #{attempt}", size)
        rates.append(rate)
        failed += sum(n for status, n in counts.items() if status in ("FAILED", "WITHHELD", "SKIPPED"))
    value = median(rates)
    return Measurement(
        figure=FIGURE,
        unit=UNIT,
        target=TARGET,
        value=value,
        met=failed == 0,
        runs=size.runs,
        details={
            "messages per run": size.messages,
            "every run (msg/s)": [round(r) for r in rates],
            "not sent": failed,
            "CPU per message by process, last run (ms)": cpu_ms,
            f"what {CORES} cores sustain at the stack's CPU per message (msg/s)": round(
                CORES * 1000 / cpu_ms["all of the stack"]
            ),
        },
        notes=(
            "no same-run baseline: the replaced system (123 msg/s at its maximum setting) cannot run here",
            "rate measured at the Twilio emulator from its acceptance timestamps, first to last",
            "one status callback per message (sent), which status_webhook handles on the same two cores",
            "CPU per message: each server's processes (user + system time) from the queue's resume until "
            "every message was sent, over the messages sent; the emulators and PostgreSQL share the cores "
            "with the product, as they would not in production",
        ),
    )


def _send_campaign(
    ctx: BenchContext, name: str, size: Size
) -> tuple[float, dict[str, int], dict[str, float]]:
    # One status callback per message (sent) instead of three: production's webhook runs on instances of
    # its own, here it shares the two cores with the senders (its capacity is the webhook figure's).
    configure_twilio(ctx, {"final_status": "sent"})
    groups = stack_groups(ctx)
    set_queue_paused(ctx, True)
    try:
        campaign = create_campaign(ctx, name, CAMPAIGN_RATE)
        trigger(ctx, campaign)
        wait_until(lambda: pages_left(ctx, campaign) == 0, size.timeout, f"{name}: fan-out")
        wait_until(lambda: queued_tasks(ctx) >= size.messages, size.timeout, f"{name}: one task per message")
    finally:
        before = sample(groups)
        set_queue_paused(ctx, False)
    wait_until(
        lambda: not any(status in IN_FLIGHT for status in message_counts(ctx, campaign)),
        size.timeout,
        f"{name}: every message sent",
        interval=1.0,
    )
    after = sample(groups)
    times = acceptance_times(accepted_messages(ctx))
    if len(times) != size.messages:
        raise RuntimeError(f"{name}: Twilio accepted {len(times)} messages for {size.messages} recipients")
    return mean_rate(times), message_counts(ctx, campaign), per_unit_ms(before, after, size.messages)
