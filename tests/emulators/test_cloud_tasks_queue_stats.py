"""v2beta3 GetQueue with its statistics, through the real google-cloud-tasks client on our emulator, and
the health report's send-queue check reading it (infra/local/cloud_tasks_emulator/beta_service.py has the
service's documented behaviour the emulator follows)."""

from __future__ import annotations

import datetime
from collections.abc import Iterator

import grpc
import pytest
from google.api_core.exceptions import InvalidArgument, NotFound
from google.cloud import tasks_v2, tasks_v2beta3
from google.cloud.tasks_v2beta3.services.cloud_tasks.transports import CloudTasksGrpcTransport
from google.protobuf import field_mask_pb2

from infra.local.cloud_tasks_emulator import CloudTasksEmulator
from shared.adapters.tasks import CloudTasksQueueInspector, make_queue_inspector
from shared.services.health import Level, Thresholds, queue_check
from tests.conftest import make_settings
from tests.emulators.conftest import LOCATION, RecordingTarget
from tests.emulators.test_cloud_tasks_emulator import eventually, http_task, make_queue

UTC = datetime.UTC


@pytest.fixture
def beta_client(tasks_emulator: CloudTasksEmulator) -> Iterator[tasks_v2beta3.CloudTasksClient]:
    channel = grpc.insecure_channel(tasks_emulator.address)
    yield tasks_v2beta3.CloudTasksClient(transport=CloudTasksGrpcTransport(channel=channel))
    channel.close()


def mask(*paths: str) -> field_mask_pb2.FieldMask:
    return field_mask_pb2.FieldMask(paths=list(paths))


def test_stats_are_returned_only_when_the_read_mask_names_them(
    tasks_client: tasks_v2.CloudTasksClient, beta_client: tasks_v2beta3.CloudTasksClient
) -> None:
    queue = make_queue(tasks_client, rate_limits=tasks_v2.RateLimits(max_dispatches_per_second=7))

    unmasked = beta_client.get_queue(name=queue.name)
    assert "stats" not in unmasked
    assert unmasked.name == queue.name
    assert unmasked.state == tasks_v2beta3.Queue.State.RUNNING
    assert unmasked.rate_limits.max_dispatches_per_second == 7  # the queue v2 created, read through beta

    with_stats = beta_client.get_queue(request={"name": queue.name, "read_mask": mask("state", "stats")})
    assert "stats" in with_stats
    assert with_stats.stats.tasks_count == 0
    assert with_stats.state == tasks_v2beta3.Queue.State.RUNNING
    # Only what the mask names.
    assert with_stats.name == ""
    assert "rate_limits" not in with_stats

    nested = beta_client.get_queue(request={"name": queue.name, "read_mask": mask("stats.tasks_count")})
    assert "stats" in nested
    assert nested.stats.effective_execution_rate == 0  # not named


def test_a_read_mask_naming_no_field_or_a_missing_queue_is_refused_as_the_service_does(
    tasks_client: tasks_v2.CloudTasksClient, beta_client: tasks_v2beta3.CloudTasksClient
) -> None:
    queue = make_queue(tasks_client)
    with pytest.raises(InvalidArgument):
        beta_client.get_queue(request={"name": queue.name, "read_mask": mask("stats", "depth")})
    with pytest.raises(NotFound):
        beta_client.get_queue(name=f"{LOCATION}/queues/nowhere")
    with pytest.raises(InvalidArgument):
        beta_client.get_queue(name="projects/p/queues/no-location")


def test_stats_count_the_waiting_tasks_and_the_earliest_schedule_time_then_the_executions(
    tasks_client: tasks_v2.CloudTasksClient,
    beta_client: tasks_v2beta3.CloudTasksClient,
    tasks_emulator: CloudTasksEmulator,
    task_target: RecordingTarget,
) -> None:
    queue = make_queue(tasks_client)
    tasks_client.pause_queue(name=queue.name)
    past = datetime.datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    for minutes in (30, 0, 10):
        tasks_client.create_task(
            parent=queue.name,
            task=http_task(task_target.url, schedule_time=past + datetime.timedelta(minutes=minutes)),
        )

    paused = beta_client.get_queue(request={"name": queue.name, "read_mask": mask("state", "stats")})
    assert paused.state == tasks_v2beta3.Queue.State.PAUSED
    assert paused.stats.tasks_count == 3
    assert paused.stats.oldest_estimated_arrival_time == past
    assert paused.stats.executed_last_minute_count == 0

    tasks_client.resume_queue(name=queue.name)
    assert tasks_emulator.wait_idle(timeout=5)
    eventually(lambda: len(task_target.arrivals) == 3)
    done = beta_client.get_queue(request={"name": queue.name, "read_mask": mask("stats")})
    assert done.stats.tasks_count == 0
    assert "oldest_estimated_arrival_time" not in done.stats  # nothing waits
    assert done.stats.executed_last_minute_count == 3


