"""Is the system working: each check with its level (ok / warning / failing), what it measured and the
threshold that decides, so an operator (the API, the dashboard, `make smoke`) reads the reason, not a
colour. A check that cannot be made (the database is down) is failing, never skipped."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

from sqlalchemy import text

from shared.adapters.tasks import QueueInspector, QueueStatus
from shared.clock import Clock
from shared.config import Settings
from shared.db.queries import health as queries
from shared.db.queries import heartbeats, reports
from shared.db.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)

# The scheduler ticks every minute: one missed tick is normal, several are a stopped scheduler (then
# nothing scheduled starts and nothing left behind by a crash is repaired).
TICK_WARNING_AFTER = timedelta(minutes=3)
TICK_FAILING_AFTER = timedelta(minutes=10)


class Level(Enum):
    OK = "ok"
    WARNING = "warning"
    FAILING = "failing"


_SEVERITY = {Level.OK: 0, Level.WARNING: 1, Level.FAILING: 2}


@dataclass(frozen=True)
class Check:
    name: str
    level: Level
    value: str
    threshold: str
    detail: str = ""
    # When the thing measured happened, if it is an event (the last tick).
    at: datetime | None = None


def worst(checks: list[Check]) -> Level:
    return max((c.level for c in checks), key=_SEVERITY.__getitem__, default=Level.OK)


REPAIR_WINDOW = timedelta(hours=1)
WEBHOOK_WINDOW = timedelta(hours=1)
WEBHOOKS = ("status_webhook", "inbound_webhook")


@dataclass(frozen=True)
class Thresholds:
    """Where each check turns warning or failing; the operator's settings (README, "Configuration")."""

    db_warning_ms: float = 100.0
    queue_overdue_warning: timedelta = timedelta(minutes=5)
    queue_overdue_failing: timedelta = timedelta(minutes=30)
    queued_overdue: timedelta = timedelta(minutes=15)
    accepted_silent: timedelta = timedelta(hours=1)
    ambiguous_overdue: timedelta = timedelta(minutes=15)
    webhook_error_warning_percent: float = 5.0
    webhook_error_failing_percent: float = 25.0
    webhook_error_min_count: int = 5
    dead_letter_window: timedelta = timedelta(hours=24)

    @classmethod
    def from_settings(cls, settings: Settings) -> Thresholds:
        return cls(
            db_warning_ms=settings.health_db_warning_ms,
            queue_overdue_warning=timedelta(seconds=settings.health_queue_overdue_warning_seconds),
            queue_overdue_failing=timedelta(seconds=settings.health_queue_overdue_failing_seconds),
            queued_overdue=timedelta(seconds=settings.health_queued_overdue_seconds),
            accepted_silent=timedelta(seconds=settings.health_accepted_silent_seconds),
            ambiguous_overdue=timedelta(seconds=settings.health_ambiguous_overdue_seconds),
            webhook_error_warning_percent=settings.health_webhook_error_warning_percent,
            webhook_error_failing_percent=settings.health_webhook_error_failing_percent,
            webhook_error_min_count=settings.health_webhook_error_min_count,
            dead_letter_window=timedelta(hours=settings.health_dead_letter_window_hours),
        )


def check_health(
    uow: UnitOfWork, clock: Clock, thresholds: Thresholds, queue: Callable[[], QueueInspector]
) -> list[Check]:
    """Every check, in the order an operator reads them: can we store, is anything sending, is anything
    stuck, is anything arriving broken, what had to be repaired. `queue` builds the Cloud Tasks client
    (credentials are looked up then, and may be missing: the queue check fails, the others still run)."""
    now = clock.now()
    with uow:
        started = time.perf_counter()
        uow.session.execute(text("SELECT 1"))
        latency_ms = 1000 * (time.perf_counter() - started)
        tick = heartbeats.last_beat(uow.session, heartbeats.SCHEDULER_TICK)
        drain = heartbeats.last_beat(uow.session, DEAD_LETTER_DRAIN)
        repaired = reports.repairs_since(uow.session, now - REPAIR_WINDOW)
        stuck = {
            "queued": queries.queued_overdue(uow.session, now - thresholds.queued_overdue),
            "accepted": queries.accepted_silent(uow.session, now - thresholds.accepted_silent),
            "ambiguous": queries.ambiguous_overdue(uow.session, now - thresholds.ambiguous_overdue),
        }
        errors = queries.webhook_errors_since(uow.session, now - WEBHOOK_WINDOW)
        successes = queries.webhook_successes_since(uow.session, now - WEBHOOK_WINDOW)
        dead = queries.dead_letters_since(uow.session, now - thresholds.dead_letter_window)
    return [
        database_check(latency_ms, thresholds.db_warning_ms),
        _scheduler(tick, now),
        queue_check(read_queue(queue), now, thresholds),
        stuck_check(stuck, thresholds),
        webhook_check(errors, successes, thresholds),
        dead_letter_check(dead, drain, thresholds),
        _reconciliation(repaired),
        _repairs(repaired),
    ]


