"""Queue settings: the service's defaults and limits, and UpdateQueue's field-mask merge."""

import math
from datetime import timedelta

from google.cloud import tasks_v2

from infra.local.cloud_tasks_emulator.errors import invalid, unimplemented

MAX_DISPATCHES_PER_SECOND = 500.0
MAX_CONCURRENT_DISPATCHES = 5000
DEFAULT_CONCURRENT_DISPATCHES = 1000
DEFAULT_MAX_ATTEMPTS = 100
DEFAULT_MIN_BACKOFF = timedelta(seconds=0.1)
DEFAULT_MAX_BACKOFF = timedelta(seconds=3600)
DEFAULT_MAX_DOUBLINGS = 16

_UPDATABLE = {
    "rate_limits",
    "rate_limits.max_dispatches_per_second",
    "rate_limits.max_concurrent_dispatches",
    "retry_config",
    "retry_config.max_attempts",
    "retry_config.max_retry_duration",
    "retry_config.min_backoff",
    "retry_config.max_backoff",
    "retry_config.max_doublings",
    "stackdriver_logging_config",
    "stackdriver_logging_config.sampling_ratio",
}


def burst_size(max_dispatches_per_second: float) -> int:
    """The bucket size the emulator picks, as the service does: it cannot be set by callers.

    The service documents its choice only as "generally at least equal to max_dispatches_per_second",
    capped at 500, so the emulator uses exactly that: one second's worth of tokens, at least one.
    """
    return max(1, min(500, math.ceil(max_dispatches_per_second)))


def normalized_rate_limits(given: tasks_v2.RateLimits) -> tasks_v2.RateLimits:
    rate = given.max_dispatches_per_second or MAX_DISPATCHES_PER_SECOND
    concurrent = given.max_concurrent_dispatches or DEFAULT_CONCURRENT_DISPATCHES
    if not 0 < rate <= MAX_DISPATCHES_PER_SECOND:
        raise invalid(f"rate_limits.max_dispatches_per_second must be in (0, 500], got {rate}")
    if not 0 < concurrent <= MAX_CONCURRENT_DISPATCHES:
        raise invalid(f"rate_limits.max_concurrent_dispatches must be in [1, 5000], got {concurrent}")
    return tasks_v2.RateLimits(
        max_dispatches_per_second=rate, max_burst_size=burst_size(rate), max_concurrent_dispatches=concurrent
    )


def normalized_retry_config(given: tasks_v2.RetryConfig) -> tasks_v2.RetryConfig:
    config = tasks_v2.RetryConfig(
        max_attempts=given.max_attempts or DEFAULT_MAX_ATTEMPTS,
        max_retry_duration=given.max_retry_duration if "max_retry_duration" in given else timedelta(0),
        min_backoff=given.min_backoff if "min_backoff" in given else DEFAULT_MIN_BACKOFF,
        max_backoff=given.max_backoff if "max_backoff" in given else DEFAULT_MAX_BACKOFF,
        max_doublings=given.max_doublings or DEFAULT_MAX_DOUBLINGS,
    )
    if config.max_attempts < -1:
        raise invalid(f"retry_config.max_attempts must be >= -1, got {config.max_attempts}")
    if config.max_doublings < 0:
        raise invalid(f"retry_config.max_doublings must be >= 0, got {config.max_doublings}")
    if config.min_backoff < timedelta(0) or config.max_retry_duration < timedelta(0):
        raise invalid("retry_config durations must not be negative")
    if config.max_backoff < config.min_backoff:
        raise invalid("retry_config.max_backoff must be >= retry_config.min_backoff")
    return config


def new_queue(requested: tasks_v2.Queue) -> tasks_v2.Queue:
    _reject_unsupported(requested)
    queue = tasks_v2.Queue(
        name=requested.name,
        rate_limits=normalized_rate_limits(requested.rate_limits),
        retry_config=normalized_retry_config(requested.retry_config),
        state=tasks_v2.Queue.State.RUNNING,
    )
    for passed_through in ("app_engine_routing_override", "stackdriver_logging_config"):
        if passed_through in requested:
            setattr(queue, passed_through, getattr(requested, passed_through))
    return queue


def updated_queue(current: tasks_v2.Queue, requested: tasks_v2.Queue, paths: list[str]) -> tasks_v2.Queue:
    """Apply UpdateQueue: only the masked fields change; an empty mask means every updatable field."""
    _reject_unsupported(requested)
    unknown = sorted(set(paths) - _UPDATABLE)
    if unknown:
        raise invalid(f"update_mask has fields that cannot be updated: {', '.join(unknown)}")
    merged = tasks_v2.Queue(current)
    for path in paths or ["rate_limits", "retry_config", "stackdriver_logging_config"]:
        message_name, _, field = path.partition(".")
        if field:
            setattr(getattr(merged, message_name), field, getattr(getattr(requested, message_name), field))
        else:
            setattr(merged, message_name, getattr(requested, message_name))
    merged.rate_limits = normalized_rate_limits(merged.rate_limits)
    merged.retry_config = normalized_retry_config(merged.retry_config)
    return merged


def _reject_unsupported(requested: tasks_v2.Queue) -> None:
    if "http_target" in requested:
        raise unimplemented("Queue.http_target")
