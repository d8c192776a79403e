"""Is the system working: each check with its level (ok / warning / failing), what it measured and the
threshold that decides, so an operator (the API, the dashboard, `make smoke`) reads the reason, not a
colour. A check that cannot be made (the database is down) is failing, never skipped."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

from sqlalchemy import text

from shared.clock import Clock
from shared.db.queries import heartbeats, reports
from shared.db.unit_of_work import UnitOfWork

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


# An AMBIGUOUS message older than this has outlived several sweeps: reconciliation cannot settle it alone.
AMBIGUOUS_WARNING_AFTER = timedelta(minutes=15)
REPAIR_WINDOW = timedelta(hours=1)


def check_health(uow: UnitOfWork, clock: Clock, *, db_warning_after_ms: float) -> list[Check]:
    now = clock.now()
    with uow:
        started = time.perf_counter()
        uow.session.execute(text("SELECT 1"))
        latency_ms = 1000 * (time.perf_counter() - started)
        tick = heartbeats.last_beat(uow.session, heartbeats.SCHEDULER_TICK)
        ambiguous, oldest = reports.ambiguous_count(uow.session)
        repaired = reports.repairs_since(uow.session, now - REPAIR_WINDOW)
    return [
        database_check(latency_ms, db_warning_after_ms),
        _scheduler(tick, now),
        _reconciliation(ambiguous, oldest, repaired, now),
        _repairs(repaired),
    ]


def _reconciliation(
    ambiguous: int, oldest: datetime | None, repaired: dict[str, int], now: datetime
) -> Check:
    """Sends whose answer was lost, and what reconciliation made of them in the last hour."""
    overdue = oldest is not None and now - oldest > AMBIGUOUS_WARNING_AFTER
    conflicts = repaired["reconcile.conflict"]
    level = Level.WARNING if overdue or conflicts else Level.OK
    value = (
        f"{ambiguous} ambiguous now; last hour: {repaired['reconcile.found']} found at Twilio, "
        f"{repaired['reconcile.resent']} sent again, {conflicts} needing an operator"
    )
    threshold = (
        f"warning when one is ambiguous for over {AMBIGUOUS_WARNING_AFTER.total_seconds() / 60:.0f} min "
        "or Twilio holds several candidates for one"
    )
    return Check("reconciliation", level, value, threshold)


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