# The heartbeat the scheduler tick's dead-letter drain leaves (shared.services.dead_letters).
DEAD_LETTER_DRAIN = "dead_letter_drain"


def read_queue(queue: Callable[[], QueueInspector]) -> QueueStatus | str:
    try:
        return queue().status()
    except Exception as error:  # any failure to read is the answer: the check says which
        log.warning("health: the send queue could not be read", extra={"error": repr(error)})
        return f"{type(error).__name__}: {str(error)[:200]}"


def _minutes(delta: timedelta) -> str:
    return f"{delta.total_seconds() / 60:g} min"


def queue_check(status: QueueStatus | str, now: datetime, thresholds: Thresholds) -> Check:
    """The Cloud Tasks send queues, read as one (TASKS_QUEUE_COUNT of them; the inspector combines them):
    any paused or disabled sends nothing for its messages (failing); a waiting task far past its schedule
    time means the queues are behind (warning, then failing)."""
    threshold = (
        "failing when paused, disabled or unreadable; oldest waiting task overdue: warning at "
        f"{_minutes(thresholds.queue_overdue_warning)}, failing at {_minutes(thresholds.queue_overdue_failing)}"
    )
    if isinstance(status, str):
        return Check("send queue", Level.FAILING, f"cannot be read ({status})", threshold)
    overdue = (
        max(now - status.oldest_scheduled_at, timedelta(0))
        if status.oldest_scheduled_at is not None
        else timedelta(0)
    )
    value = (
        f"{status.state}, {status.tasks_count} tasks"
        + (f", oldest {overdue.total_seconds():.0f} s overdue" if overdue else "")
        + f", {status.executed_last_minute} run in the last minute"
    )
    if status.state != "RUNNING" or overdue >= thresholds.queue_overdue_failing:
        level = Level.FAILING
    elif overdue >= thresholds.queue_overdue_warning:
        level = Level.WARNING
    else:
        level = Level.OK
    return Check("send queue", level, value, threshold, at=status.oldest_scheduled_at)


def stuck_check(stuck: dict[str, queries.Stuck], thresholds: Thresholds) -> Check:
    """Messages past the time they should have moved: each kind means a step did not happen (a task that
    never ran, callbacks that never came, a send whose answer was lost and is still unsettled)."""
    value = (
        f"{stuck['queued'].count} queued past their send time, "
        f"{stuck['accepted'].count} accepted without a callback, "
        f"{stuck['ambiguous'].count} ambiguous"
    )
    threshold = (
        f"warning when any is queued {_minutes(thresholds.queued_overdue)} after its send time, accepted "
        f"{_minutes(thresholds.accepted_silent)} with no callback, or ambiguous for "
        f"{_minutes(thresholds.ambiguous_overdue)}"
    )
    oldest = min((s.oldest for s in stuck.values() if s.oldest is not None), default=None)
    level = Level.WARNING if any(s.count for s in stuck.values()) else Level.OK
    return Check("stuck messages", level, value, threshold, at=oldest)


