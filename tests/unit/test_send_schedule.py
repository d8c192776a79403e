from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from shared.domain.quiet_hours import QuietHours
from shared.domain.send_schedule import plan_sends, sendable_now, spacing

UTC_ZONE = ZoneInfo("UTC")
NIGHT = QuietHours(time(22), time(8))  # crosses midnight
NOW = datetime(2026, 3, 2, 12, tzinfo=UTC)


def test_spacing_keeps_any_second_at_or_under_the_rate_with_the_margin() -> None:
    assert spacing(20, 0.025) == timedelta(seconds=1.025 / 20)
    assert spacing(80, 0.0) == timedelta(seconds=1 / 80)


def test_without_quiet_hours_sends_take_consecutive_slots_from_the_start() -> None:
    start = NOW + timedelta(seconds=10)
    step = timedelta(milliseconds=50)

    plans = plan_sends([UTC_ZONE] * 3, NOW, start, step, None)

    assert [(p.at, p.deferred_to) for p in plans] == [
        (start, None),
        (start + step, None),
        (start + 2 * step, None),
    ]


def test_recipients_in_quiet_hours_now_wait_for_their_own_window_end_spread_by_the_step() -> None:
    la, tokyo = ZoneInfo("America/Los_Angeles"), ZoneInfo("Asia/Tokyo")  # 04:00 and 21:00 at NOW
    step = timedelta(seconds=1)

    plans = plan_sends([la, UTC_ZONE, la], NOW, NOW, step, NIGHT)

    la_end = datetime(2026, 3, 2, 16, tzinfo=UTC)
    assert [(p.at, p.deferred_to) for p in plans] == [(la_end, la_end), (NOW, None), (la_end + step, la_end)]
    assert sendable_now([la, UTC_ZONE, tokyo], NOW, NIGHT) == 2


def test_a_slot_that_lands_inside_quiet_hours_is_deferred_although_now_is_outside() -> None:
    tokyo = ZoneInfo("Asia/Tokyo")
    now = datetime(2026, 3, 2, 12, 59, 59, tzinfo=UTC)  # 21:59:59 in Tokyo
    step = timedelta(seconds=1)

    first, second = plan_sends([tokyo, tokyo], now, now, step, NIGHT)

    assert (first.at, first.deferred_to) == (now, None)
    tokyo_end = datetime(2026, 3, 2, 23, tzinfo=UTC)  # 08:00 the next morning in Tokyo
    assert (second.at, second.deferred_to) == (tokyo_end, tokyo_end)


def test_a_window_crossing_midnight_ends_the_next_morning() -> None:
    kolkata = ZoneInfo("Asia/Kolkata")
    late_evening = datetime(2026, 3, 2, 18, tzinfo=UTC)  # 23:30 in Kolkata

    (plan,) = plan_sends([kolkata], late_evening, late_evening, timedelta(seconds=1), NIGHT)

    assert plan.at == datetime(2026, 3, 3, 2, 30, tzinfo=UTC)  # 08:00 IST
