"""CreateTask's checks and defaults, with the service's limits."""

import datetime
from dataclasses import dataclass

from google.cloud import tasks_v2

from infra.local.cloud_tasks_emulator import names, queue_config
from infra.local.cloud_tasks_emulator.errors import invalid, unimplemented

MAX_SCHEDULE_AHEAD = datetime.timedelta(days=30)
MAX_TASK_BYTES = 100 * 1024
DEFAULT_DISPATCH_DEADLINE = datetime.timedelta(minutes=10)
MAX_DISPATCH_DEADLINE = datetime.timedelta(minutes=30)
_METHODS_WITH_BODY = {tasks_v2.HttpMethod.POST, tasks_v2.HttpMethod.PUT, tasks_v2.HttpMethod.PATCH}


@dataclass(frozen=True)
class TaskLimits:
    # The service refuses deadlines under 15 s; tests of deadline handling may lower this floor.
    min_dispatch_deadline: datetime.timedelta = datetime.timedelta(seconds=15)


def new_task(
    requested: tasks_v2.Task, queue_name: str, now: datetime.datetime, limits: TaskLimits
) -> tasks_v2.Task:
    """The task as stored: validated, named, scheduled, with its defaults filled in."""
    if len(tasks_v2.Task.serialize(requested)) > MAX_TASK_BYTES:
        raise invalid("Task size exceeds the 100KB limit")
    name = (
        names.check_task_name(requested.name, queue_name)
        if requested.name
        else names.generated_task_name(queue_name)
    )
    schedule_time = requested.schedule_time or now
    if schedule_time > now + MAX_SCHEDULE_AHEAD:
        raise invalid("Task.schedule_time must be at most 30 days in the future")
    return tasks_v2.Task(
        name=name,
        http_request=_checked_http_request(requested),
        schedule_time=schedule_time,
        create_time=now.replace(microsecond=0),
        dispatch_deadline=_checked_deadline(requested, limits),
        retry_config=queue_config.normalized_retry_config(requested.retry_config)
        if "retry_config" in requested
        else None,
        view=tasks_v2.Task.View.FULL,
    )


def _checked_http_request(requested: tasks_v2.Task) -> tasks_v2.HttpRequest:
    target = tasks_v2.Task.pb(requested).WhichOneof("message_type")
    if target == "app_engine_http_request":
        raise invalid("App Engine tasks are not supported by the Cloud Tasks emulator; use http_request")
    if target is None:
        raise invalid("Task.http_request is required")
    http = tasks_v2.HttpRequest(requested.http_request)
    if not http.url.startswith(("http://", "https://")):
        raise invalid(f"HttpRequest.url must start with http:// or https://, got {http.url!r}")
    if http.http_method == tasks_v2.HttpMethod.HTTP_METHOD_UNSPECIFIED:
        http.http_method = tasks_v2.HttpMethod(tasks_v2.HttpMethod.POST)
    if http.body and http.http_method not in _METHODS_WITH_BODY:
        raise invalid("HttpRequest.body is allowed only with POST, PUT or PATCH")
    if "oauth_token" in http:
        raise unimplemented("HttpRequest.oauth_token")
    if "oidc_token" in http and not http.oidc_token.service_account_email:
        raise invalid("OidcToken.service_account_email is required")
    return http


def _checked_deadline(requested: tasks_v2.Task, limits: TaskLimits) -> datetime.timedelta:
    if "dispatch_deadline" not in requested:
        return DEFAULT_DISPATCH_DEADLINE
    deadline: datetime.timedelta = requested.dispatch_deadline
    if not limits.min_dispatch_deadline <= deadline <= MAX_DISPATCH_DEADLINE:
        raise invalid(
            f"Task.dispatch_deadline must be between {limits.min_dispatch_deadline.total_seconds():g}s "
            f"and 30m, got {deadline.total_seconds():g}s"
        )
    return deadline
