"""Resource names, validated with the service's documented character sets and lengths."""

import re
import secrets

from infra.local.cloud_tasks_emulator.errors import invalid

_PARENT = re.compile(r"projects/[A-Za-z0-9\-:.]+/locations/[A-Za-z0-9\-]+")
_QUEUE = re.compile(rf"{_PARENT.pattern}/queues/[A-Za-z0-9\-]{{1,100}}")
_TASK = re.compile(rf"(?P<queue>{_QUEUE.pattern})/tasks/[A-Za-z0-9_\-]{{1,500}}")


def check_location(parent: str) -> str:
    if not _PARENT.fullmatch(parent):
        raise invalid(f"Invalid location name {parent!r}: expected projects/PROJECT_ID/locations/LOCATION_ID")
    return parent


def check_queue_name(name: str) -> str:
    if not _QUEUE.fullmatch(name):
        raise invalid(f"Invalid queue name {name!r}: expected projects/P/locations/L/queues/QUEUE_ID")
    return name


def check_task_name(name: str, queue_name: str) -> str:
    match = _TASK.fullmatch(name)
    if not match or match["queue"] != queue_name:
        raise invalid(f"Invalid task name {name!r}: expected {queue_name}/tasks/TASK_ID")
    return name


def queue_of_task(task_name: str) -> str:
    match = _TASK.fullmatch(task_name)
    if not match:
        raise invalid(f"Invalid task name {task_name!r}")
    return match["queue"]


def short_id(name: str) -> str:
    return name.rsplit("/", 1)[-1]


def generated_task_name(queue_name: str) -> str:
    # The service hands out long decimal ids; random ones keep the same shape and never collide in practice.
    return f"{queue_name}/tasks/{secrets.randbelow(10**20):020d}"
