"""One queue at run time: its tasks, its token bucket, and the thread that dispatches them.

Every method except the dispatcher thread's own loop expects the caller to hold the shared lock. The
dispatcher sleeps on a condition until exactly the next moment something can change (the next task's
schedule time, the next token) or until it is notified (task added, queue resumed or reconfigured, an
attempt finished), so schedule times are met to the millisecond without polling.
"""

import collections
import datetime
import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass

import grpc
from google.cloud import tasks_v2
from google.rpc import status_pb2

from infra.local.cloud_tasks_emulator import http_dispatch, names
from infra.local.cloud_tasks_emulator.backoff import RetryPolicy
from infra.local.cloud_tasks_emulator.errors import RpcError, not_found
from infra.local.cloud_tasks_emulator.task_records import TaskRecord, TaskTombstones
from infra.local.cloud_tasks_emulator.token_bucket import TokenBucket

_log = logging.getLogger(__name__)


# QueueStats.executed_last_minute_count's window.
_EXECUTED_WINDOW_SECONDS = 60.0


@dataclass(frozen=True)
class Stats:
    """What v2beta3's QueueStats reports (infra/local/cloud_tasks_emulator/beta_service.py)."""

    tasks_count: int
    oldest_eta: datetime.datetime | None
    concurrent_dispatches: int
    executed_last_minute: int


