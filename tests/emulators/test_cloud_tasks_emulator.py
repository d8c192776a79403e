"""The Cloud Tasks emulator, driven through the real google-cloud-tasks client against a real HTTP target.

Timing assertions here are the fidelity tolerances the emulator promises (rate within 10 %, backoff and
schedule times within tens of milliseconds); everything else is exact.
"""

import base64
import datetime
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import google.auth.transport.requests
import grpc
import pytest
import requests
from google.api_core import exceptions
from google.cloud import tasks_v2
from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcTransport
from google.oauth2 import id_token

from infra.local.cloud_tasks_emulator import CloudTasksEmulator, Retention
from infra.local.cloud_tasks_emulator.backoff import RetryPolicy
from shared.adapters.tasks import CloudTasksScheduler, SendTask, TaskCreationRefused, task_id
from tests.emulators.conftest import LOCATION, RecordingTarget, Reply

SERVICE_ACCOUNT = "send-message@test-project.iam.gserviceaccount.com"


def make_queue(
    client: tasks_v2.CloudTasksClient, queue_id: str = "sends", **settings: object
) -> tasks_v2.Queue:
    return client.create_queue(
        parent=LOCATION, queue=tasks_v2.Queue(name=f"{LOCATION}/queues/{queue_id}", **settings)
    )


def http_task(url: str, task_id: str | None = None, queue: str = "sends", **fields: object) -> tasks_v2.Task:
    name = f"{LOCATION}/queues/{queue}/tasks/{task_id}" if task_id else None
    return tasks_v2.Task(name=name, http_request=tasks_v2.HttpRequest(url=url, body=b"{}"), **fields)


def retry_config(**seconds_and_counts: float) -> tasks_v2.RetryConfig:
    durations = {
        k: datetime.timedelta(seconds=v)
        for k, v in seconds_and_counts.items()
        if k.endswith(("backoff", "duration"))
    }
    counts = {k: int(v) for k, v in seconds_and_counts.items() if k not in durations}
    return tasks_v2.RetryConfig(**durations, **counts)


