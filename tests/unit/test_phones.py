from __future__ import annotations

import phonenumbers
import pytest
from hypothesis import given
from hypothesis import strategies as st
from phonenumbers import PhoneNumberFormat

from shared.domain.errors import InvalidPhone
from shared.domain.phones import is_supported_region, normalize_phone, try_normalize_phone, whatsapp_address

# Regions with an example mobile number: the numbers WhatsApp users actually have.
EXAMPLES = sorted(
    (region, number)
    for region in phonenumbers.SUPPORTED_REGIONS
    if (number := phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE))
)


@pytest.mark.parametrize(
    "raw",
    [
        "+14155552671",
        "+1 415 555 2671",
        "+1 (415) 555-2671",
        "(415) 555-2671",
        "415.555.2671",
        "  4155552671  ",
        "whatsapp:+14155552671",
        "WhatsApp:+1 415 555 2671",
        "001 415 555 2671",
    ],
)
def test_common_ways_of_writing_a_us_number_normalize_to_the_same_e164(raw: str) -> None:
    assert normalize_phone(raw, "US") == "+14155552671"


def test_leading_00_is_the_international_prefix_even_where_the_region_uses_another() -> None:
    assert normalize_phone("0044 20 7946 0958", "US") == "+442079460958"


def test_national_number_uses_the_configured_default_region() -> None:
    assert normalize_phone("020 7946 0958", "GB") == "+442079460958"
    assert normalize_phone("030 123456", "de") == "+4930123456"


def test_national_number_of_another_country_is_rejected_with_a_hint_about_the_region() -> None:
    with pytest.raises(InvalidPhone) as err:
        normalize_phone("020 7946 0958", "US")
    assert "read as a US number" in err.value.message
    assert err.value.details["field"] == "phone"
    assert err.value.details["value"] == "020 7946 0958"


@pytest.mark.parametrize(
    ("raw", "reason_part"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("whatsapp:", "empty"),
        ("hello", "letters"),
        ("1-800-FLOWERS", "letters"),
        ("+14155552671 ext. 12", "letters or an extension"),
        ("+", "not a phone number"),
        ("123", "too short"),
        ("+1 415 555 267111111", "too long"),
        ("+999 1234567", "unknown country calling code"),
        ("+1 555 555 5555", "not a valid number for country code +1"),
    ],
)
def test_invalid_number_reports_why(raw: str, reason_part: str) -> None:
    e164, reason = try_normalize_phone(raw, "US")
    assert e164 is None
    assert reason is not None and reason_part in reason
    with pytest.raises(InvalidPhone) as err:
        normalize_phone(raw, "US")
    assert err.value.code == "invalid_phone"
    assert reason in err.value.message


def test_unknown_default_region_is_reported_not_guessed() -> None:
    assert try_normalize_phone("4155552671", "XX") == (
        None,
        "unknown default region 'XX' (expected an ISO 3166 code such as US)",
    )


def test_valid_number_gives_no_reason() -> None:
    assert try_normalize_phone("+442079460958", "US") == ("+442079460958", None)


def test_whatsapp_address_round_trips_through_normalize() -> None:
    assert whatsapp_address("+14155552671") == "whatsapp:+14155552671"
    assert normalize_phone(whatsapp_address("+14155552671")) == "+14155552671"


@given(
    example=st.sampled_from(EXAMPLES),
    style=st.sampled_from(["e164", "international", "national", "whatsapp", "double_zero"]),
)
def test_any_valid_mobile_number_normalizes_to_its_e164_whatever_the_writing(
    example: tuple[str, phonenumbers.PhoneNumber], style: str
) -> None:
    region, number = example
    e164 = phonenumbers.format_number(number, PhoneNumberFormat.E164)
    written = {
        "e164": e164,
        "international": phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL),
        "national": phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL),
        "whatsapp": "whatsapp:" + e164,
        "double_zero": "00" + e164[1:],
    }[style]
    assert normalize_phone(written, region) == e164


def test_supported_regions_are_iso_codes_the_library_knows_in_any_case() -> None:
    assert is_supported_region("US") and is_supported_region("de")
    assert not is_supported_region("XX")
    assert not is_supported_region("001")  # the library's code for non-geographic numbers is no region


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("+44 07911 123456", "+447911123456"),  # a national prefix written after the country code
        ("+39 06 6982 0000", "+390669820000"),  # Italian numbers keep their leading zero
        ("+7 800 123 45 67", "+78001234567"),  # +7 is Russia and Kazakhstan, told apart by leading digits
        ("+1 613 555 0123", "+16135550123"),  # a Canadian number under the shared +1
    ],
)
def test_international_numbers_the_fast_path_leaves_or_takes_normalize_like_the_library(
    raw: str, e164: str
) -> None:
    assert normalize_phone(raw, "US") == e164
