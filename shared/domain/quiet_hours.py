"""Quiet hours, judged on the recipient's wall clock (never the server's).

A window `QuietHours(start, end)` covers local times `start <= t < end`; when `start > end` it crosses
midnight (22:00-08:00 covers 22:00..23:59 and 00:00..07:59). `start == end` means no quiet hours at all
(an always-quiet window would defer forever, so it cannot be expressed).

`window_end(at)` is when a message caught inside the window may go: the first instant at/after `at` when
the local clock reads `end`. Around DST changes this stays deterministic:
- `end` inside a spring-forward gap (02:30 on the night clocks jump 02:00 -> 03:00): the window ends
  when the clock jumps, i.e. the first instant after the gap.
- `end` inside an autumn fold (01:30 occurring twice): the first occurrence after `at`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from shared.domain.errors import InvalidTimezone


@dataclass(frozen=True)
class QuietHours:
    start: time
    end: time

    def __post_init__(self) -> None:
        if self.start.tzinfo is not None or self.end.tzinfo is not None:
            raise ValueError("quiet hours are local wall-clock times: pass times without tzinfo")

    @classmethod
    def from_columns(cls, start: time | None, end: time | None) -> QuietHours | None:
        """The campaign's pair of nullable columns (both or neither, by a CHECK)."""
        if start is None or end is None or start == end:
            return None
        return cls(start, end)

    def covers(self, local: time) -> bool:
        if self.start < self.end:
            return self.start <= local < self.end
        if self.start > self.end:
            return local >= self.start or local < self.end
        return False


# How a window is written in a setting (DEFAULT_QUIET_HOURS): "22:00-08:00"; "off" (or empty) for none.
_WINDOW_TEXT = re.compile(r"^([0-9]{1,2}):([0-9]{2})-([0-9]{1,2}):([0-9]{2})$")
OFF = ("", "off", "none")


def parse_window(text: str) -> QuietHours | None:
    """`"22:00-08:00"` (24-hour local wall-clock times, the window may cross midnight) as a window;
    `"off"`, `"none"` or empty as no window. Raises ValueError saying what is wrong and what is expected."""
    written = text.strip()
    if written.lower() in OFF:
        return None
    match = _WINDOW_TEXT.fullmatch(written.replace(" ", ""))
    expected = "expected HH:MM-HH:MM such as '22:00-08:00', or 'off' for none"
    if match is None:
        raise ValueError(f"{text!r}: {expected}")
    hours_start, minutes_start, hours_end, minutes_end = (int(part) for part in match.groups())
    try:
        start, end = time(hours_start, minutes_start), time(hours_end, minutes_end)
    except ValueError:
        raise ValueError(f"{text!r}: not a time of day; {expected}") from None
    if start == end:
        # An equal pair means "no quiet hours" in a campaign's columns: in a setting say so plainly.
        raise ValueError(f"{text!r}: start and end are the same time; write 'off' for no quiet hours")
    return QuietHours(start, end)


def format_window(window: QuietHours | None) -> str:
    """The inverse of `parse_window`: "22:00-08:00", or "off"."""
    if window is None:
        return "off"
    return f"{window.start:%H:%M}-{window.end:%H:%M}"


class ResolvedTimezone(NamedTuple):
    zone: ZoneInfo
    # Why a preferred name was not used (e.g. the user's attribute holds an unknown zone); None if it was.
    problem: str | None


def load_timezone(name: str) -> ZoneInfo:
    """An IANA zone by name; raises `InvalidTimezone` (for validating API input)."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError, OSError):  # OSError: "America" is a directory
        raise InvalidTimezone(
            f"unknown timezone {name!r}: use an IANA name such as 'America/New_York' or 'UTC'",
            field="timezone",
            value=name,
        ) from None


def resolve_timezone(user_tz: object, campaign_tz: object) -> ResolvedTimezone:
    """The recipient's zone: the user's `timezone` attribute, else the campaign's, else UTC. Never raises."""
    problems = []
    for source, name in (("user", user_tz), ("campaign", campaign_tz)):
        if name is None or name == "":
            continue
        if not isinstance(name, str):
            problems.append(f"{source} timezone {name!r} is not a name")
            continue
        try:
            return ResolvedTimezone(load_timezone(name), "; ".join(problems) or None)
        except InvalidTimezone:
            problems.append(f"{source} timezone {name!r} is unknown")
    return ResolvedTimezone(ZoneInfo("UTC"), "; ".join(problems) or None)


def is_quiet(at: datetime, window: QuietHours | None, tz: ZoneInfo | str) -> bool:
    if window is None:
        return False
    return window.covers(_local(at, tz).time())


def window_end(at: datetime, window: QuietHours | None, tz: ZoneInfo | str) -> datetime:
    """When a message due at `at` may be sent (in UTC): `at` itself if it is outside the window."""
    if not is_quiet(at, window, tz):
        return at.astimezone(UTC)
    assert window is not None
    zone = _zone(tz)
    local_day = _local(at, tz).date()
    # Two days ahead covers a window crossing midnight whose first candidate end was skipped by a DST gap.
    for day in (local_day + timedelta(days=offset) for offset in range(3)):
        for candidate in _instants_of(day, window.end, zone):
            if candidate > at and not window.covers(candidate.astimezone(zone).time()):
                return candidate
    raise AssertionError("unreachable: a non-empty window ends within two days")


def _instants_of(day: date, wall: time, zone: ZoneInfo) -> list[datetime]:
    """Every UTC instant at which the clock in `zone` reads `wall` on `day`; in a gap, the jump past it."""
    earlier = datetime.combine(day, wall, tzinfo=zone).astimezone(UTC)
    later = datetime.combine(day, wall, tzinfo=zone).replace(fold=1).astimezone(UTC)
    first, second = sorted((earlier, later))
    if first.astimezone(zone).replace(tzinfo=None) == datetime.combine(day, wall):
        return [first] if first == second else [first, second]
    return [_first_instant_at_or_after(day, wall, zone, low=first, high=second)]


def _first_instant_at_or_after(
    day: date, wall: time, zone: ZoneInfo, low: datetime, high: datetime
) -> datetime:
    """The clock skips `wall`: the first whole second in (low, high] whose local time is past it.

    Offsets change on whole seconds, so a bisection over whole seconds finds the jump exactly.
    """
    target = datetime.combine(day, wall)
    before, after = math.floor(low.timestamp()), math.ceil(high.timestamp())
    while after - before > 1:
        middle = (before + after) // 2
        if datetime.fromtimestamp(middle, zone).replace(tzinfo=None) >= target:
            after = middle
        else:
            before = middle
    return datetime.fromtimestamp(after, UTC)


def _zone(tz: ZoneInfo | str) -> ZoneInfo:
    return tz if isinstance(tz, ZoneInfo) else load_timezone(tz)


def _local(at: datetime, tz: ZoneInfo | str) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("quiet hours need an aware datetime (a naive one would mean the server's clock)")
    return at.astimezone(_zone(tz))


def describe_source(start: time | None, end: time | None, source: str) -> str:
    """A campaign's quiet hours in words, saying whether DEFAULT_QUIET_HOURS supplied them (the API's
    `quiet_hours_note` and the dashboard's campaign page)."""
    window = QuietHours.from_columns(start, end)
    from_default = source == "default"
    if window is None:
        return (
            "no quiet hours (DEFAULT_QUIET_HOURS is off)" if from_default else "no quiet hours (turned off)"
        )
    hours = f"{format_window(window)} in each recipient's timezone"
    return f"{hours}, from the default (DEFAULT_QUIET_HOURS)" if from_default else hours
