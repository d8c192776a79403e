"""CreateTask's checks and defaults, with the service's limits.

Works on the raw protobuf messages under google-cloud-tasks' proto-plus classes: every CreateTask of a
fan-out passes through here, and proto-plus attribute access cost more than the rest of the call.
"""

import datetime
from dataclasses import dataclass
from typing import Any

from google.cloud import tasks_v2
from google.protobuf import duration_pb2, timestamp_pb2

from infra.local.cloud_tasks_emulator import names, queue_config
from infra.local.cloud_tasks_emulator.errors import invalid, unimplemented

MAX_SCHEDULE_AHEAD = datetime.timedelta(days=30)
MAX_TASK_BYTES = 100 * 1024
DEFAULT_DISPATCH_DEADLINE = datetime.timedelta(minutes=10)
MAX_DISPATCH_DEADLINE = datetime.timedelta(minutes=30)
_METHODS_WITH_BODY = {tasks_v2.HttpMethod.POST, tasks_v2.HttpMethod.PUT, tasks_v2.HttpMethod.PATCH}
_MAX_AHEAD_NANOS = int(MAX_SCHEDULE_AHEAD.total_seconds()) * 10**9
# The raw message classes proto-plus generates at import (no _pb2 module to type them by: they are Any).
_TaskPb = tasks_v2.Task.pb()
_HttpRequestPb = tasks_v2.HttpRequest.pb()


@dataclass(frozen=True)
class TaskLimits:
    # The service refuses deadlines under 15 s; tests of deadline handling may lower this floor.
    min_dispatch_deadline: datetime.timedelta = datetime.timedelta(seconds=15)


def new_task(requested: Any, queue_name: str, now: datetime.datetime, limits: TaskLimits) -> tasks_v2.Task:
    """The task as stored (from a raw Task message): validated, named, scheduled, with its defaults."""
    if requested.ByteSize() > MAX_TASK_BYTES:
        raise invalid("Task size exceeds the 100KB limit")
    name = (
        names.check_task_name(requested.name, queue_name)
        if requested.name
        else names.generated_task_name(queue_name)
    )
    now_pb = timestamp_pb2.Timestamp()
    now_pb.FromDatetime(now)
    schedule_time = requested.schedule_time if requested.HasField("schedule_time") else now_pb
    if schedule_time.ToNanoseconds() > now_pb.ToNanoseconds() + _MAX_AHEAD_NANOS:
        raise invalid("Task.schedule_time must be at most 30 days in the future")
    task = _TaskPb(
        name=name,
        http_request=_checked_http_request(requested),
        schedule_time=schedule_time,
        create_time=timestamp_pb2.Timestamp(seconds=now_pb.seconds),
        dispatch_deadline=_checked_deadline(requested, limits),
        view=tasks_v2.Task.View.FULL,
    )
    if requested.HasField("retry_config"):
        retry = queue_config.normalized_retry_config(tasks_v2.RetryConfig.wrap(requested.retry_config))
        task.retry_config.CopyFrom(tasks_v2.RetryConfig.pb(retry))
    wrapped: tasks_v2.Task = tasks_v2.Task.wrap(task)  # proto-plus's wrap is untyped
    return wrapped


def _checked_http_request(requested: Any) -> Any:
    target = requested.WhichOneof("message_type")
    if target == "app_engine_http_request":
        raise invalid("App Engine tasks are not supported by the Cloud Tasks emulator; use http_request")
    if target is None:
        raise invalid("Task.http_request is required")
    http = _HttpRequestPb()
    http.CopyFrom(requested.http_request)
    if not http.url.startswith(("http://", "https://")):
        raise invalid(f"HttpRequest.url must start with http:// or https://, got {http.url!r}")
    if http.http_method == tasks_v2.HttpMethod.HTTP_METHOD_UNSPECIFIED:
        http.http_method = tasks_v2.HttpMethod.POST
    if http.body and http.http_method not in _METHODS_WITH_BODY:
        raise invalid("HttpRequest.body is allowed only with POST, PUT or PATCH")
    if http.HasField("oauth_token"):
        raise unimplemented("HttpRequest.oauth_token")
    if http.HasField("oidc_token") and not http.oidc_token.service_account_email:
        raise invalid("OidcToken.service_account_email is required")
    return http


def _checked_deadline(requested: Any, limits: TaskLimits) -> duration_pb2.Duration:
    deadline = duration_pb2.Duration()
    if not requested.HasField("dispatch_deadline"):
        deadline.FromTimedelta(DEFAULT_DISPATCH_DEADLINE)
        return deadline
    given = requested.dispatch_deadline.ToTimedelta()
    if not limits.min_dispatch_deadline <= given <= MAX_DISPATCH_DEADLINE:
        raise invalid(
            f"Task.dispatch_deadline must be between {limits.min_dispatch_deadline.total_seconds():g}s "
            f"and 30m, got {given.total_seconds():g}s"
        )
    deadline.CopyFrom(requested.dispatch_deadline)
    return deadline
