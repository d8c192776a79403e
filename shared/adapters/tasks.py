"""Cloud Tasks for send_message: one named task per (message, generation), aimed at send_message's URL
with an OIDC token. The real client talks to the local emulator when CLOUD_TASKS_EMULATOR_HOST is set.

Names are hashed (Cloud Tasks warns that sequential names slow the queue down) and include the message's
creation time, so a reused message id (a restored database) can never collide with an old task's name.
ALREADY_EXISTS is success: it is how a redelivered page or a repeated reschedule stays idempotent.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from shared.config import Settings


@dataclass(frozen=True)
class SendTask:
    message_id: int
    generation: int
    created_at: datetime
    at: datetime


class TaskScheduler(Protocol):
    def schedule(self, tasks: Sequence[SendTask]) -> None:
        """Create every task (an existing name counts as created); raise if any could not be."""


def task_id(task: SendTask) -> str:
    key = f"{task.message_id}:{task.created_at.isoformat()}:{task.generation}"
    return hashlib.sha256(key.encode()).hexdigest()[:40]


def task_body(task: SendTask) -> bytes:
    return json.dumps({"message_id": task.message_id, "generation": task.generation}).encode()


class CloudTasksScheduler:
    def __init__(
        self, client: Any, queue_path: str, target_url: str, service_account_email: str, workers: int
    ) -> None:
        self._client = client
        self._queue_path = queue_path
        self._url = target_url
        self._email = service_account_email
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="create-task")

    def schedule(self, tasks: Sequence[SendTask]) -> None:
        # list() waits for every RPC and re-raises the first failure.
        list(self._pool.map(self._create, tasks))

    def _create(self, task: SendTask) -> None:
        from google.api_core.exceptions import AlreadyExists
        from google.cloud import tasks_v2
        from google.protobuf import timestamp_pb2

        schedule_time = timestamp_pb2.Timestamp()
        schedule_time.FromDatetime(task.at)
        request = tasks_v2.Task(
            name=f"{self._queue_path}/tasks/{task_id(task)}",
            schedule_time=schedule_time,
            http_request=tasks_v2.HttpRequest(
                http_method=tasks_v2.HttpMethod.POST,
                url=self._url,
                headers={"Content-Type": "application/json"},
                body=task_body(task),
                oidc_token=tasks_v2.OidcToken(service_account_email=self._email, audience=self._url),
            ),
        )
        with contextlib.suppress(AlreadyExists):
            self._client.create_task(parent=self._queue_path, task=request, timeout=10.0)


def make_tasks_client(settings: Settings) -> Any:
    from google.cloud import tasks_v2

    if settings.cloud_tasks_emulator_host:
        import grpc
        from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcTransport

        channel = grpc.insecure_channel(settings.cloud_tasks_emulator_host)
        return tasks_v2.CloudTasksClient(transport=CloudTasksGrpcTransport(channel=channel))
    return tasks_v2.CloudTasksClient()


def make_task_scheduler(settings: Settings) -> CloudTasksScheduler:
    if not settings.send_message_url or not settings.tasks_service_account_email:
        raise RuntimeError(
            "SEND_MESSAGE_URL and TASKS_SERVICE_ACCOUNT_EMAIL must be set to create send tasks"
        )
    client = make_tasks_client(settings)
    queue_path = client.queue_path(settings.gcp_project, settings.gcp_region, settings.tasks_queue)
    return CloudTasksScheduler(
        client,
        queue_path,
        settings.send_message_url,
        settings.tasks_service_account_email,
        settings.fanout_task_workers,
    )
