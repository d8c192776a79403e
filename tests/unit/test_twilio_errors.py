from __future__ import annotations

from datetime import timedelta

import pytest

from shared.domain.twilio_errors import RETRY_DELAYS, ErrorClass, classify, describe, retry_delay


@pytest.mark.parametrize(
    ("http_status", "code"),
    [(429, 20429), (400, 30003), (400, 30008), (500, 30500), (503, 20503)],
)
def test_transient_twilio_errors_are_retried(http_status: int, code: int) -> None:
    assert classify(http_status, code) is ErrorClass.RETRY


@pytest.mark.parametrize("code", [63017, 63038])
def test_account_wide_throughput_limits_defer_without_using_a_retry(code: int) -> None:
    assert classify(429, code) is ErrorClass.DEFER
    assert classify(400, code) is ErrorClass.DEFER


@pytest.mark.parametrize("code", [63018, 63007, 21611])
def test_a_rate_limited_or_unusable_sender_pauses_that_sender(code: int) -> None:
    assert classify(429, code) is ErrorClass.PAUSE_SENDER
    assert classify(400, code) is ErrorClass.PAUSE_SENDER
    assert classify(None, code) is ErrorClass.PAUSE_SENDER  # as reported by a status callback


def test_metas_per_user_marketing_limit_is_its_own_final_reason() -> None:
    assert classify(None, 63049) is ErrorClass.MARKETING_LIMIT
    assert classify(400, 63049) is ErrorClass.MARKETING_LIMIT
    assert describe(63049) == (
        "Meta withheld this marketing message (per-user marketing limit) "
        "(63049; https://www.twilio.com/docs/api/errors/63049)"
    )


@pytest.mark.parametrize("code", [21211, 21614, 30005, 30006, 63024, 63016, 63003])
def test_permanent_errors_fail_at_once(code: int) -> None:
    assert classify(400, code) is ErrorClass.PERMANENT


@pytest.mark.parametrize("code", [21610, 63014])
def test_opt_out_errors_mean_the_user_opted_out(code: int) -> None:
    assert classify(400, code) is ErrorClass.OPT_OUT
    assert classify(None, code) is ErrorClass.OPT_OUT  # as reported by a status callback


@pytest.mark.parametrize(("http_status", "code"), [(401, 20003), (403, 30002), (401, 20005), (401, None)])
def test_bad_credentials_or_suspended_account_pause_the_campaign(http_status: int, code: int | None) -> None:
    assert classify(http_status, code) is ErrorClass.PAUSE_CAMPAIGN


def test_known_code_decides_over_the_http_status() -> None:
    assert classify(500, 21211) is ErrorClass.PERMANENT
    assert classify(400, 20429) is ErrorClass.RETRY


def test_timeout_before_any_response_is_retried() -> None:
    assert classify(None, None) is ErrorClass.RETRY


@pytest.mark.parametrize("http_status", [429, 500, 502, 503, 504])
def test_unknown_code_with_429_or_5xx_is_retried(http_status: int) -> None:
    assert classify(http_status, 99999) is ErrorClass.RETRY
    assert classify(http_status, None) is ErrorClass.RETRY


@pytest.mark.parametrize("http_status", [400, 404, 422])
def test_unknown_code_with_other_4xx_is_permanent(http_status: int) -> None:
    assert classify(http_status, 99999) is ErrorClass.PERMANENT


def test_unknown_code_reported_without_http_status_is_permanent() -> None:
    assert classify(None, 99999) is ErrorClass.PERMANENT


def test_retries_wait_1_then_5_then_15_minutes_then_give_up() -> None:
    assert RETRY_DELAYS == (60, 300, 900)
    assert [retry_delay(n) for n in (1, 2, 3, 4, 5)] == [
        timedelta(minutes=1),
        timedelta(minutes=5),
        timedelta(minutes=15),
        None,
        None,
    ]


def test_retry_delay_refuses_a_count_below_one() -> None:
    with pytest.raises(ValueError, match="starts at 1"):
        retry_delay(0)


def test_describe_known_code_says_what_it_means_and_where_to_read_more() -> None:
    assert describe(63016) == (
        "outside the 24-hour window: only an approved template (content_sid) may be sent "
        "(63016; https://www.twilio.com/docs/api/errors/63016)"
    )


def test_describe_unknown_code_still_points_to_the_reference() -> None:
    assert describe(12345) == "Twilio error (12345; https://www.twilio.com/docs/api/errors/12345)"


def test_retry_delay_follows_a_configured_schedule_then_gives_up() -> None:
    delays = (timedelta(seconds=1), timedelta(seconds=2))
    assert [retry_delay(n, delays) for n in (1, 2, 3)] == [*delays, None]
