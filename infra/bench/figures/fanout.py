"""Fan-out: trigger a campaign and time until every message row and every send task exists.

The clock starts before `POST /v1/campaigns/{id}/trigger` (which freezes the audience and publishes its
pages) and stops when the send queue holds one task per recipient (the emulator snapshots the queue as it
answers a listing, and the rows are checked first). The send queue is paused meanwhile, so the figure is
the fan-out alone and not the sends competing with it (the send figure measures those).

Memory is the peak resident set of the `fanout_recipients` worker, at a small and a large audience: flat
means the large one's peak is not much above the small one's, however many recipients there are.

There is no same-run baseline of the replaced system; for scale, the table compares with one task created
at a time through the same client and emulator (the replaced system's way: sequential, one task).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from google.cloud import tasks_v2

from infra.bench.campaigns import (
    create_campaign,
    message_counts,
    pages_left,
    purge_queues,
    queued_tasks,
    set_queue_paused,
    tasks_client,
    trigger,
    wait_until,
)
from infra.bench.context import BenchContext
from infra.bench.datasets import seed_users
from infra.bench.measurement import Measurement, median
from infra.bench.procfs import peak_rss_mb, reset_peak_rss

FIGURE = "fan-out"
UNIT = "recipients/s"
TARGET = "≥ 5,000 recipients/s; memory flat in the number of recipients"
# The server `--profile` samples while the figure runs.
PROFILED: str | None = "fanout_recipients"
MIN_PER_SECOND = 5_000
# "Flat": the large audience may cost at most this much more peak memory than the small one.
MAX_MEMORY_GROWTH_MB = 30
CAMPAIGN_RATE = 500
SEQUENTIAL_QUEUE = "bench-sequential"


@dataclass(frozen=True)
class Size:
    small: int
    large: int
    runs: int  # at the large size
    sequential_tasks: int
    timeout: float


FULL = Size(small=20_000, large=100_000, runs=3, sequential_tasks=2_000, timeout=600)
SMOKE = Size(small=100, large=500, runs=1, sequential_tasks=20, timeout=120)


def run(ctx: BenchContext, size: Size) -> Measurement:
    set_queue_paused(ctx, True)
    try:
        # A campaign reaches every opted-in user: the small run happens before the rest of them exist.
        seed_users(ctx.database_url, 0, size.small)
        small_rate, small_peak = _fan_out(ctx, f"fan-out {size.small}", size.small, size.timeout)
        seed_users(ctx.database_url, size.small, size.large - size.small)
        large = [
            _fan_out(ctx, f"fan-out {size.large} #{r}", size.large, size.timeout) for r in range(size.runs)
        ]
    finally:
        set_queue_paused(ctx, False)
    sequential = _sequential_tasks_per_second(ctx, size.sequential_tasks)
    value = median([rate for rate, _ in large])
    large_peak = max(peak for _, peak in large)
    flat = large_peak - small_peak <= MAX_MEMORY_GROWTH_MB
    return Measurement(
        figure=FIGURE,
        unit=UNIT,
        target=TARGET,
        value=value,
        baseline=sequential,
        baseline_label="one task at a time, same client and emulator",
        met=value >= MIN_PER_SECOND and flat,
        runs=size.runs,
        details={
            "recipients": size.large,
            f"rate at {size.small:,} recipients": small_rate,
            f"peak RSS of the fanout worker at {size.small:,} recipients (MB)": small_peak,
            f"peak RSS of the fanout worker at {size.large:,} recipients (MB)": large_peak,
            "memory flat": flat,
        },
        notes=(
            "no same-run baseline of the replaced system exists (it fanned out sequentially, one task): the "
            "baseline column is that approach measured here, for scale, not a target",
            "send queue paused during the fan-out; campaign rate 500/s (the planned send times do not change the work)",
        ),
    )


def _fan_out(ctx: BenchContext, name: str, recipients: int, timeout: float) -> tuple[float, float]:
    """(recipients per second, peak RSS MB of the fanout worker) for one campaign to `recipients` users."""
    purge_queues(ctx)
    campaign = create_campaign(ctx, name, CAMPAIGN_RATE)
    pids = ctx.server_pids("fanout_recipients")
    reset_peak_rss(pids)
    start = time.monotonic()
    trigger(ctx, campaign)
    wait_until(lambda: pages_left(ctx, campaign) == 0, timeout, f"{name}: every page fanned out")
    wait_until(
        lambda: sum(message_counts(ctx, campaign).values()) == recipients, timeout, f"{name}: message rows"
    )
    done = wait_until(lambda: queued_tasks(ctx) >= recipients, timeout, f"{name}: one task per message")
    return recipients / (done - start), peak_rss_mb(pids)


def _sequential_tasks_per_second(ctx: BenchContext, count: int) -> float:
    """Tasks created one after another, each waiting for the last, on a paused queue of their own."""
    env = ctx.env
    with tasks_client(ctx) as client:
        parent = client.common_location_path(env["GCP_PROJECT"], env["GCP_REGION"])
        queue = client.create_queue(
            parent=parent, queue=tasks_v2.Queue(name=f"{parent}/queues/{SEQUENTIAL_QUEUE}-{time.time_ns()}")
        )
        client.pause_queue(name=queue.name)
        task = tasks_v2.Task(http_request=tasks_v2.HttpRequest(url=env["SEND_MESSAGE_URL"], body=b"{}"))
        start = time.monotonic()
        for _ in range(count):
            client.create_task(parent=queue.name, task=task)
        elapsed = time.monotonic() - start
        client.delete_queue(name=queue.name)
    return count / elapsed
