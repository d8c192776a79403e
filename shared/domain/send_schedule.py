"""When each message should go: rate spacing, then quiet hours in the recipient's timezone. Pure.

Planning is only an estimate that keeps tasks from all arriving at once; the hard rate ceiling is the
rate limiter's admission at send time (shared/services/rate_limiter.py), which also covers deferrals and
retries. A planned time that falls inside the recipient's quiet hours moves to the window's end, never
dropped, and recipients deferred to the same window end are spread by the same spacing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from shared.domain.quiet_hours import QuietHours, is_quiet, window_end


@dataclass(frozen=True)
class PlannedSend:
    at: datetime
    # The quiet-hours window end this send was moved to, or None when it was not deferred.
    deferred_to: datetime | None


def spacing(rate_per_second: int, margin: float) -> timedelta:
    """The gap between two send starts that keeps every 1-second window at or under the rate."""
    return timedelta(seconds=(1 + margin) / rate_per_second)


def sendable_now(zones: Sequence[ZoneInfo], now: datetime, window: QuietHours | None) -> int:
    """How many of these recipients are outside quiet hours now: the planning cursor slots they need."""
    return sum(1 for zone in zones if not is_quiet(now, window, zone))


def plan_sends(
    zones: Sequence[ZoneInfo], now: datetime, start: datetime, step: timedelta, window: QuietHours | None
) -> list[PlannedSend]:
    """One planned send per recipient, in order.

    Recipients outside quiet hours now take consecutive slots from `start` (the `sendable_now` slots the
    caller reserved on the campaign's cursor); one whose slot lands inside its quiet hours, and every one
    inside them now, is deferred to its window end, spread by `step` among those sharing that end.
    """
    planned: list[PlannedSend] = []
    next_slot = 0
    deferred_per_end: dict[datetime, int] = {}
    for zone in zones:
        at = now
        if not is_quiet(now, window, zone):
            at = start + next_slot * step
            next_slot += 1
            if not is_quiet(at, window, zone):
                planned.append(PlannedSend(at, None))
                continue
        end = window_end(at, window, zone)
        position = deferred_per_end.get(end, 0)
        deferred_per_end[end] = position + 1
        planned.append(PlannedSend(end + position * step, end))
    return planned
