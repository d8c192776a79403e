"""The Cloud Tasks queues the local stack creates in the emulator, through the real client.

`send-messages` is configured as infra/terraform/tasks.tf configures production's: dispatch capped at
the WhatsApp sender's rate (SENDER_RATE_LIMIT_PER_SECOND, the same setting the application's slot
calendar uses beneath it), 40 sends in flight, and a retry policy that only covers a crashed or
unreachable send_message (the application retries Twilio failures itself with new tasks).

`local-scheduler` exists only here: Cloud Scheduler has no emulator, so the local scheduler hands each
tick to the Cloud Tasks emulator, which signs it with the OIDC issuer that functions trust locally, as
Cloud Scheduler's token is signed in production. One attempt: the Scheduler job has no retries either.
"""

from __future__ import annotations

from datetime import timedelta

from google.cloud import tasks_v2

from infra.local.emulator_clients import cloud_tasks

SCHEDULER_QUEUE = "local-scheduler"


def send_queue_config(name: str, rate_per_second: int) -> tasks_v2.Queue:
    return tasks_v2.Queue(
        name=name,
        rate_limits=tasks_v2.RateLimits(
            max_dispatches_per_second=rate_per_second, max_concurrent_dispatches=40
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


def create_queues(address: str, project: str, region: str, send_queue: str, rate_per_second: int) -> None:
    client = cloud_tasks(address)
    parent = client.common_location_path(project, region)
    client.create_queue(
        parent=parent,
        queue=send_queue_config(client.queue_path(project, region, send_queue), rate_per_second),
    )
    client.create_queue(
        parent=parent, queue=scheduler_queue_config(client.queue_path(project, region, SCHEDULER_QUEUE))
    )
    client.transport.close()  # type: ignore[no-untyped-call]
