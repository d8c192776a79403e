from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.domain.errors import InvalidTimezone
from shared.domain.quiet_hours import QuietHours, is_quiet, load_timezone, resolve_timezone, window_end

NIGHT = QuietHours(time(22, 0), time(8, 0))
LUNCH = QuietHours(time(12, 0), time(13, 30))
NEW_YORK = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def test_window_within_a_day_covers_start_inclusive_end_exclusive() -> None:
    assert not is_quiet(utc(2024, 5, 1, 11, 59, 59), LUNCH, "UTC")
    assert is_quiet(utc(2024, 5, 1, 12, 0), LUNCH, "UTC")
    assert is_quiet(utc(2024, 5, 1, 13, 29, 59), LUNCH, "UTC")
    assert not is_quiet(utc(2024, 5, 1, 13, 30), LUNCH, "UTC")


def test_window_crossing_midnight_covers_late_evening_and_early_morning() -> None:
    assert is_quiet(utc(2024, 5, 1, 23, 0), NIGHT, "UTC")
    assert is_quiet(utc(2024, 5, 1, 3, 0), NIGHT, "UTC")
    assert not is_quiet(utc(2024, 5, 1, 8, 0), NIGHT, "UTC")
    assert not is_quiet(utc(2024, 5, 1, 21, 59), NIGHT, "UTC")


def test_quiet_hours_use_the_recipients_timezone_not_utc() -> None:
    noon_utc = utc(2024, 5, 1, 12, 0)  # 21:00 in Tokyo, 05:00 in Los Angeles
    assert not is_quiet(noon_utc, NIGHT, "Asia/Tokyo")
    assert is_quiet(noon_utc, NIGHT, "America/Los_Angeles")


def test_equal_start_and_end_means_no_quiet_hours() -> None:
    assert QuietHours.from_columns(time(9), time(9)) is None
    assert not is_quiet(utc(2024, 5, 1, 9, 0), QuietHours(time(9), time(9)), "UTC")


def test_no_window_is_never_quiet_and_ends_immediately() -> None:
    at = utc(2024, 5, 1, 3, 0)
    assert QuietHours.from_columns(None, None) is None
    assert not is_quiet(at, None, "UTC")
    assert window_end(at, None, "UTC") == at


def test_naive_datetime_is_refused_because_it_would_mean_the_server_clock() -> None:
    with pytest.raises(ValueError, match="aware"):
        is_quiet(datetime(2024, 5, 1, 3, 0), NIGHT, "UTC")


def test_window_end_outside_the_window_is_the_instant_itself() -> None:
    at = datetime(2024, 5, 1, 10, 0, tzinfo=BERLIN)
    assert window_end(at, NIGHT, BERLIN) == at
    assert window_end(at, NIGHT, BERLIN).tzinfo is UTC


def test_window_end_late_evening_is_next_morning_local_time() -> None:
    at = datetime(2024, 5, 1, 23, 15, tzinfo=NEW_YORK)
    assert window_end(at, NIGHT, NEW_YORK) == datetime(2024, 5, 2, 8, 0, tzinfo=NEW_YORK)


def test_window_end_after_midnight_is_the_same_morning() -> None:
    at = datetime(2024, 5, 2, 1, 0, tzinfo=NEW_YORK)
    assert window_end(at, NIGHT, NEW_YORK) == datetime(2024, 5, 2, 8, 0, tzinfo=NEW_YORK)


def test_window_end_of_a_daytime_window_is_later_that_day() -> None:
    assert window_end(utc(2024, 5, 1, 12, 45), LUNCH, "UTC") == utc(2024, 5, 1, 13, 30)


def test_window_end_in_new_york_spring_forward_gap_is_when_the_clock_jumps() -> None:
    # 2024-03-10: clocks jump 02:00 EST -> 03:00 EDT (07:00 UTC), so 02:30 never happens.
    window = QuietHours(time(22, 0), time(2, 30))
    at = datetime(2024, 3, 9, 23, 0, tzinfo=NEW_YORK)
    end = window_end(at, window, NEW_YORK)
    assert end == utc(2024, 3, 10, 7, 0)
    assert end.astimezone(NEW_YORK).time() == time(3, 0)
    assert is_quiet(end - timedelta(seconds=1), window, NEW_YORK)


def test_window_end_in_berlin_spring_forward_gap_is_when_the_clock_jumps() -> None:
    # 2024-03-31: clocks jump 02:00 CET -> 03:00 CEST (01:00 UTC).
    window = QuietHours(time(23, 0), time(2, 15))
    end = window_end(datetime(2024, 3, 31, 0, 30, tzinfo=BERLIN), window, BERLIN)
    assert end == utc(2024, 3, 31, 1, 0)


