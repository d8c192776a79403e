"""Every queue and task the emulator holds, and the operations of the CloudTasks API on them."""

import datetime
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

import grpc
from google.cloud import tasks_v2

from infra.local.cloud_tasks_emulator import names, queue_config, task_validation
from infra.local.cloud_tasks_emulator.errors import RpcError, not_found
from infra.local.cloud_tasks_emulator.http_dispatch import AttemptOutcome, DispatchRequest
from infra.local.cloud_tasks_emulator.queue_runtime import QueueRuntime, Stats


@dataclass(frozen=True)
class Retention:
    """How long deleted names stay reserved. The service's windows are the defaults; tests may shorten them."""

    task_name_seconds: float = 3600.0
    queue_name_seconds: float = 7 * 24 * 3600.0


class EmulatorState:
    def __init__(
        self,
        executor: Executor,
        deliver: Callable[[DispatchRequest], AttemptOutcome],
        retention: Retention,
        task_limits: task_validation.TaskLimits,
    ) -> None:
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._executor = executor
        self._deliver = deliver
        self._retention = retention
        self._task_limits = task_limits
        self._queues: dict[str, QueueRuntime] = {}
        self._deleted_queues: dict[str, float] = {}

    # --- queues -----------------------------------------------------------------------------------

    def create_queue(self, parent: str, requested: tasks_v2.Queue) -> tasks_v2.Queue:
        names.check_location(parent)
        name = names.check_queue_name(requested.name)
        if not name.startswith(parent + "/queues/"):
            raise RpcError(grpc.StatusCode.INVALID_ARGUMENT, f"Queue {name} is not under {parent}")
        queue = queue_config.new_queue(requested)
        with self._lock:
            if name in self._queues:
                raise RpcError(grpc.StatusCode.ALREADY_EXISTS, f"Queue already exists: {name}")
            self._refuse_recently_deleted(name)
            self._queues[name] = self._runtime(queue)
            return tasks_v2.Queue(queue)

    def update_queue(self, requested: tasks_v2.Queue, paths: list[str]) -> tasks_v2.Queue:
        """UpdateQueue also creates a missing queue, as the service's does."""
        name = names.check_queue_name(requested.name)
        with self._lock:
            runtime = self._queues.get(name)
            if runtime is None:
                self._refuse_recently_deleted(name)
                queue = queue_config.new_queue(
                    queue_config.updated_queue(tasks_v2.Queue(name=name), requested, paths)
                )
                self._queues[name] = self._runtime(queue)
                return tasks_v2.Queue(queue)
            runtime.reconfigure(queue_config.updated_queue(runtime.queue, requested, paths))
            return tasks_v2.Queue(runtime.queue)

    def get_queue(self, name: str) -> tasks_v2.Queue:
        with self._lock:
            return tasks_v2.Queue(self._queue(name).queue)

    def get_queue_with_stats(self, name: str) -> tuple[tasks_v2.Queue, Stats]:
        with self._lock:
            runtime = self._queue(name)
            return tasks_v2.Queue(runtime.queue), runtime.stats()

    def list_queues(self, parent: str) -> list[tasks_v2.Queue]:
        names.check_location(parent)
        with self._lock:
            return [
                tasks_v2.Queue(rt.queue)
                for n, rt in sorted(self._queues.items())
                if n.startswith(parent + "/")
            ]

    def delete_queue(self, name: str) -> None:
        with self._lock:
            runtime = self._queue(name)
            del self._queues[name]
            self._deleted_queues[name] = time.monotonic() + self._retention.queue_name_seconds
            runtime.close()
        runtime.join()

    def purge_queue(self, name: str) -> tasks_v2.Queue:
        with self._lock:
            runtime = self._queue(name)
            runtime.purge()
            runtime.queue.purge_time = datetime.datetime.now(datetime.UTC)
            return tasks_v2.Queue(runtime.queue)

    def set_queue_state(self, name: str, state: tasks_v2.Queue.State) -> tasks_v2.Queue:
        with self._lock:
            runtime = self._queue(name)
            runtime.set_state(state)
            return tasks_v2.Queue(runtime.queue)

    # --- tasks ------------------------------------------------------------------------------------

    def create_task(self, parent: str, requested: Any) -> tasks_v2.Task:
        """CreateTask from the raw Task message; returns a copy of the task as stored."""
        (outcome,) = self.create_tasks(parent, [requested])
        if isinstance(outcome, RpcError):
            raise outcome
        return outcome

    def create_tasks(self, parent: str, requested: Sequence[Any]) -> list[tasks_v2.Task | RpcError]:
        """Create each raw Task message on its own, as BatchCreateTasks does (not atomic): a copy of each
        task as stored, or the error that refused it. A missing queue refuses the whole call."""
        queue_name = names.check_queue_name(parent)
        now = datetime.datetime.now(datetime.UTC)
        validated: list[tasks_v2.Task | RpcError] = []
        for task in requested:
            try:
                validated.append(task_validation.new_task(task, queue_name, now, self._task_limits))
            except RpcError as error:
                validated.append(error)
        outcomes: list[tasks_v2.Task | RpcError] = []
        # One lock hold for the batch: the dispatcher and other callers wait once, not once per task.
        with self._lock:
            queue = self._queue(queue_name)
            for outcome in validated:
                if isinstance(outcome, RpcError):
                    outcomes.append(outcome)
                    continue
                try:
                    queue.add(outcome)
                except RpcError as error:
                    outcomes.append(error)
                    continue
                outcomes.append(_copy(outcome))
        return outcomes

    def get_task(self, name: str) -> tasks_v2.Task:
        with self._lock:
            return _copy(self._queue(names.queue_of_task(name)).task(name))

    def list_tasks(self, parent: str) -> list[tasks_v2.Task]:
        with self._lock:
            return [_copy(task) for task in self._queue(names.check_queue_name(parent)).tasks()]

    def delete_task(self, name: str) -> None:
        with self._lock:
            self._queue(names.queue_of_task(name)).delete(name)

    def run_task(self, name: str) -> tasks_v2.Task:
        with self._lock:
            return _copy(self._queue(names.queue_of_task(name)).run_now(name))

    # --- whole emulator ---------------------------------------------------------------------------

    def wait_idle(self, timeout: float) -> bool:
        """Wait until nothing is in flight and every running queue is empty; False if `timeout` ran out."""
        with self._lock:
            return self._changed.wait_for(lambda: all(rt.idle for rt in self._queues.values()), timeout)

    def reset(self) -> None:
        """Forget every queue, task and reserved name, as if the emulator had just started."""
        with self._lock:
            runtimes = list(self._queues.values())
            self._queues.clear()
            self._deleted_queues.clear()
            for runtime in runtimes:
                runtime.close()
        for runtime in runtimes:
            runtime.join()

    # --- helpers ----------------------------------------------------------------------------------

    def _runtime(self, queue: tasks_v2.Queue) -> QueueRuntime:
        return QueueRuntime(
            queue,
            self._lock,
            self._executor,
            self._deliver,
            self._changed.notify_all,
            self._retention.task_name_seconds,
        )

    def _queue(self, name: str) -> QueueRuntime:
        runtime = self._queues.get(names.check_queue_name(name))
        if runtime is None:
            raise not_found(f"Queue does not exist: {name}")
        return runtime

    def _refuse_recently_deleted(self, name: str) -> None:
        if self._deleted_queues.get(name, 0.0) > time.monotonic():
            raise RpcError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"The queue cannot be created because a queue with this name existed too recently: {name}",
            )


def _copy(task: tasks_v2.Task) -> tasks_v2.Task:
    """A snapshot the caller may change or read after the lock is released. The raw message's CopyFrom,
    because proto-plus's copy constructor (a deepcopy) cost more than storing the task."""
    snapshot = tasks_v2.Task.pb()()
    snapshot.CopyFrom(tasks_v2.Task.pb(task))
    wrapped: tasks_v2.Task = tasks_v2.Task.wrap(snapshot)  # proto-plus's wrap is untyped
    return wrapped