def eventually(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def gaps(target: RecordingTarget) -> list[float]:
    times = [arrival.at for arrival in target.arrivals]
    return [later - earlier for earlier, later in itertools.pairwise(times)]


# --- rate limits -----------------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [5, 50])
def test_dispatch_rate_holds_the_queue_rate_after_the_initial_burst(
    tasks_client: tasks_v2.CloudTasksClient,
    tasks_emulator: CloudTasksEmulator,
    task_target: RecordingTarget,
    rate: int,
) -> None:
    queue = make_queue(tasks_client, rate_limits=tasks_v2.RateLimits(max_dispatches_per_second=rate))
    burst = queue.rate_limits.max_burst_size
    tasks_client.pause_queue(name=queue.name)
    for _ in range(burst + 3 * rate):  # the burst, then three seconds' worth at the steady rate
        tasks_client.create_task(parent=queue.name, task=http_task(task_target.url))
    tasks_client.resume_queue(name=queue.name)
    assert tasks_emulator.wait_idle(timeout=10)

    times = sorted(arrival.at for arrival in task_target.arrivals)
    # Measured from half a second after the burst, so the burst's own spread at the target stays out of it.
    steady = times[burst + rate // 2 :]
    measured_rate = (len(steady) - 1) / (steady[-1] - steady[0])
    assert measured_rate == pytest.approx(rate, rel=0.10)
    # A token bucket never lets more than burst + rate * span requests through in any window; 50 ms of
    # slack absorbs the target's own scheduling jitter.
    worst_excess = max(
        (j - i + 1) - rate * (times[j] - times[i] + 0.05)
        for i in range(len(times))
        for j in range(i, len(times))
    )
    assert worst_excess <= burst


def test_max_concurrent_dispatches_bounds_requests_in_flight(
    tasks_client: tasks_v2.CloudTasksClient, tasks_emulator: CloudTasksEmulator, task_target: RecordingTarget
) -> None:
    task_target.reply = lambda index: Reply(delay_seconds=0.2)
    queue = make_queue(tasks_client, rate_limits=tasks_v2.RateLimits(max_concurrent_dispatches=2))
    for _ in range(6):
        tasks_client.create_task(parent=queue.name, task=http_task(task_target.url))
    assert tasks_emulator.wait_idle(timeout=10)
    assert len(task_target.arrivals) == 6
    assert task_target.max_in_flight == 2


# --- retries ---------------------------------------------------------------------------------------


def test_backoff_formula_matches_the_documented_example() -> None:
    policy = RetryPolicy(
        max_attempts=100, max_retry_duration=0, min_backoff=10, max_backoff=300, max_doublings=3
    )
    assert [policy.delay_before_retry(n) for n in range(1, 9)] == [10, 20, 40, 80, 160, 240, 300, 300]


def test_failing_target_is_retried_at_backoff_intervals_until_max_attempts(
    tasks_client: tasks_v2.CloudTasksClient, tasks_emulator: CloudTasksEmulator, task_target: RecordingTarget
) -> None:
    task_target.reply = lambda index: Reply(status=500)
    config = retry_config(max_attempts=6, min_backoff=0.1, max_backoff=0.7, max_doublings=1)
    queue = make_queue(tasks_client, retry_config=config)
    task = tasks_client.create_task(parent=queue.name, task=http_task(task_target.url, "always-fails"))
    assert tasks_emulator.wait_idle(timeout=10)

    # one doubling (0.1 → 0.2), then linear steps of 0.2, capped at 0.7
    expected = [0.1, 0.2, 0.4, 0.6, 0.7]
    assert len(task_target.arrivals) == 6
    for measured, wanted in zip(gaps(task_target), expected, strict=True):
        assert wanted - 0.005 <= measured <= wanted + 0.08
    with pytest.raises(exceptions.NotFound):
        tasks_client.get_task(name=task.name)


def test_retries_continue_until_max_retry_duration_has_also_passed(
    tasks_client: tasks_v2.CloudTasksClient, tasks_emulator: CloudTasksEmulator, task_target: RecordingTarget
) -> None:
    task_target.reply = lambda index: Reply(status=500)
    config = retry_config(max_attempts=2, min_backoff=0.3, max_backoff=0.3, max_retry_duration=1.05)
    queue = make_queue(tasks_client, retry_config=config)
    tasks_client.create_task(parent=queue.name, task=http_task(task_target.url))
    assert tasks_emulator.wait_idle(timeout=10)
    # attempts at about 0, 0.3, 0.6, 0.9 and 1.2 s: two attempts alone would not have ended it
    assert len(task_target.arrivals) == 5


def test_retry_after_on_503_replaces_the_computed_backoff(
    tasks_client: tasks_v2.CloudTasksClient, tasks_emulator: CloudTasksEmulator, task_target: RecordingTarget
) -> None:
    task_target.reply = lambda index: (
        Reply(status=503, headers={"Retry-After": "1"}) if index == 0 else Reply()
    )
    queue = make_queue(tasks_client, retry_config=retry_config(min_backoff=0.1, max_backoff=0.1))
    tasks_client.create_task(parent=queue.name, task=http_task(task_target.url))
    assert tasks_emulator.wait_idle(timeout=10)
    assert len(task_target.arrivals) == 2
    # Retry-After (1 s), not the queue's 0.1 s backoff; the upper bound only has to tell them apart.
    assert 0.95 <= gaps(task_target)[0] < 2.0


def test_target_slower_than_dispatch_deadline_counts_as_a_failed_attempt(
    tasks_client: tasks_v2.CloudTasksClient, tasks_emulator: CloudTasksEmulator, task_target: RecordingTarget
) -> None:
    task_target.reply = lambda index: Reply(delay_seconds=1.0) if index == 0 else Reply()
    queue = make_queue(tasks_client, retry_config=retry_config(min_backoff=0.1, max_backoff=0.1))
    deadline = datetime.timedelta(seconds=0.3)
    tasks_client.create_task(parent=queue.name, task=http_task(task_target.url, dispatch_deadline=deadline))
    assert tasks_emulator.wait_idle(timeout=10)

    first, second = task_target.arrivals
    assert second.header("X-CloudTasks-TaskPreviousResponse") == "0"
    assert second.header("X-CloudTasks-TaskRetryReason") == "DEADLINE_EXCEEDED"
    # Retried after the 0.3 s deadline plus the 0.1 s backoff, not after the target's 1 s reply. The
    # arrivals are stamped at the target, after the dispatch's own latency: a few ms either way.
    assert 0.35 <= second.at - first.at < 0.9


def test_attempts_are_counted_and_run_task_dispatches_at_once(
    tasks_client: tasks_v2.CloudTasksClient, task_target: RecordingTarget
) -> None:
    task_target.reply = lambda index: Reply(status=500)
    queue = make_queue(tasks_client, retry_config=retry_config(min_backoff=3600, max_backoff=3600))
    created = tasks_client.create_task(parent=queue.name, task=http_task(task_target.url, "counted"))
    eventually(lambda: tasks_client.get_task(name=created.name).response_count == 1)

    task = tasks_client.get_task(name=created.name)
    assert task.dispatch_count == 1
    assert task.first_attempt.dispatch_time == task.last_attempt.dispatch_time
    assert task.last_attempt.response_status.code == grpc.StatusCode.INTERNAL.value[0]
    assert task.schedule_time.timestamp() == pytest.approx(
        task.last_attempt.response_time.timestamp() + 3600, abs=1
    )

    tasks_client.run_task(name=created.name)
    eventually(lambda: tasks_client.get_task(name=created.name).response_count == 2)
    assert tasks_client.get_task(name=created.name).dispatch_count == 2
    assert len(task_target.arrivals) == 2


# --- headers and OIDC ------------------------------------------------------------------------------


def test_cloud_tasks_headers_name_the_task_and_count_its_attempts(
    tasks_client: tasks_v2.CloudTasksClient, tasks_emulator: CloudTasksEmulator, task_target: RecordingTarget
) -> None:
    replies = [Reply(status=400), Reply(status=503), Reply(status=204)]
    task_target.reply = lambda index: replies[index]
    queue = make_queue(tasks_client, retry_config=retry_config(min_backoff=0.1, max_backoff=0.1))
    created = tasks_client.create_task(parent=queue.name, task=http_task(task_target.url, "msg-42"))
    assert tasks_emulator.wait_idle(timeout=10)

    first, second, third = task_target.arrivals
    assert [a.header("X-CloudTasks-QueueName") for a in task_target.arrivals] == ["sends"] * 3
    assert [a.header("X-CloudTasks-TaskName") for a in task_target.arrivals] == ["msg-42"] * 3
    assert [a.header("X-CloudTasks-TaskRetryCount") for a in task_target.arrivals] == ["0", "1", "2"]
    # a 5xx answer is not an execution, as the service documents
    assert [a.header("X-CloudTasks-TaskExecutionCount") for a in task_target.arrivals] == ["0", "1", "1"]
    assert [a.header("X-CloudTasks-TaskPreviousResponse") for a in task_target.arrivals] == [
        None,
        "400",
        "503",
    ]
    assert [a.header("X-CloudTasks-TaskRetryReason") for a in task_target.arrivals] == [
        None,
        "HTTP_400",
        "HTTP_503",
    ]
    assert first.header("X-CloudTasks-TaskETA") == f"{created.schedule_time.timestamp():.6f}"
    assert float(second.header("X-CloudTasks-TaskETA") or 0) > created.schedule_time.timestamp()
    assert third.header("User-Agent") == "Google-Cloud-Tasks"
    assert third.body == b"{}"


def _received_token(
    tasks_client: tasks_v2.CloudTasksClient, target: RecordingTarget, audience: str = ""
) -> str:
    queue = make_queue(tasks_client)
    oidc = tasks_v2.OidcToken(service_account_email=SERVICE_ACCOUNT, audience=audience)
    task = tasks_v2.Task(http_request=tasks_v2.HttpRequest(url=target.url, oidc_token=oidc))
    tasks_client.create_task(parent=queue.name, task=task)
    eventually(lambda: len(target.arrivals) == 1)
    authorization = target.arrivals[0].header("Authorization") or ""
    assert authorization.startswith("Bearer ")
    return authorization.removeprefix("Bearer ")


def test_oidc_token_verifies_against_the_emulator_certs_with_audience_and_email(
    tasks_client: tasks_v2.CloudTasksClient, tasks_emulator: CloudTasksEmulator, task_target: RecordingTarget
) -> None:
    token = _received_token(tasks_client, task_target, audience="https://send-message.example")
    request = google.auth.transport.requests.Request()

    for certs_url in (tasks_emulator.certs_url, tasks_emulator.jwks_url):
        claims = id_token.verify_token(
            token, request, audience="https://send-message.example", certs_url=certs_url
        )
        assert claims["email"] == SERVICE_ACCOUNT
        assert claims["email_verified"] is True
        assert claims["iss"] == tasks_emulator.oidc_issuer
        assert claims["exp"] - claims["iat"] == 3600
    discovery = requests.get(tasks_emulator.discovery_url, timeout=5).json()
    assert discovery["issuer"] == tasks_emulator.oidc_issuer
    assert discovery["jwks_uri"] == tasks_emulator.jwks_url


def test_oidc_audience_defaults_to_the_task_url(
    tasks_client: tasks_v2.CloudTasksClient, tasks_emulator: CloudTasksEmulator, task_target: RecordingTarget
) -> None:
    token = _received_token(tasks_client, task_target)
    request = google.auth.transport.requests.Request()
    claims = id_token.verify_token(
        token, request, audience=task_target.url, certs_url=tasks_emulator.certs_url
    )
    assert claims["aud"] == task_target.url


def test_tampered_token_or_wrong_audience_is_rejected(
    tasks_client: tasks_v2.CloudTasksClient, tasks_emulator: CloudTasksEmulator, task_target: RecordingTarget
) -> None:
    token = _received_token(tasks_client, task_target, audience="https://send-message.example")
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["email"] = "x" + claims["email"][1:]  # one byte of the payload changed
    forged_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    request = google.auth.transport.requests.Request()

    with pytest.raises(ValueError, match="signature"):
        id_token.verify_token(
            f"{header}.{forged_payload}.{signature}",
            request,
            audience="https://send-message.example",
            certs_url=tasks_emulator.certs_url,
        )
    with pytest.raises(ValueError, match="audience"):
        id_token.verify_token(
            token, request, audience="https://elsewhere.example", certs_url=tasks_emulator.certs_url
        )


# --- names, scheduling and queue state -------------------------------------------------------------


def test_duplicate_task_name_is_refused_while_queued_after_completion_and_after_deletion(
    tasks_client: tasks_v2.CloudTasksClient, tasks_emulator: CloudTasksEmulator, task_target: RecordingTarget
) -> None:
    queue = make_queue(tasks_client)
    tasks_client.pause_queue(name=queue.name)
    queued = tasks_client.create_task(parent=queue.name, task=http_task(task_target.url, "queued"))
    with pytest.raises(exceptions.AlreadyExists):
        tasks_client.create_task(parent=queue.name, task=http_task(task_target.url, "queued"))

    tasks_client.delete_task(name=queued.name)
    with pytest.raises(exceptions.AlreadyExists):
        tasks_client.create_task(parent=queue.name, task=http_task(task_target.url, "queued"))

    tasks_client.resume_queue(name=queue.name)
    tasks_client.create_task(parent=queue.name, task=http_task(task_target.url, "completed"))
    assert tasks_emulator.wait_idle(timeout=5)
    assert len(task_target.arrivals) == 1
    with pytest.raises(exceptions.AlreadyExists):
        tasks_client.create_task(parent=queue.name, task=http_task(task_target.url, "completed"))


def batch_of(queue: tasks_v2.Queue, *tasks: tasks_v2.Task) -> tasks_v2.BatchCreateTasksRequest:
    return tasks_v2.BatchCreateTasksRequest(
        parent=queue.name, requests=[tasks_v2.CreateTaskRequest(parent=queue.name, task=t) for t in tasks]
    )


def test_batch_create_reports_each_refused_task_by_index_and_creates_the_rest(
    tasks_client: tasks_v2.CloudTasksClient, task_target: RecordingTarget
) -> None:
    queue = make_queue(tasks_client)
    tasks_client.pause_queue(name=queue.name)
    tasks_client.create_task(parent=queue.name, task=http_task(task_target.url, "existing"))
    too_late = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=31)
    request = batch_of(
        queue,
        http_task(task_target.url, "first"),
        http_task(task_target.url, "existing"),
        http_task(task_target.url, "far", schedule_time=too_late),
        http_task(task_target.url, "last"),
    )

    operation = tasks_client.batch_create_tasks(request=request)

    created = operation.result(timeout=5)  # type: ignore[no-untyped-call]  # google-api-core's, untyped
    assert [t.name.rsplit("/", 1)[-1] for t in created.tasks] == ["first", "last"]
    assert created.tasks[0].http_request.body == b""  # the BASIC view, as CreateTask answers
    failed = operation.metadata.failed_requests
    assert {index: status.code for index, status in failed.items()} == {
        1: grpc.StatusCode.ALREADY_EXISTS.value[0],
        2: grpc.StatusCode.INVALID_ARGUMENT.value[0],
    }
    assert operation.metadata.state == tasks_v2.BatchCreateTasksMetadata.State.PARTIALLY_SUCCEEDED
    names = sorted(t.name.rsplit("/", 1)[-1] for t in tasks_client.list_tasks(parent=queue.name))
    assert names == ["existing", "first", "last"]


def test_batch_create_refuses_more_than_100_tasks_or_another_queue_and_a_missing_queue(
    tasks_client: tasks_v2.CloudTasksClient, task_target: RecordingTarget
) -> None:
    queue = make_queue(tasks_client)
    other = make_queue(tasks_client, queue_id="other")
    with pytest.raises(exceptions.InvalidArgument):
        tasks_client.batch_create_tasks(request=batch_of(queue, *[http_task(task_target.url)] * 101))
    mixed = batch_of(queue, http_task(task_target.url))
    mixed.requests.append(tasks_v2.CreateTaskRequest(parent=other.name, task=http_task(task_target.url)))
    with pytest.raises(exceptions.InvalidArgument):
        tasks_client.batch_create_tasks(request=mixed)
    missing = tasks_v2.Queue(name=f"{LOCATION}/queues/missing")
    with pytest.raises(exceptions.NotFound):
        tasks_client.batch_create_tasks(request=batch_of(missing, http_task(task_target.url)))
    assert list(tasks_client.list_tasks(parent=queue.name)) == []


def test_names_become_reusable_once_their_retention_window_has_passed(task_target: RecordingTarget) -> None:
    with CloudTasksEmulator(retention=Retention(task_name_seconds=0.3, queue_name_seconds=0.3)) as emulator:
        channel = grpc.insecure_channel(emulator.address)
        client = tasks_v2.CloudTasksClient(transport=CloudTasksGrpcTransport(channel=channel))
        queue = make_queue(client)
        # Paused, so the task is still there to delete (an idle queue would dispatch it at once).
        client.pause_queue(name=queue.name)
        task = client.create_task(parent=queue.name, task=http_task(task_target.url, "once"))
        client.delete_task(name=task.name)
        client.delete_queue(name=queue.name)
        with pytest.raises(exceptions.FailedPrecondition):
            make_queue(client)

        time.sleep(0.35)
        queue = make_queue(client)
        client.pause_queue(name=queue.name)
        assert (
            client.create_task(parent=queue.name, task=http_task(task_target.url, "once")).name == task.name
        )
        channel.close()


def test_paused_queue_dispatches_nothing_until_resumed(
    tasks_client: tasks_v2.CloudTasksClient, tasks_emulator: CloudTasksEmulator, task_target: RecordingTarget
) -> None:
    queue = make_queue(tasks_client)
    paused = tasks_client.pause_queue(name=queue.name)
    assert paused.state == tasks_v2.Queue.State.PAUSED
    for _ in range(3):
        tasks_client.create_task(parent=queue.name, task=http_task(task_target.url))
    time.sleep(0.5)
    assert task_target.arrivals == []

    tasks_client.resume_queue(name=queue.name)
    assert tasks_emulator.wait_idle(timeout=5)
    assert len(task_target.arrivals) == 3


def test_purge_deletes_every_task_in_the_queue(
    tasks_client: tasks_v2.CloudTasksClient, task_target: RecordingTarget
) -> None:
    queue = make_queue(tasks_client)
    tasks_client.pause_queue(name=queue.name)
    for _ in range(3):
        tasks_client.create_task(parent=queue.name, task=http_task(task_target.url))
    purged = tasks_client.purge_queue(name=queue.name)
    assert "purge_time" in purged
    assert list(tasks_client.list_tasks(parent=queue.name)) == []

    tasks_client.resume_queue(name=queue.name)
    time.sleep(0.3)
    assert task_target.arrivals == []


def test_schedule_time_is_met_within_100_ms(
    tasks_client: tasks_v2.CloudTasksClient, tasks_emulator: CloudTasksEmulator, task_target: RecordingTarget
) -> None:
    queue = make_queue(tasks_client)
    now = datetime.datetime.now(datetime.UTC)
    delays = [1.2, 0.4, 0.8]
    for delay in delays:
        when = now + datetime.timedelta(seconds=delay)
        tasks_client.create_task(
            parent=queue.name, task=http_task(task_target.url, f"at-{int(delay * 10)}", schedule_time=when)
        )
    assert tasks_emulator.wait_idle(timeout=5)

    for arrival in task_target.arrivals:
        scheduled = float(arrival.header("X-CloudTasks-TaskETA") or 0)
        assert 0 <= arrival.at - scheduled <= 0.1
    ordered_names = [a.header("X-CloudTasks-TaskName") for a in task_target.arrivals]
    assert ordered_names == ["at-4", "at-8", "at-12"]


def test_schedule_time_more_than_30_days_ahead_is_invalid(
    tasks_client: tasks_v2.CloudTasksClient, task_target: RecordingTarget
) -> None:
    queue = make_queue(tasks_client)
    too_late = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=30, minutes=1)
    with pytest.raises(exceptions.InvalidArgument):
        tasks_client.create_task(parent=queue.name, task=http_task(task_target.url, schedule_time=too_late))


