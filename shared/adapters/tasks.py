"""Cloud Tasks for send_message: one named task per (message, generation), aimed at send_message's URL
with an OIDC token. The real client talks to the local emulator when CLOUD_TASKS_EMULATOR_HOST is set.

Names are hashed (Cloud Tasks warns that sequential names slow the queue down) and include the message's
creation time, so a reused message id (a restored database) can never collide with an old task's name.
ALREADY_EXISTS is success: it is how a redelivered page or a repeated reschedule stays idempotent.

Sends are spread over TASKS_QUEUE_COUNT queues (one queue dispatches at most 500/s), each message always
to the same one (docs/architecture.md, "Send queues").
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from shared.config import Settings

# BatchCreateTasks' limit on tasks per call.
MAX_BATCH = 100


def send_queue_names(base: str, count: int) -> list[str]:
    """The send queues' ids: `base`, then `base-1` ... `base-<count-1>`. The first keeps the plain name, so
    a one-queue deployment is the queue it always was. The one naming rule: the app, the local stack,
    terraform (infra/terraform/send_queues.tf) and the gcloud script all follow it."""
    if count < 1:
        raise ValueError(f"at least one send queue is needed, not {count}")
    return [base if index == 0 else f"{base}-{index}" for index in range(count)]


def send_queue_index(message_id: int, count: int) -> int:
    """The queue a message's tasks go to. It depends on the message alone, so every generation of a
    message lands in the same queue: a repeated create still meets its own name there (ALREADY_EXISTS is
    the dedupe) and `exists()` looks where the task was put."""
    return message_id % count


@dataclass(frozen=True)
class SendTask:
    message_id: int
    generation: int
    created_at: datetime
    at: datetime


# Cloud Tasks refuses a schedule_time more than 30 days ahead ("Maximum schedule time for a task: 30 days
# from the current date and time",
# https://cloud.google.com/tasks/docs/quotas): a send due later gets a task at this horizon, and its
# admission then defers it again (docs/architecture.md, "Frequency caps").
MAX_TASK_AHEAD = timedelta(days=29)


class TaskScheduler(Protocol):
    def schedule(self, tasks: Sequence[SendTask]) -> None:
        """Create every task (an existing name counts as created); raise if any could not be."""

    def exists(self, task: SendTask) -> bool:
        """Whether the task is still in its queue (waiting, or being retried)."""


def task_id(task: SendTask) -> str:
    key = f"{task.message_id}:{task.created_at.isoformat()}:{task.generation}"
    return hashlib.sha256(key.encode()).hexdigest()[:40]


def task_body(task: SendTask) -> bytes:
    return json.dumps({"message_id": task.message_id, "generation": task.generation}).encode()


class TaskCreationRefused(Exception):
    """Cloud Tasks refused some tasks of a batch for a reason other than an existing name."""


class CloudTasksScheduler:
    """Creates tasks BatchCreateTasks by BatchCreateTasks (up to 100 each, several batches at a time): a
    100,000-recipient fan-out is 1,000 calls instead of 100,000. A lone task (a send's reschedule) is one
    plain CreateTask, which answers with the task rather than with an operation.

    `queue_paths`: the send queues, in send_queue_names' order (one path alone is one queue). A batch call
    creates tasks in one queue only, so tasks are grouped by their queue before they are batched."""

    def __init__(
        self,
        client: Any,
        queue_paths: str | Sequence[str],
        target_url: str,
        service_account_email: str,
        workers: int,
    ) -> None:
        from google.cloud import tasks_v2

        self._client = client
        self._queue_paths = [queue_paths] if isinstance(queue_paths, str) else list(queue_paths)
        if not self._queue_paths:
            raise ValueError("at least one send queue is needed")
        # Every task shares its target: one template, copied into each task (the raw protobuf message,
        # because proto-plus construction cost more per task than the whole gRPC call).
        self._http_request = tasks_v2.HttpRequest.pb(
            tasks_v2.HttpRequest(
                http_method=tasks_v2.HttpMethod.POST,
                url=target_url,
                headers={"Content-Type": "application/json"},
                oidc_token=tasks_v2.OidcToken(
                    service_account_email=service_account_email, audience=target_url
                ),
            )
        )
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="create-task")

    def schedule(self, tasks: Sequence[SendTask]) -> None:
        if len(tasks) == 1:
            self._create(tasks[0])
            return
        batches = [
            (queue, queued[start : start + MAX_BATCH])
            for queue, queued in self._by_queue(tasks)
            for start in range(0, len(queued), MAX_BATCH)
        ]
        # list() waits for every batch and re-raises the first failure.
        list(self._pool.map(lambda batch: self._create_batch(*batch), batches))

    def close(self) -> None:
        """Stop the batch workers and close the client's channel."""
        self._pool.shutdown(wait=False)
        self._client.transport.close()

    def exists(self, task: SendTask) -> bool:
        from google.api_core.exceptions import NotFound

        try:
            self._client.get_task(name=f"{self.queue_of(task)}/tasks/{task_id(task)}", timeout=10.0)
        except NotFound:
            return False
        return True

    def queue_of(self, task: SendTask) -> str:
        """The path of the queue the task goes to (and is looked up in)."""
        return self._queue_paths[send_queue_index(task.message_id, len(self._queue_paths))]

    def _by_queue(self, tasks: Sequence[SendTask]) -> Iterable[tuple[str, Sequence[SendTask]]]:
        if len(self._queue_paths) == 1:
            return [(self._queue_paths[0], tasks)]
        grouped: dict[str, list[SendTask]] = {}
        for task in tasks:
            grouped.setdefault(self.queue_of(task), []).append(task)
        return grouped.items()

    def _create(self, task: SendTask) -> None:
        from google.api_core.exceptions import AlreadyExists
        from google.cloud import tasks_v2

        queue = self.queue_of(task)
        with contextlib.suppress(AlreadyExists):
            self._client.create_task(
                parent=queue, task=tasks_v2.Task.wrap(self._task_pb(queue, task)), timeout=10.0
            )

    def _create_batch(self, queue: str, batch: Sequence[SendTask]) -> None:
        from google.cloud import tasks_v2
        from google.cloud.tasks_v2.types import cloudtasks
        from grpc import StatusCode

        requests = [
            cloudtasks.CreateTaskRequest.pb()(parent=queue, task=self._task_pb(queue, task)) for task in batch
        ]
        request = cloudtasks.BatchCreateTasksRequest.pb()(parent=queue, requests=requests)
        operation = self._client.batch_create_tasks(
            request=tasks_v2.BatchCreateTasksRequest.wrap(request), timeout=30.0
        )
        operation.result(timeout=60.0)
        refused = {
            index: status.message
            for index, status in operation.metadata.failed_requests.items()
            if status.code != StatusCode.ALREADY_EXISTS.value[0]
        }
        if refused:
            raise TaskCreationRefused(
                f"{len(refused)} of {len(batch)} tasks refused, e.g. {next(iter(refused.values()))}"
            )

    def _task_pb(self, queue: str, task: SendTask) -> Any:
        from google.cloud import tasks_v2

        created = tasks_v2.Task.pb()(name=f"{queue}/tasks/{task_id(task)}")
        created.schedule_time.FromDatetime(task.at)
        created.http_request.CopyFrom(self._http_request)
        created.http_request.body = task_body(task)
        return created


def make_tasks_client(settings: Settings) -> Any:
    from google.cloud import tasks_v2

    if settings.cloud_tasks_emulator_host:
        import grpc
        from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcTransport

        channel = grpc.insecure_channel(settings.cloud_tasks_emulator_host)
        return tasks_v2.CloudTasksClient(transport=CloudTasksGrpcTransport(channel=channel))
    return tasks_v2.CloudTasksClient()


def send_queue_paths(client: Any, settings: Settings) -> list[str]:
    """Every send queue's full path, in send_queue_names' order (index = send_queue_index)."""
    return [
        client.queue_path(settings.gcp_project, settings.gcp_region, name)
        for name in send_queue_names(settings.tasks_queue, settings.tasks_queue_count)
    ]


def make_task_scheduler(settings: Settings) -> CloudTasksScheduler:
    if not settings.send_message_url or not settings.tasks_service_account_email:
        raise RuntimeError(
            "SEND_MESSAGE_URL and TASKS_SERVICE_ACCOUNT_EMAIL must be set to create send tasks"
        )
    client = make_tasks_client(settings)
    return CloudTasksScheduler(
        client,
        send_queue_paths(client, settings),
        settings.send_message_url,
        settings.tasks_service_account_email,
        settings.fanout_task_workers,
    )


@dataclass(frozen=True)
class QueueStatus:
    """What Cloud Tasks says of the send queue: its state and statistics (QueueStats). Of several send
    queues: their sum, the oldest of their oldest tasks and the worst of their states (combine_statuses)."""

    state: str  # RUNNING, PAUSED, DISABLED
    tasks_count: int
    # The earliest schedule time among the tasks waiting to be dispatched; None when none waits.
    oldest_scheduled_at: datetime | None
    concurrent_dispatches: int
    executed_last_minute: int


class QueueInspector(Protocol):
    def status(self) -> QueueStatus:
        """The queue's state and statistics; raises if the queue cannot be read."""


# Worse is larger: one queue that sends nothing makes the whole set of send queues not RUNNING, since a
# message's tasks only ever go to its own queue. A state not named here (STATE_UNSPECIFIED) is the worst.
_STATE_SEVERITY = {"RUNNING": 0, "PAUSED": 1, "DISABLED": 2}


def combine_statuses(statuses: Sequence[QueueStatus]) -> QueueStatus:
    """The send queues as one: the worst state, the summed counts, the oldest of the oldest tasks."""
    if not statuses:
        raise ValueError("no queue status to combine")
    oldest = [s.oldest_scheduled_at for s in statuses if s.oldest_scheduled_at is not None]
    return QueueStatus(
        state=max((s.state for s in statuses), key=lambda state: _STATE_SEVERITY.get(state, 3)),
        tasks_count=sum(s.tasks_count for s in statuses),
        oldest_scheduled_at=min(oldest, default=None),
        concurrent_dispatches=sum(s.concurrent_dispatches for s in statuses),
        executed_last_minute=sum(s.executed_last_minute for s in statuses),
    )


# Only the beta surface returns the queue's statistics: Queue.stats exists in v2beta3 (and v2beta2), not
# in v2, and GetQueue returns it only when the read mask names it ("If the mask is not present all fields
# will be returned except [Queue.stats]", https://cloud.google.com/tasks/docs/reference/rest/v2beta3/projects.locations.queues/get).
# The queues are the same resources whichever version reads them.
STATS_READ_MASK = ("name", "state", "stats")


class CloudTasksQueueInspector:
    """Reads every send queue (one path alone is one queue) and answers them combined: any that cannot be
    read fails the whole read, as a queue nobody can see may be one that sends nothing."""

    def __init__(self, client: Any, queue_paths: str | Sequence[str]) -> None:
        self._client = client
        self._queue_paths = [queue_paths] if isinstance(queue_paths, str) else list(queue_paths)
        if not self._queue_paths:
            raise ValueError("at least one send queue is needed")

    def status(self) -> QueueStatus:
        return combine_statuses([self._status(path) for path in self._queue_paths])

    def _status(self, queue_path: str) -> QueueStatus:
        from google.cloud import tasks_v2beta3
        from google.protobuf import field_mask_pb2

        request = tasks_v2beta3.GetQueueRequest(
            name=queue_path, read_mask=field_mask_pb2.FieldMask(paths=list(STATS_READ_MASK))
        )
        # No retry: a health check reports what it sees now, and must answer quickly when it cannot.
        queue = self._client.get_queue(request=request, retry=None, timeout=5.0)
        stats = queue.stats
        oldest = stats.oldest_estimated_arrival_time if "oldest_estimated_arrival_time" in stats else None
        return QueueStatus(
            state=tasks_v2beta3.Queue.State(queue.state).name,
            tasks_count=int(stats.tasks_count),
            oldest_scheduled_at=oldest,
            concurrent_dispatches=int(stats.concurrent_dispatches_count),
            executed_last_minute=int(stats.executed_last_minute_count),
        )


def make_queue_inspector(settings: Settings) -> CloudTasksQueueInspector:
    from google.cloud import tasks_v2beta3

    if settings.cloud_tasks_emulator_host:
        import grpc
        from google.cloud.tasks_v2beta3.services.cloud_tasks.transports import CloudTasksGrpcTransport

        channel = grpc.insecure_channel(settings.cloud_tasks_emulator_host)
        client = tasks_v2beta3.CloudTasksClient(transport=CloudTasksGrpcTransport(channel=channel))
    else:
        client = tasks_v2beta3.CloudTasksClient()
    return CloudTasksQueueInspector(client, send_queue_paths(client, settings))