def _inspector(tasks_emulator: CloudTasksEmulator, queue_id: str) -> CloudTasksQueueInspector:
    settings = make_settings(
        "postgresql+pg8000://unused@127.0.0.1/unused",  # the inspector never touches a database
        cloud_tasks_emulator_host=tasks_emulator.address,
        gcp_project="test-project",
        gcp_region="us-central1",
        tasks_queue=queue_id,
    )
    return make_queue_inspector(settings)


def test_the_health_check_fails_on_a_paused_send_queue(
    tasks_client: tasks_v2.CloudTasksClient, tasks_emulator: CloudTasksEmulator, task_target: RecordingTarget
) -> None:
    queue = make_queue(tasks_client, "send-messages")
    tasks_client.create_task(parent=queue.name, task=http_task(task_target.url, queue="send-messages"))
    inspector = _inspector(tasks_emulator, "send-messages")
    assert inspector.status().state == "RUNNING"
    assert tasks_emulator.wait_idle(timeout=5)
    now = datetime.datetime.now(UTC)
    assert queue_check(inspector.status(), now, Thresholds()).level is Level.OK

    tasks_client.pause_queue(name=queue.name)
    status = inspector.status()

    check = queue_check(status, now, Thresholds())
    assert status.state == "PAUSED"
    assert check.level is Level.FAILING
    assert check.value.startswith("PAUSED, 0 tasks")


def test_the_health_check_warns_then_fails_as_the_oldest_waiting_task_falls_behind(
    tasks_client: tasks_v2.CloudTasksClient, tasks_emulator: CloudTasksEmulator, task_target: RecordingTarget
) -> None:
    """A running queue whose earliest task is past its time is behind. The task is scheduled an hour
    ahead and the check is asked at chosen instants after that: the clock is the check's argument."""
    queue = make_queue(tasks_client, "send-messages")
    due = (datetime.datetime.now(UTC) + datetime.timedelta(hours=1)).replace(microsecond=0)
    tasks_client.create_task(
        parent=queue.name, task=http_task(task_target.url, queue="send-messages", schedule_time=due)
    )
    status = _inspector(tasks_emulator, "send-messages").status()
    assert (status.state, status.tasks_count, status.oldest_scheduled_at) == ("RUNNING", 1, due)
    thresholds = Thresholds(
        queue_overdue_warning=datetime.timedelta(minutes=5),
        queue_overdue_failing=datetime.timedelta(minutes=30),
    )

    def level_at(after_due: datetime.timedelta) -> Level:
        return queue_check(status, due + after_due, thresholds).level

    assert level_at(datetime.timedelta(minutes=4, seconds=59)) is Level.OK
    assert level_at(datetime.timedelta(minutes=5)) is Level.WARNING
    assert level_at(datetime.timedelta(minutes=29, seconds=59)) is Level.WARNING
    assert level_at(datetime.timedelta(minutes=30)) is Level.FAILING
    assert "300 s overdue" in queue_check(status, due + datetime.timedelta(minutes=5), thresholds).value


def test_an_unreachable_or_missing_queue_is_failing_with_the_reason(
    tasks_emulator: CloudTasksEmulator,
) -> None:
    from shared.services.health import read_queue

    reason = read_queue(lambda: _inspector(tasks_emulator, "never-created"))

    assert isinstance(reason, str) and reason.startswith("NotFound")
    check = queue_check(reason, datetime.datetime.now(UTC), Thresholds())
    assert check.level is Level.FAILING
    assert check.value.startswith("cannot be read (NotFound")
