"""Pool rate fidelity: one campaign over a pool of senders, each with its own ceiling, read at the Twilio
emulator from its acceptance timestamps and each message's `from` (the sender that sent it).

- per sender: the most messages it had accepted in any 1-second window (sliding), against its ceiling;
- total mean: (accepted - 1) / (last - first acceptance) over the whole pool, against the sum of ceilings;
- drops: recipients Twilio never accepted a message for; duplicates: accepted messages beyond one per
  recipient; recipients reached from more than one sender (a recipient keeps one sender); messages from an
  address outside the pool.

The campaign's own rate is the pool's sum, so the senders' ceilings are what holds each of them back.
Senders are rows in the database: the runner's reset between figures empties them with every other table.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta
from itertools import pairwise
from typing import Any

from infra.bench.campaigns import (
    acceptance_times,
    accepted_messages,
    create_campaign,
    create_resource,
    message_counts,
    rate_waits,
    trigger,
    wait_until_all_sent,
)
from infra.bench.context import BenchContext
from infra.bench.cpu import CORES, machine_ceiling, per_unit_ms, sample, stack_groups
from infra.bench.datasets import seed_users
from infra.bench.measurement import Measurement
from infra.bench.rates import max_in_window, mean_rate
from shared.config import Settings
from shared.domain.send_schedule import spacing

FIGURE = "pool rate fidelity"
UNIT = "msg/s (mean)"
TARGET = (
    "4 senders at 20/s each: no sender over 20 in any 1 s window, total mean (while every sender has "
    "recipients left) ≥ 0.97 x 80, zero drops, zero duplicates, every recipient from one sender"
)
# The server `--profile` samples while the figure runs.
PROFILED: str | None = "send_message"
MIN_MEAN_RATIO = 0.97
POOL = "bench"
DEFAULT_MARGIN = Settings.model_fields["rate_safety_margin"].default


@dataclass(frozen=True)
class Size:
    senders: int
    ceiling: int  # each sender's rate_limit_per_second
    seconds: int  # the campaign's length at the pool's full rate
    timeout: float


FULL = Size(senders=4, ceiling=20, seconds=60, timeout=600)
SMOKE = Size(senders=2, ceiling=5, seconds=3, timeout=120)


@dataclass(frozen=True)
class PoolFidelity:
    max_window_by_sender: dict[str, int]
    sent_by_sender: dict[str, int]
    mean: float
    # The pool's mean while every sender still had recipients left: from the first acceptance to the
    # earliest of the senders' last ones. The rate control is judged there; after it, the busiest sender
    # sends on alone at its own ceiling (the stable hash gives senders unequal shares, about ±sqrt(n/4)).
    saturated_mean: float
    # Each sender's own (count - 1) / (its first to its last): what the pool sends while every sender is
    # busy; the total mean is lower when the sticky choice gives one sender more recipients than another.
    sender_means: dict[str, float]
    drops: int
    duplicates: int
    multi_sender_recipients: int
    foreign_messages: int  # from an address outside the pool
    # Per sender: the slots its spacing offered between its first and last acceptance that no message
    # took (a gap of k spacings leaves k - 1 unused): where the mean below the ceiling went.
    unused_slots: dict[str, int]


def sender_address(index: int) -> str:
    return f"whatsapp:+1415555{index + 101:04d}"


def run(ctx: BenchContext, size: Size) -> Measurement:
    rate = size.senders * size.ceiling
    recipients = rate * size.seconds
    addresses = [sender_address(i) for i in range(size.senders)]
    for address in addresses:
        create_resource(
            ctx,
            "/v1/senders",
            {"address": address, "pool": POOL, "rate_limit_per_second": size.ceiling},
        )
    seed_users(ctx.database_url, 0, recipients)
    campaign = create_campaign(ctx, "pool rate", rate, sender_pool=POOL)
    groups = stack_groups(ctx)
    before = sample(groups)
    trigger(ctx, campaign)
    wait_until_all_sent(ctx, campaign, recipients, size.timeout)
    cpu_ms = per_unit_ms(before, sample(groups), recipients)
    margin = float(ctx.env.get("RATE_SAFETY_MARGIN", DEFAULT_MARGIN))
    result = pool_fidelity(accepted_messages(ctx), recipients, addresses, spacing(size.ceiling, margin))
    met = (
        all(n <= size.ceiling for n in result.max_window_by_sender.values())
        and result.saturated_mean >= MIN_MEAN_RATIO * rate
        and result.drops == result.duplicates == result.multi_sender_recipients == 0
        and result.foreign_messages == 0
    )
    full = (size.senders, size.ceiling) == (FULL.senders, FULL.ceiling)
    return Measurement(
        figure=FIGURE,
        unit=UNIT,
        target=TARGET if full else f"{TARGET} (smoke: {size.senders} senders at {size.ceiling}/s)",
        value=result.saturated_mean,
        met=met,
        runs=1,
        details=_details(size, recipients, result, message_counts(ctx, campaign))
        | {"waiting for rate slots": rate_waits(ctx, campaign)}
        | _cpu_details(cpu_ms),
        notes=(
            f"one campaign at {rate}/s (the pool's sum) over a pool of {size.senders} senders, "
            f"{size.ceiling}/s each, {recipients:,} recipients (~{size.seconds} s of sending)",
            "read at the Twilio emulator: each accepted message's timestamp and `from`",
            "value: the pool's mean while every sender had recipients left (first acceptance to the earliest "
            "of the senders' last); the stable hash spreads recipients unevenly (messages by sender), so "
            "after that the busiest sender sends on alone: the mean over the whole campaign, tail included, "
            "and the sum of the senders' own means are listed beside it",
            "the machine's ceiling: its cores' seconds over the whole machine's CPU per message, trigger to "
            "the last status callback; each message gets three callbacks (sent, delivered, read), as WhatsApp "
            "messages do, and on this machine they share the cores with the senders",
            "no same-run baseline: the replaced system had a single sender",
        ),
    )


def _details(
    size: Size, recipients: int, result: PoolFidelity, final_counts: dict[str, int]
) -> dict[str, Any]:
    return {
        "recipients": recipients,
        "senders (ceiling msg/s each)": f"{size.senders} ({size.ceiling})",
        "max in any 1 s window, by sender": result.max_window_by_sender,
        "messages sent, by sender": result.sent_by_sender,
        "total mean while every sender had recipients left (msg/s)": result.saturated_mean,
        "total mean, first to last acceptance, tail included (msg/s)": result.mean,
        "mean by sender (msg/s)": {sender: round(mean, 2) for sender, mean in result.sender_means.items()},
        "sum of the senders' own means (msg/s)": sum(result.sender_means.values()),
        "target mean (msg/s)": MIN_MEAN_RATIO * size.senders * size.ceiling,
        "drops": result.drops,
        "duplicates": result.duplicates,
        "recipients reached from more than one sender": result.multi_sender_recipients,
        "messages from an address outside the pool": result.foreign_messages,
        "slots unused between a sender's first and last acceptance, by sender": result.unused_slots,
        "final message states": final_counts,
    }


def _cpu_details(cpu_ms: dict[str, float]) -> dict[str, Any]:
    """What the whole stack spent per message (trigger to the last callback), and the rate this machine's
    cores could carry at that cost: the pool's mean cannot exceed it."""
    return {
        "CPU per message by process, trigger to the last callback (ms)": cpu_ms,
        f"the machine's ceiling at that cost, {CORES} cores 100% busy (msg/s)": machine_ceiling(cpu_ms),
    }