def test_window_end_in_new_york_autumn_fold_is_the_first_occurrence() -> None:
    # 2024-11-03: 01:00-01:59 happens twice, first EDT (UTC-4) then EST (UTC-5).
    window = QuietHours(time(22, 0), time(1, 30))
    end = window_end(datetime(2024, 11, 2, 23, 0, tzinfo=NEW_YORK), window, NEW_YORK)
    assert end == utc(2024, 11, 3, 5, 30)  # 01:30 EDT


def test_window_end_inside_the_repeated_hour_is_the_second_occurrence() -> None:
    # At 01:10 EST the clock reads inside the window again; it ends at 01:30 EST.
    window = QuietHours(time(22, 0), time(1, 30))
    at = utc(2024, 11, 3, 6, 10)
    assert is_quiet(at, window, NEW_YORK)
    assert window_end(at, window, NEW_YORK) == utc(2024, 11, 3, 6, 30)


def test_window_end_in_berlin_autumn_fold_is_the_first_occurrence() -> None:
    # 2024-10-27: 02:00-02:59 happens twice, CEST (UTC+2) then CET (UTC+1).
    window = QuietHours(time(21, 0), time(2, 30))
    end = window_end(datetime(2024, 10, 26, 22, 0, tzinfo=BERLIN), window, BERLIN)
    assert end == utc(2024, 10, 27, 0, 30)  # 02:30 CEST


def test_resolve_timezone_prefers_the_users_attribute() -> None:
    assert resolve_timezone("Asia/Tokyo", "Europe/Berlin") == (ZoneInfo("Asia/Tokyo"), None)


def test_resolve_timezone_falls_back_to_the_campaign_then_utc() -> None:
    assert resolve_timezone(None, "Europe/Berlin") == (BERLIN, None)
    assert resolve_timezone("", None) == (ZoneInfo("UTC"), None)


@pytest.mark.parametrize(
    ("user_tz", "problem"),
    [
        ("Mars/Olympus_Mons", "user timezone 'Mars/Olympus_Mons' is unknown"),
        ("America", "user timezone 'America' is unknown"),
        ("../../etc/passwd", "user timezone '../../etc/passwd' is unknown"),
        (-5, "user timezone -5 is not a name"),
    ],
)
def test_invalid_user_timezone_falls_back_to_the_campaign_with_the_reason(
    user_tz: object, problem: str
) -> None:
    assert resolve_timezone(user_tz, "Europe/Berlin") == (BERLIN, problem)


def test_invalid_user_and_campaign_timezones_fall_back_to_utc_naming_both() -> None:
    zone, problem = resolve_timezone("Nowhere/A", "Nowhere/B")
    assert zone == ZoneInfo("UTC")
    assert problem == "user timezone 'Nowhere/A' is unknown; campaign timezone 'Nowhere/B' is unknown"


def test_load_timezone_rejects_unknown_names_with_a_typed_error() -> None:
    with pytest.raises(InvalidTimezone) as err:
        load_timezone("Europe/Atlantis")
    assert err.value.details == {"field": "timezone", "value": "Europe/Atlantis"}
    assert "IANA" in err.value.message


_ZONES = st.sampled_from(["UTC", "America/New_York", "Europe/Berlin", "Australia/Lord_Howe", "Asia/Kolkata"])
_TIMES = st.times().map(lambda t: t.replace(microsecond=0))
_INSTANTS = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(UTC)
)


@given(at=_INSTANTS, start=_TIMES, end=_TIMES, zone=_ZONES)
def test_window_end_is_never_inside_the_window_and_never_before_now(
    at: datetime, start: time, end: time, zone: str
) -> None:
    window = QuietHours(start, end)
    end_at = window_end(at, window, zone)
    assert end_at >= at
    assert not is_quiet(end_at, window, zone)


@given(at=_INSTANTS, start=_TIMES, end=_TIMES)
def test_window_end_is_the_first_second_outside_the_window_where_clocks_do_not_change(
    at: datetime, start: time, end: time
) -> None:
    window = QuietHours(start, end)
    end_at = window_end(at, window, "Asia/Kolkata")
    if end_at > at:
        assert is_quiet(end_at - timedelta(seconds=1), window, "Asia/Kolkata")
        assert end_at - at <= timedelta(hours=24)