# --- API surface -----------------------------------------------------------------------------------


def test_api_errors_carry_the_service_status_codes(
    tasks_client: tasks_v2.CloudTasksClient, task_target: RecordingTarget
) -> None:
    missing_queue = f"{LOCATION}/queues/missing"
    with pytest.raises(exceptions.NotFound):
        tasks_client.get_queue(name=missing_queue)
    with pytest.raises(exceptions.NotFound):
        tasks_client.create_task(parent=missing_queue, task=http_task(task_target.url))

    queue = make_queue(tasks_client)
    with pytest.raises(exceptions.AlreadyExists):
        make_queue(tasks_client)
    with pytest.raises(exceptions.NotFound):
        tasks_client.delete_task(name=f"{queue.name}/tasks/never-created")
    with pytest.raises(exceptions.InvalidArgument):
        make_queue(tasks_client, queue_id="bad_id!")
    with pytest.raises(exceptions.InvalidArgument):
        make_queue(
            tasks_client, queue_id="too-fast", rate_limits=tasks_v2.RateLimits(max_dispatches_per_second=501)
        )
    app_engine_task = tasks_v2.Task(app_engine_http_request=tasks_v2.AppEngineHttpRequest(relative_uri="/x"))
    with pytest.raises(exceptions.InvalidArgument):
        tasks_client.create_task(parent=queue.name, task=app_engine_task)
    with pytest.raises(exceptions.InvalidArgument):
        tasks_client.create_task(
            parent=queue.name,
            task=http_task(task_target.url, dispatch_deadline=datetime.timedelta(minutes=31)),
        )

    tasks_client.delete_queue(name=queue.name)
    with pytest.raises(exceptions.NotFound):
        tasks_client.get_queue(name=queue.name)
    with pytest.raises(exceptions.FailedPrecondition):
        make_queue(tasks_client)


