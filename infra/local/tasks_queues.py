"""The Cloud Tasks queues the local stack creates in the emulator, through the real client.

The send queues (TASKS_QUEUE_COUNT of them, named by shared.adapters.tasks.send_queue_names:
`send-messages`, `send-messages-1`, ...) are configured as infra/terraform/tasks.tf configures
production's: each dispatches at the WhatsApp sender's rate (SENDER_RATE_LIMIT_PER_SECOND, the same
setting the application's slot calendar enforces exactly beneath it) up to Cloud Tasks' 500/s per queue,
the 40 sends in flight are shared out among them, and a retry policy only covers a crashed or
unreachable send_message (the application retries Twilio failures itself with new tasks).

`local-scheduler` exists only here: Cloud Scheduler has no emulator, so the local scheduler hands each
tick to the Cloud Tasks emulator, which signs it with the OIDC issuer that functions trust locally, as
Cloud Scheduler's token is signed in production. One attempt: the Scheduler job has no retries either.
"""

from __future__ import annotations

from datetime import timedelta

from google.cloud import tasks_v2

from infra.local.emulator_clients import cloud_tasks
from shared.adapters.tasks import send_queue_names

SCHEDULER_QUEUE = "local-scheduler"
# Cloud Tasks' ceiling on one queue's max_dispatches_per_second; infra/terraform/send_queues.tf cites it.
MAX_DISPATCHES_PER_QUEUE = 500
# Sends in flight across all the send queues (terraform's tasks_max_concurrent_dispatches default).
MAX_CONCURRENT_SENDS = 40


def send_queue_rate(rate_per_second: int) -> int:
    """One send queue's dispatch rate: the sender's rate, at most what one queue can do."""
    return min(MAX_DISPATCHES_PER_QUEUE, rate_per_second)


def send_queue_concurrency(total: int, count: int) -> int:
    """One send queue's share of the sends in flight: messages are spread evenly over the queues, and
    together they must not hold more database connections than one queue did (infra/terraform/tasks.tf)."""
    return max(1, total // count)


def send_queue_config(
    name: str, rate_per_second: int, concurrent: int = MAX_CONCURRENT_SENDS
) -> tasks_v2.Queue:
    return tasks_v2.Queue(
        name=name,
        rate_limits=tasks_v2.RateLimits(
            max_dispatches_per_second=send_queue_rate(rate_per_second),
            max_concurrent_dispatches=concurrent,
        ),
        # As infra/terraform/tasks.tf: retries for about a day, 10 s doubling to 5 min.
        retry_config=tasks_v2.RetryConfig(
            max_attempts=300,
            min_backoff=timedelta(seconds=10),
            max_backoff=timedelta(minutes=5),
            max_doublings=5,
            max_retry_duration=timedelta(days=1),
        ),
    )


def scheduler_queue_config(name: str) -> tasks_v2.Queue:
    return tasks_v2.Queue(
        name=name,
        rate_limits=tasks_v2.RateLimits(max_dispatches_per_second=1, max_concurrent_dispatches=1),
        retry_config=tasks_v2.RetryConfig(max_attempts=1),
    )


def create_queues(
    address: str, project: str, region: str, send_queue: str, rate_per_second: int, queue_count: int = 1
) -> None:
    client = cloud_tasks(address)
    parent = client.common_location_path(project, region)
    concurrent = send_queue_concurrency(MAX_CONCURRENT_SENDS, queue_count)
    for name in send_queue_names(send_queue, queue_count):
        client.create_queue(
            parent=parent,
            queue=send_queue_config(client.queue_path(project, region, name), rate_per_second, concurrent),
        )
    client.create_queue(
        parent=parent, queue=scheduler_queue_config(client.queue_path(project, region, SCHEDULER_QUEUE))
    )
    client.transport.close()  # type: ignore[no-untyped-call]