class QueueRuntime:
    def __init__(
        self,
        queue: tasks_v2.Queue,
        lock: threading.RLock,
        executor: Executor,
        deliver: Callable[[http_dispatch.DispatchRequest], http_dispatch.AttemptOutcome],
        on_change: Callable[[], None],
        tombstone_ttl: float,
    ) -> None:
        self.queue = queue
        self._tasks: dict[str, TaskRecord] = {}
        self._tombstones = TaskTombstones(tombstone_ttl)
        self._heap: list[tuple[float, int, str]] = []
        self._sequence = itertools.count()
        self._bucket = TokenBucket(
            queue.rate_limits.max_dispatches_per_second, queue.rate_limits.max_burst_size
        )
        self._in_flight = 0
        self._replied_at: collections.deque[float] = collections.deque()
        self._executor = executor
        self._deliver = deliver
        self._on_change = on_change
        self._wakeup = threading.Condition(lock)
        self._closed = False
        self._thread = threading.Thread(
            target=self._run, name=f"dispatch-{names.short_id(queue.name)}", daemon=True
        )
        self._thread.start()

    # --- queue operations -------------------------------------------------------------------------

    def reconfigure(self, queue: tasks_v2.Queue) -> None:
        self.queue = queue
        self._bucket.reconfigure(
            queue.rate_limits.max_dispatches_per_second, queue.rate_limits.max_burst_size
        )
        self._changed()

    def set_state(self, state: tasks_v2.Queue.State) -> None:
        self.queue.state = state
        self._changed()

    def purge(self) -> None:
        for name in list(self._tasks):
            self._forget(name)
        self._changed()

    def close(self) -> None:
        self._closed = True
        self._tasks.clear()
        self._changed()

    def join(self) -> None:
        self._thread.join()

    @property
    def idle(self) -> bool:
        paused = self.queue.state != tasks_v2.Queue.State.RUNNING
        return self._in_flight == 0 and (paused or not self._tasks)

    def stats(self) -> Stats:
        now = time.time()
        while self._replied_at and self._replied_at[0] < now - _EXECUTED_WINDOW_SECONDS:
            self._replied_at.popleft()
        waiting = [record.eta for record in self._tasks.values() if record.heap_seq is not None]
        return Stats(
            tasks_count=len(self._tasks),
            oldest_eta=_utc(min(waiting)) if waiting else None,
            concurrent_dispatches=self._in_flight,
            executed_last_minute=len(self._replied_at),
        )

    # --- task operations --------------------------------------------------------------------------

    def add(self, task: tasks_v2.Task) -> None:
        if task.name in self._tasks or task.name in self._tombstones:
            raise RpcError(grpc.StatusCode.ALREADY_EXISTS, f"Requested entity already exists: {task.name}")
        record = TaskRecord(task=task, eta=task.schedule_time.timestamp())
        self._tasks[task.name] = record
        self._enqueue(record)
        self._changed()

    def task(self, name: str) -> tasks_v2.Task:
        return self._record(name).task

    def tasks(self) -> list[tasks_v2.Task]:
        return [record.task for record in sorted(self._tasks.values(), key=lambda r: (r.eta, r.task.name))]

    def delete(self, name: str) -> None:
        self._record(name)
        self._forget(name)
        self._changed()

    def run_now(self, name: str) -> tasks_v2.Task:
        """RunTask: dispatch at once, whatever the rate limits, the queue state or a running attempt."""
        record = self._record(name)
        record.heap_seq = None
        self._dispatch(record, time.time())
        self._changed()
        return record.task

    # --- dispatching ------------------------------------------------------------------------------

    def _run(self) -> None:
        with self._wakeup:
            while not self._closed:
                self._wakeup.wait(self._dispatch_due_tasks())

    def _dispatch_due_tasks(self) -> float | None:
        """Dispatch what may go now; return the seconds until something may go next (None: until notified)."""
        while self.queue.state == tasks_v2.Queue.State.RUNNING:
            record = self._next_waiting()
            if record is None or self._in_flight >= self.queue.rate_limits.max_concurrent_dispatches:
                return None
            now = time.time()
            if record.eta > now:
                return record.eta - now
            token_wait = self._bucket.seconds_until_token()
            if token_wait > 0:
                return token_wait
            heapq.heappop(self._heap)
            record.heap_seq = None
            self._bucket.take()
            self._dispatch(record, now)
        return None

    def _dispatch(self, record: TaskRecord, now: float) -> None:
        task = record.task
        request = http_dispatch.request_for(
            task,
            self.queue.name,
            eta=record.eta,
            execution_count=record.execution_count,
            previous=record.previous,
        )
        dispatched_at = _utc(now)
        if record.first_attempt_at is None:
            record.first_attempt_at = now
            task.first_attempt = tasks_v2.Attempt(dispatch_time=dispatched_at)
        task.dispatch_count += 1
        task.last_attempt = tasks_v2.Attempt(schedule_time=_utc(record.eta), dispatch_time=dispatched_at)
        record.in_flight += 1
        self._in_flight += 1
        self._executor.submit(self._attempt, record, request)

    def _attempt(self, record: TaskRecord, request: http_dispatch.DispatchRequest) -> None:
        try:
            outcome = self._deliver(request)
        except Exception:
            _log.exception("dispatching %s failed inside the emulator", record.task.name)
            outcome = http_dispatch.AttemptOutcome(
                http_status=None, retry_after_seconds=None, retry_reason="INTERNAL"
            )
        with self._wakeup:
            self._record_outcome(record, outcome, time.time())

    def _record_outcome(self, record: TaskRecord, outcome: http_dispatch.AttemptOutcome, now: float) -> None:
        record.in_flight -= 1
        self._in_flight -= 1
        task = record.task
        if self._tasks.get(task.name) is not record:  # deleted, purged or its queue closed meanwhile
            self._changed()
            return
        task.last_attempt.response_time = _utc(now)
        task.last_attempt.response_status = status_pb2.Status(
            code=outcome.rpc_code.value[0], message=outcome.retry_reason
        )
        if outcome.http_status is not None:
            self._replied_at.append(now)
            task.response_count += 1
            # The execution count leaves out 5xx answers, as the service documents for its header.
            if outcome.http_status < 500:
                record.execution_count += 1
        record.previous = outcome
        if outcome.succeeded:
            self._forget(task.name)
        elif record.in_flight == 0:  # with a RunTask attempt still out, that attempt decides what follows
            self._after_failure(record, outcome, now)
        self._changed()

    def _after_failure(self, record: TaskRecord, outcome: http_dispatch.AttemptOutcome, now: float) -> None:
        task = record.task
        policy = RetryPolicy.from_config(
            task.retry_config if "retry_config" in task else self.queue.retry_config
        )
        assert record.first_attempt_at is not None
        if policy.gives_up(task.dispatch_count, now - record.first_attempt_at):
            self._forget(task.name)
            return
        delay = outcome.retry_after_seconds
        if delay is None:
            delay = policy.delay_before_retry(task.dispatch_count)
        record.eta = now + delay
        task.schedule_time = _utc(record.eta)
        self._enqueue(record)

    # --- bookkeeping ------------------------------------------------------------------------------

    def _record(self, name: str) -> TaskRecord:
        record = self._tasks.get(name)
        if record is None:
            raise not_found(f"Requested entity was not found: {name}")
        return record

    def _enqueue(self, record: TaskRecord) -> None:
        record.heap_seq = next(self._sequence)
        heapq.heappush(self._heap, (record.eta, record.heap_seq, record.task.name))

    def _next_waiting(self) -> TaskRecord | None:
        while self._heap:
            _, seq, name = self._heap[0]
            record = self._tasks.get(name)
            if record is not None and record.heap_seq == seq:
                return record
            heapq.heappop(self._heap)  # superseded entry: the task ran, was rescheduled or is gone
        return None

    def _forget(self, name: str) -> None:
        del self._tasks[name]
        self._tombstones.add(name)

    def _changed(self) -> None:
        self._wakeup.notify()
        self._on_change()


def _utc(epoch_seconds: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(epoch_seconds, datetime.UTC)