def pool_fidelity(
    messages: list[dict[str, Any]], recipients: int, pool: list[str], step: timedelta
) -> PoolFidelity:
    """The figure's numbers from the emulator's accepted messages (each with `to`, `from`, `created_at`)."""
    by_sender: dict[str, list[dict[str, Any]]] = defaultdict(list)
    senders_of: dict[str, set[str]] = defaultdict(set)
    for message in messages:
        by_sender[message["from"]].append(message)
        senders_of[message["to"]].add(message["from"])
    distinct = len(senders_of)
    return PoolFidelity(
        max_window_by_sender={
            sender: max_in_window(acceptance_times(sent), 1.0) for sender, sent in sorted(by_sender.items())
        },
        sent_by_sender={sender: len(sent) for sender, sent in sorted(by_sender.items())},
        mean=mean_rate(acceptance_times(messages)),
        saturated_mean=_saturated_mean(
            {sender: acceptance_times(sent) for sender, sent in by_sender.items()}
        ),
        sender_means={
            sender: mean_rate(acceptance_times(sent)) for sender, sent in sorted(by_sender.items())
        },
        drops=recipients - distinct,
        duplicates=len(messages) - distinct,
        multi_sender_recipients=sum(1 for senders in senders_of.values() if len(senders) > 1),
        foreign_messages=sum(len(sent) for sender, sent in by_sender.items() if sender not in pool),
        unused_slots={
            sender: unused_slots(acceptance_times(sent), step.total_seconds())
            for sender, sent in sorted(by_sender.items())
        },
    )


def unused_slots(times: list[float], step: float) -> int:
    """Slots of `step` seconds between consecutive acceptances that no message took."""
    return sum(max(0, round((b - a) / step) - 1) for a, b in pairwise(times))


def _saturated_mean(times_by_sender: dict[str, list[float]]) -> float:
    """The pool's mean from its first acceptance to the earliest of its senders' last acceptances."""
    if not times_by_sender:
        return 0.0
    end = min(times[-1] for times in times_by_sender.values() if times)
    pooled = sorted(t for times in times_by_sender.values() for t in times if t <= end)
    return mean_rate(pooled)
