"""DEFAULT_QUIET_HOURS: how the setting is written and refused, and how a campaign's quiet hours are put
in words; and the replaced system's segment leaves, which leave out `operator`."""

from __future__ import annotations

from datetime import time

import pytest
from pydantic import ValidationError

from shared.config import Settings
from shared.domain.errors import InvalidSegment
from shared.domain.quiet_hours import QuietHours, describe_source, format_window, parse_window
from shared.domain.segments import Condition, parse_segment


@pytest.mark.parametrize(
    ("written", "window"),
    [
        ("22:00-08:00", QuietHours(time(22), time(8))),
        ("21:00-08:00", QuietHours(time(21), time(8))),
        (" 9:30 - 17:45 ", QuietHours(time(9, 30), time(17, 45))),
        ("00:00-06:00", QuietHours(time(0), time(6))),
        ("off", None),
        ("OFF", None),
        ("none", None),
        ("", None),
    ],
)
def test_a_window_is_written_hh_mm_hh_mm_or_off(written: str, window: QuietHours | None) -> None:
    assert parse_window(written) == window


@pytest.mark.parametrize(
    ("written", "problem"),
    [
        ("22:00", "expected HH:MM-HH:MM"),
        ("22-08", "expected HH:MM-HH:MM"),
        ("22:00-08:00-09:00", "expected HH:MM-HH:MM"),
        ("10pm-8am", "expected HH:MM-HH:MM"),
        ("24:00-08:00", "not a time of day"),
        ("22:60-08:00", "not a time of day"),
        ("08:00-08:00", "write 'off' for no quiet hours"),
        ("yes", "expected HH:MM-HH:MM"),
    ],
)
def test_a_malformed_window_is_refused_saying_what_is_expected(written: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_window(written)


@pytest.mark.parametrize("window", [QuietHours(time(22), time(8)), QuietHours(time(9, 5), time(9, 6)), None])
def test_format_is_the_inverse_of_parse(window: QuietHours | None) -> None:
    assert parse_window(format_window(window)) == window


def test_the_setting_defaults_to_22_to_08() -> None:
    settings = Settings()

    assert settings.default_quiet_hours == "22:00-08:00"
    assert settings.default_quiet_hours_window == QuietHours(time(22), time(8))


def test_the_setting_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEFAULT_QUIET_HOURS", "21:00-08:00")
    assert Settings().default_quiet_hours_window == QuietHours(time(21), time(8))

    monkeypatch.setenv("DEFAULT_QUIET_HOURS", "off")
    assert Settings().default_quiet_hours_window is None


def test_a_malformed_setting_stops_start_up_naming_the_variable() -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(default_quiet_hours="22:00-25:00")

    assert "DEFAULT_QUIET_HOURS '22:00-25:00': not a time of day" in str(refused.value)


@pytest.mark.parametrize(
    ("start", "end", "source", "words"),
    [
        (
            time(22),
            time(8),
            "default",
            "22:00-08:00 in each recipient's timezone, from the default (DEFAULT_QUIET_HOURS)",
        ),
        (time(21), time(7), "explicit", "21:00-07:00 in each recipient's timezone"),
        (None, None, "explicit", "no quiet hours (turned off)"),
        (None, None, "default", "no quiet hours (DEFAULT_QUIET_HOURS is off)"),
    ],
)
def test_quiet_hours_in_words_say_where_they_came_from(
    start: time | None, end: time | None, source: str, words: str
) -> None:
    assert describe_source(start, end, source) == words


def test_a_leaf_without_an_operator_means_equals() -> None:
    assert parse_segment({"attribute": "city", "value": "Lima"}) == Condition("city", "equals", "Lima")


def test_leaves_without_operators_nest_inside_groups() -> None:
    node = parse_segment(
        {
            "operator": "OR",
            "conditions": [{"attribute": "city", "value": "Lima"}, {"attribute": "vip", "value": True}],
        }
    )

    assert [(c.attribute, c.operator, c.value) for c in node.conditions] == [  # type: ignore[union-attr]
        ("city", "equals", "Lima"),
        ("vip", "equals", True),
    ]


@pytest.mark.parametrize(
    "definition",
    [
        {"conditions": [{"attribute": "city", "value": "Lima"}]},
        {"condition": {"attribute": "city", "value": "Lima"}},
        {"attribute": "city", "conditions": []},
    ],
)
def test_a_group_still_needs_its_operator(definition: dict[str, object]) -> None:
    with pytest.raises(InvalidSegment) as refused:
        parse_segment(definition)

    assert refused.value.details == {"path": "operator"}
    assert "missing operator" in refused.value.message


def test_a_leaf_without_an_operator_still_needs_a_value() -> None:
    with pytest.raises(InvalidSegment) as refused:
        parse_segment({"attribute": "city"})

    assert refused.value.details == {"path": "value"}