def webhook_check(
    errors: dict[tuple[str, int], int], successes: dict[str, int], thresholds: Thresholds
) -> Check:
    """The Twilio webhooks' refusals in the last hour (bad signatures, bad input, bodies over the cap,
    503s) as a share of everything they answered."""
    refused = sum(errors.values())
    total = refused + sum(successes.values())
    percent = 100.0 * refused / total if total else 0.0
    by_status = ", ".join(
        f"{n} x {status} ({webhook.removesuffix('_webhook')})"
        for (webhook, status), n in sorted(errors.items())
    )
    value = f"last hour: {refused} of {total} refused ({percent:.1f}%)" + (
        f": {by_status}" if by_status else ""
    )
    threshold = (
        f"warning at {thresholds.webhook_error_warning_percent:g}%, failing at "
        f"{thresholds.webhook_error_failing_percent:g}%, from {thresholds.webhook_error_min_count} refusals"
    )
    if refused < thresholds.webhook_error_min_count:
        level = Level.OK
    elif percent >= thresholds.webhook_error_failing_percent:
        level = Level.FAILING
    elif percent >= thresholds.webhook_error_warning_percent:
        level = Level.WARNING
    else:
        level = Level.OK
    return Check("webhook errors", level, value, threshold)


def dead_letter_check(
    dead: tuple[int, datetime | None],
    drain: tuple[datetime, dict[str, object]] | None,
    thresholds: Thresholds,
) -> Check:
    """Pages Pub/Sub gave up on, as the scheduler tick drained them into dead_letters; failing when the
    last drain could not read the subscription (then the count would be a guess)."""
    count, newest = dead
    window = f"{thresholds.dead_letter_window.total_seconds() / 3600:g} h"
    threshold = f"warning when any page was dead-lettered in the last {window}; failing when the drain fails"
    value = f"{count} dead-lettered pages in the last {window}"
    if drain is not None and drain[1].get("error"):
        return Check(
            "dead letters",
            Level.FAILING,
            f"{value}; last drain failed: {drain[1]['error']}",
            threshold,
            at=drain[0],
        )
    if drain is None:
        value += "; never drained yet (the scheduler tick drains them)"
    return Check("dead letters", Level.WARNING if count else Level.OK, value, threshold, at=newest)


def _reconciliation(repaired: dict[str, int]) -> Check:
    """What reconciliation made of lost answers in the last hour (an AMBIGUOUS message waiting too long is
    the stuck-messages check's)."""
    conflicts = repaired["reconcile.conflict"]
    value = (
        f"last hour: {repaired['reconcile.found']} found at Twilio, "
        f"{repaired['reconcile.resent']} sent again, {conflicts} needing an operator"
    )
    threshold = "warning when Twilio holds several candidates for one send (an operator decides)"
    return Check("reconciliation", Level.WARNING if conflicts else Level.OK, value, threshold)


def _repairs(repaired: dict[str, int]) -> Check:
    """What the sweeper had to repair in the last hour: each one means something crashed or was lost."""
    done = {
        "senders gone": repaired["repair.marked_ambiguous"],
        "tasks re-created": repaired["repair.task_recreated"],
        "pages republished": repaired["repair.page_republished"],
    }
    value = "last hour: " + ", ".join(f"{n} {what}" for what, n in done.items())
    level = Level.WARNING if any(done.values()) else Level.OK
    return Check("repairs", level, value, "warning when anything had to be repaired in the last hour")


def database_check(latency_ms: float, warning_after_ms: float) -> Check:
    level = Level.OK if latency_ms < warning_after_ms else Level.WARNING
    return Check(
        "database",
        level,
        f"reachable, {latency_ms:.1f} ms round trip",
        f"warning at {warning_after_ms:.0f} ms; failing when unreachable",
    )


def _scheduler(tick: tuple[datetime, dict[str, object]] | None, now: datetime) -> Check:
    threshold = (
        f"warning after {TICK_WARNING_AFTER.total_seconds() / 60:.0f} min without a tick, "
        f"failing after {TICK_FAILING_AFTER.total_seconds() / 60:.0f} min"
    )
    if tick is None:
        return Check("scheduler", Level.FAILING, "no tick recorded yet", threshold)
    at, detail = tick
    age = now - at
    level = (
        Level.OK
        if age <= TICK_WARNING_AFTER
        else Level.WARNING
        if age <= TICK_FAILING_AFTER
        else Level.FAILING
    )
    summary = ", ".join(f"{k}: {v}" for k, v in sorted(detail.items()))
    return Check("scheduler", level, f"last tick {age.total_seconds():.0f} s ago", threshold, summary, at)
