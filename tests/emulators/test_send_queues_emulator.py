"""Several send queues on the real Cloud Tasks emulator, through the application's own factories
(make_task_scheduler, make_queue_inspector) and the local stack's create_queues: messages spread over
the queues, every generation of a message in its own queue, `exists()` looking where the task went, and
the health report reading the queues as one (docs/architecture.md, "Send queues")."""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterator

import pytest
from google.cloud import tasks_v2

from infra.local.cloud_tasks_emulator import CloudTasksEmulator
from infra.local.tasks_queues import SCHEDULER_QUEUE, create_queues
from shared.adapters.tasks import (
    CloudTasksScheduler,
    SendTask,
    make_queue_inspector,
    make_task_scheduler,
    send_queue_names,
    task_id,
)
from shared.config import Settings
from shared.services.health import Level, Thresholds, queue_check
from tests.conftest import make_settings
from tests.emulators.conftest import LOCATION, RecordingTarget

UTC = datetime.UTC
COUNT = 3
NAMES = send_queue_names("send-messages", COUNT)
PATHS = [f"{LOCATION}/queues/{name}" for name in NAMES]


@pytest.fixture
def settings(tasks_emulator: CloudTasksEmulator, task_target: RecordingTarget) -> Settings:
    create_queues(tasks_emulator.address, "test-project", "us-central1", "send-messages", 80, COUNT)
    return make_settings(
        "postgresql+pg8000://unused@127.0.0.1/unused",  # nothing here touches a database
        cloud_tasks_emulator_host=tasks_emulator.address,
        gcp_project="test-project",
        gcp_region="us-central1",
        tasks_queue="send-messages",
        tasks_queue_count=COUNT,
        send_message_url=task_target.url,
        tasks_service_account_email="ese-tasks-invoker@test-project.iam.gserviceaccount.com",
    )


@pytest.fixture
def scheduler(settings: Settings) -> Iterator[CloudTasksScheduler]:
    created = make_task_scheduler(settings)
    yield created
    created.close()


def message_ids_in(client: tasks_v2.CloudTasksClient, path: str) -> list[int]:
    listed = client.list_tasks(request={"parent": path, "response_view": tasks_v2.Task.View.FULL})
    return sorted(json.loads(task.http_request.body)["message_id"] for task in listed)


def test_the_local_stack_creates_every_send_queue_with_its_share_of_the_sends_in_flight(
    settings: Settings, tasks_client: tasks_v2.CloudTasksClient
) -> None:
    queues = {q.name: q for q in tasks_client.list_queues(parent=LOCATION)}
    assert set(queues) == {*PATHS, f"{LOCATION}/queues/{SCHEDULER_QUEUE}"}
    for path in PATHS:
        assert queues[path].rate_limits.max_dispatches_per_second == 80
        assert queues[path].rate_limits.max_concurrent_dispatches == 40 // COUNT
        assert queues[path].retry_config.max_attempts == 300


def test_tasks_spread_over_the_queues_and_each_message_keeps_its_queue(
    scheduler: CloudTasksScheduler, tasks_client: tasks_v2.CloudTasksClient
) -> None:
    for path in PATHS:
        tasks_client.pause_queue(name=path)
    created = datetime.datetime.now(UTC)
    at = created + datetime.timedelta(minutes=10)
    first = [SendTask(message_id, 0, created, at) for message_id in range(1, 301)]

    scheduler.schedule(first)
    scheduler.schedule(first[:150])  # a redelivered page: every name exists in its queue
    # The next generation of message 7 (a retry): alone, so one plain CreateTask.
    scheduler.schedule([SendTask(7, 1, created, at)])

    by_queue = [message_ids_in(tasks_client, path) for path in PATHS]
    assert [len(ids) for ids in by_queue] == [100, 101, 100]
    for index, ids in enumerate(by_queue):
        assert {message_id % COUNT for message_id in ids} == {index}
    assert by_queue[1].count(7) == 2  # both generations, side by side in the same queue

    in_queue_2 = SendTask(5, 0, created, at)
    assert scheduler.queue_of(in_queue_2) == PATHS[2]
    assert scheduler.exists(in_queue_2)
    assert scheduler.exists(SendTask(7, 1, created, at))
    assert not scheduler.exists(SendTask(5, 1, created, at))  # a generation never created
    tasks_client.delete_task(name=f"{PATHS[2]}/tasks/{task_id(in_queue_2)}")
    assert not scheduler.exists(in_queue_2)


def test_the_health_report_reads_every_send_queue_as_one(
    settings: Settings, scheduler: CloudTasksScheduler, tasks_client: tasks_v2.CloudTasksClient
) -> None:
    for path in PATHS:
        tasks_client.pause_queue(name=path)
    created = datetime.datetime.now(UTC).replace(microsecond=0)
    base = created + datetime.timedelta(hours=1)
    # Message 1 (queue 1) is due first; queue 0's earliest is message 3.
    scheduler.schedule([SendTask(n, 0, created, base + datetime.timedelta(seconds=n)) for n in range(1, 31)])
    inspector = make_queue_inspector(settings)

    paused = inspector.status()
    assert (paused.state, paused.tasks_count) == ("PAUSED", 30)
    assert paused.oldest_scheduled_at == base + datetime.timedelta(seconds=1)

    for path in PATHS[:2]:
        tasks_client.resume_queue(name=path)
    partly = inspector.status()
    assert partly.state == "PAUSED"  # queue 2's messages are not being sent
    assert queue_check(partly, created, Thresholds()).level is Level.FAILING

    tasks_client.resume_queue(name=PATHS[2])
    running = inspector.status()
    assert (running.state, running.tasks_count) == ("RUNNING", 30)
    check = queue_check(running, base + datetime.timedelta(minutes=10), Thresholds())
    assert check.level is Level.WARNING  # the oldest task, in queue 1, is 599 s overdue
    assert check.value.startswith("RUNNING, 30 tasks, oldest 599 s overdue")


def test_a_send_queue_that_cannot_be_read_fails_the_report(
    tasks_emulator: CloudTasksEmulator, tasks_client: tasks_v2.CloudTasksClient
) -> None:
    from shared.services.health import read_queue

    # Only the first two exist: the third, where a third of the messages go, is missing.
    for path in PATHS[:2]:
        tasks_client.create_queue(parent=LOCATION, queue=tasks_v2.Queue(name=path))
    settings = make_settings(
        "postgresql+pg8000://unused@127.0.0.1/unused",
        cloud_tasks_emulator_host=tasks_emulator.address,
        gcp_project="test-project",
        gcp_region="us-central1",
        tasks_queue_count=COUNT,
    )

    reason = read_queue(lambda: make_queue_inspector(settings))

    assert isinstance(reason, str) and reason.startswith("NotFound")
    assert "send-messages-2" in reason
