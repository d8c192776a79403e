"""The send queues: one naming rule, each message's tasks always in the same queue, batches grouped by
queue, and the queues read as one by the health report (docs/architecture.md, "Send queues"). The same
on the real emulator: tests/emulators/test_send_queues_emulator.py."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from pydantic import ValidationError

from infra.local import functions_runner
from infra.local.stack_env import StackAddresses, build_env
from infra.local.tasks_queues import send_queue_concurrency, send_queue_rate
from shared.adapters.tasks import (
    MAX_BATCH,
    CloudTasksScheduler,
    QueueStatus,
    SendTask,
    combine_statuses,
    send_queue_index,
    send_queue_names,
)
from shared.config import Settings

UTC = datetime.UTC
NOW = datetime.datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LOCATION = "projects/p/locations/us-central1/queues"


def test_one_queue_keeps_the_plain_name_and_more_are_numbered_after_it() -> None:
    assert send_queue_names("send-messages", 1) == ["send-messages"]
    assert send_queue_names("send-messages", 3) == ["send-messages", "send-messages-1", "send-messages-2"]
    with pytest.raises(ValueError, match="at least one"):
        send_queue_names("send-messages", 0)


def test_the_queue_count_is_a_setting_of_1_to_64(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().tasks_queue_count == 1
    monkeypatch.setenv("TASKS_QUEUE_COUNT", "4")
    assert Settings().tasks_queue_count == 4
    for refused in ("0", "65"):
        monkeypatch.setenv("TASKS_QUEUE_COUNT", refused)
        with pytest.raises(ValidationError, match="tasks_queue_count"):
            Settings()


def test_messages_spread_evenly_and_each_stays_in_its_queue() -> None:
    counts = [0, 0, 0]
    for message_id in range(1, 3001):
        counts[send_queue_index(message_id, 3)] += 1
    assert counts == [1000, 1000, 1000]
    assert {send_queue_index(7, 1), send_queue_index(8, 1)} == {0}


# --- the scheduler, on a client that records what it is asked ---


@dataclass
class _Operation:
    failed: dict[int, Any] = field(default_factory=dict)

    def result(self, timeout: float) -> None:
        return None

    @property
    def metadata(self) -> Any:
        return type("Metadata", (), {"failed_requests": self.failed})()


@dataclass
class RecordingClient:
    created: list[tuple[str, str]] = field(default_factory=list)  # (parent, task name), one CreateTask each
    batches: list[tuple[str, list[str]]] = field(default_factory=list)  # (parent, each request's parent)
    looked_up: list[str] = field(default_factory=list)

    def create_task(self, parent: str, task: Any, timeout: float) -> None:
        self.created.append((parent, task.name))

    def batch_create_tasks(self, request: Any, timeout: float) -> _Operation:
        self.batches.append((request.parent, [r.parent for r in request.requests]))
        for r in request.requests:
            assert r.task.name.startswith(r.parent + "/tasks/")
        return _Operation()

    def get_task(self, name: str, timeout: float) -> None:
        self.looked_up.append(name)


def scheduler(client: RecordingClient, count: int) -> CloudTasksScheduler:
    paths = [f"{LOCATION}/{name}" for name in send_queue_names("send-messages", count)]
    return CloudTasksScheduler(client, paths, "https://x.test/send_message", "invoker@x", workers=2)


def sends(ids: Sequence[int], generation: int = 0) -> list[SendTask]:
    return [SendTask(message_id, generation, NOW, NOW) for message_id in ids]


def test_a_batch_call_creates_tasks_in_one_queue_only() -> None:
    client = RecordingClient()
    scheduler(client, 3).schedule(sends(range(1, 301)))

    assert sum(len(requests) for _, requests in client.batches) == 300
    for parent, requests in client.batches:
        assert set(requests) == {parent}
        assert len(requests) <= MAX_BATCH
    assert {parent for parent, _ in client.batches} == {
        f"{LOCATION}/send-messages",
        f"{LOCATION}/send-messages-1",
        f"{LOCATION}/send-messages-2",
    }


def test_one_queue_batches_as_before() -> None:
    client = RecordingClient()
    scheduler(client, 1).schedule(sends(range(250)))
    assert sorted(len(requests) for _, requests in client.batches) == [50, 100, 100]
    assert {parent for parent, _ in client.batches} == {f"{LOCATION}/send-messages"}


def test_every_generation_of_a_message_is_created_and_looked_up_in_its_queue() -> None:
    client = RecordingClient()
    queues = scheduler(client, 3)
    for generation in range(4):
        (task,) = sends([5], generation)
        queues.schedule([task])  # a lone task: one plain CreateTask
        assert queues.exists(task)
    assert {parent for parent, _ in client.created} == {f"{LOCATION}/send-messages-2"}  # 5 % 3
    assert len({name for _, name in client.created}) == 4
    assert all(name.startswith(f"{LOCATION}/send-messages-2/tasks/") for name in client.looked_up)


def test_a_scheduler_needs_a_queue() -> None:
    with pytest.raises(ValueError, match="at least one send queue"):
        CloudTasksScheduler(RecordingClient(), [], "https://x.test/send_message", "invoker@x", workers=1)


# --- the health report's view of several queues ---


def status(state: str = "RUNNING", tasks: int = 0, oldest: datetime.datetime | None = None) -> QueueStatus:
    return QueueStatus(state, tasks, oldest, concurrent_dispatches=tasks // 2, executed_last_minute=tasks * 3)


def test_the_queues_read_as_one_sum_their_tasks_and_keep_the_oldest_task() -> None:
    earlier, later = NOW - datetime.timedelta(minutes=20), NOW - datetime.timedelta(minutes=5)
    combined = combine_statuses([status(tasks=4, oldest=later), status(), status(tasks=2, oldest=earlier)])
    assert combined == QueueStatus("RUNNING", 6, earlier, 3, 18)
    assert combine_statuses([status(), status()]).oldest_scheduled_at is None
    assert combine_statuses([status(tasks=1, oldest=later)]) == status(tasks=1, oldest=later)


@pytest.mark.parametrize(
    ("states", "worst"),
    [
        (["RUNNING", "RUNNING"], "RUNNING"),
        (["RUNNING", "PAUSED", "RUNNING"], "PAUSED"),
        (["PAUSED", "DISABLED"], "DISABLED"),
        (["DISABLED", "STATE_UNSPECIFIED"], "STATE_UNSPECIFIED"),
    ],
)
def test_one_queue_that_sends_nothing_makes_them_all_not_running(states: list[str], worst: str) -> None:
    assert combine_statuses([status(state) for state in states]).state == worst


def test_no_status_is_nothing_to_combine() -> None:
    with pytest.raises(ValueError):
        combine_statuses([])


# --- the local stack's queues ---


def test_each_local_send_queue_dispatches_the_senders_rate_up_to_500_and_shares_the_sends_in_flight() -> None:
    assert (send_queue_rate(80), send_queue_rate(500), send_queue_rate(880)) == (80, 500, 500)
    assert [send_queue_concurrency(40, n) for n in (1, 2, 3, 64)] == [40, 20, 13, 1]


def test_the_local_stack_passes_the_queue_count_on() -> None:
    addresses = StackAddresses(
        database_url="postgresql+pg8000://postgres@127.0.0.1:1/x",
        pubsub_port=2,
        tasks_port=3,
        oidc_certs_url="http://127.0.0.1:4/certs",
        twilio_port=5,
        function_ports={name: 10 + i for i, name in enumerate(functions_runner.THREADS)},
        front_end_ports={name: 20 + i for i, name in enumerate(functions_runner.THREADS)},
        ca_bundle="ca-bundle.pem",
    )
    assert build_env(addresses, {})["TASKS_QUEUE_COUNT"] == "1"
    assert build_env(addresses, {"TASKS_QUEUE_COUNT": "3"})["TASKS_QUEUE_COUNT"] == "3"