def test_update_queue_changes_only_the_fields_in_the_mask(tasks_client: tasks_v2.CloudTasksClient) -> None:
    queue = make_queue(
        tasks_client,
        rate_limits=tasks_v2.RateLimits(max_dispatches_per_second=5),
        retry_config=retry_config(max_attempts=3, min_backoff=1),
    )
    requested = tasks_v2.Queue(
        name=queue.name,
        rate_limits=tasks_v2.RateLimits(max_dispatches_per_second=100),
        retry_config=retry_config(max_attempts=7),
    )
    updated = tasks_client.update_queue(queue=requested, update_mask={"paths": ["retry_config.max_attempts"]})
    assert updated.retry_config.max_attempts == 7
    assert updated.retry_config.min_backoff == datetime.timedelta(seconds=1)
    assert updated.rate_limits.max_dispatches_per_second == 5

    updated = tasks_client.update_queue(queue=requested, update_mask={"paths": ["rate_limits"]})
    assert updated.rate_limits.max_dispatches_per_second == 100
    assert updated.rate_limits.max_burst_size == 100
    assert tasks_client.get_queue(name=queue.name).rate_limits.max_dispatches_per_second == 100


def test_queue_defaults_are_the_service_defaults(tasks_client: tasks_v2.CloudTasksClient) -> None:
    queue = make_queue(tasks_client)
    assert queue.rate_limits.max_dispatches_per_second == 500
    assert queue.rate_limits.max_concurrent_dispatches == 1000
    assert queue.retry_config.max_attempts == 100
    assert queue.retry_config.min_backoff == datetime.timedelta(seconds=0.1)
    assert queue.retry_config.max_backoff == datetime.timedelta(seconds=3600)
    assert queue.retry_config.max_doublings == 16
    assert queue.state == tasks_v2.Queue.State.RUNNING


def test_basic_view_leaves_out_the_body_and_full_view_returns_it(
    tasks_client: tasks_v2.CloudTasksClient, task_target: RecordingTarget
) -> None:
    queue = make_queue(tasks_client)
    tasks_client.pause_queue(name=queue.name)
    created = tasks_client.create_task(parent=queue.name, task=http_task(task_target.url, "viewed"))
    assert created.http_request.body == b""
    full = tasks_client.get_task(request={"name": created.name, "response_view": tasks_v2.Task.View.FULL})
    assert full.http_request.body == b"{}"
    assert [t.name for t in tasks_client.list_tasks(parent=queue.name)] == [created.name]


def test_command_prints_its_addresses_and_stops_on_sigterm() -> None:
    repo_root = Path(__file__).resolve().parents[2]
    command = [sys.executable, "-m", "infra.local.cloud_tasks_emulator", "--host", "127.0.0.1", "--port", "0"]
    process = subprocess.Popen(
        command,
        cwd=repo_root,
        stdout=subprocess.PIPE,
        text=True,
        env=os.environ | {"PYTHONPATH": str(repo_root)},
    )
    try:
        assert process.stdout is not None
        printed = dict(process.stdout.readline().strip().split("=", 1) for _ in range(4))
        channel = grpc.insecure_channel(printed["CLOUD_TASKS_EMULATOR_HOST"])
        client = tasks_v2.CloudTasksClient(transport=CloudTasksGrpcTransport(channel=channel))
        assert make_queue(client).state == tasks_v2.Queue.State.RUNNING
        channel.close()
        assert requests.get(printed["CLOUD_TASKS_OIDC_CERTS_URL"], timeout=5).status_code == 200

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


# --- the application's task scheduler on the emulator ------------------------------------------------


def test_task_scheduler_creates_every_task_in_batches_and_counts_existing_names_as_created(
    tasks_client: tasks_v2.CloudTasksClient, task_target: RecordingTarget
) -> None:
    queue = make_queue(tasks_client)
    tasks_client.pause_queue(name=queue.name)
    scheduler = CloudTasksScheduler(tasks_client, queue.name, task_target.url, SERVICE_ACCOUNT, workers=3)
    at = datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=5)
    sends = [
        SendTask(message_id, 0, at, at + datetime.timedelta(seconds=message_id)) for message_id in range(250)
    ]

    scheduler.schedule(sends)
    scheduler.schedule(sends[:130])  # a redelivered page: every name exists, nothing is refused
    scheduler.schedule(sends[:1])

    listed = tasks_client.list_tasks(request={"parent": queue.name, "response_view": tasks_v2.Task.View.FULL})
    by_name = {t.name.rsplit("/", 1)[-1]: t for t in listed}
    assert sorted(by_name) == sorted(task_id(s) for s in sends)
    first = by_name[task_id(sends[7])]
    assert first.schedule_time == sends[7].at
    assert json.loads(first.http_request.body) == {"message_id": 7, "generation": 0}
    assert first.http_request.oidc_token.service_account_email == SERVICE_ACCOUNT


def test_task_scheduler_raises_when_a_task_of_a_batch_is_refused_for_another_reason(
    tasks_client: tasks_v2.CloudTasksClient, task_target: RecordingTarget
) -> None:
    queue = make_queue(tasks_client)
    tasks_client.pause_queue(name=queue.name)
    scheduler = CloudTasksScheduler(tasks_client, queue.name, task_target.url, SERVICE_ACCOUNT, workers=1)
    now = datetime.datetime.now(datetime.UTC)
    too_late = SendTask(1, 0, now, now + datetime.timedelta(days=31))

    with pytest.raises(TaskCreationRefused, match="1 of 2"):
        scheduler.schedule([SendTask(2, 0, now, now), too_late])
