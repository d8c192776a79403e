"""The phone fast path against the library it stands in for: for any input, `fast_e164` either gives up
(None) or gives exactly the E.164 the library's parse + is_valid_number + format would, and
`try_normalize_phone` reaches the library's valid/invalid decision and E.164 every time.

The reference below calls phonenumbers directly, not our slow path, so the two share no code."""

from __future__ import annotations

import phonenumbers
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from phonenumbers import NumberParseException, PhoneNumberFormat, PhoneNumberType

from shared.domain.phones import fast_e164, try_normalize_phone

REGIONS = sorted(phonenumbers.SUPPORTED_REGIONS)
COUNTRY_CODES = sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE)
TYPES = [value for name, value in vars(PhoneNumberType).items() if name.isupper()]


def _examples() -> list[str]:
    """Every region's (and every non-geographic code's) example number of every type, in E.164."""
    numbers = [
        phonenumbers.example_number_for_type(region, number_type)
        for region in REGIONS
        for number_type in TYPES
    ]
    numbers += [
        phonenumbers.example_number_for_non_geo_entity(code)
        for code in phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS
    ]
    return sorted({phonenumbers.format_number(n, PhoneNumberFormat.E164) for n in numbers if n is not None})


EXAMPLES = _examples()


def library_e164(text: str, region: str) -> str | None:
    """What phonenumbers itself makes of an internationally written number ('00' read as '+')."""
    if text.startswith("00"):
        text = "+" + text[2:]
    try:
        number = phonenumbers.parse(text, region)
    except NumberParseException:
        return None
    if number.extension or not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


def assert_same_as_library(text: str, region: str = "US") -> None:
    expected = library_e164(text, region)
    assert fast_e164(text) in (None, expected), text
    assert try_normalize_phone(text, region)[0] == expected, text


def _international(e164: str) -> str:
    return phonenumbers.format_number(phonenumbers.parse(e164), PhoneNumberFormat.INTERNATIONAL)


@pytest.mark.parametrize("e164", EXAMPLES)
def test_every_example_number_of_every_type_and_region_matches_the_library(e164: str) -> None:
    for written in (e164, "00" + e164[1:], _international(e164)):
        assert_same_as_library(written)


def test_the_fast_path_answers_for_nearly_every_valid_example() -> None:
    # The rest (leading zeros as in Italy, a national prefix after the country code) go to the library.
    answered = [e164 for e164 in EXAMPLES if fast_e164(e164) == e164]
    assert len(answered) >= 0.95 * len(EXAMPLES)


_separator = st.sampled_from([" ", "-", ".", "(", ")", ""])


@st.composite
def written_with_separators(draw: st.DrawFn, digits: str) -> str:
    prefix = draw(st.sampled_from(["+", "00", "+ ", "+("]))
    return prefix + "".join(digit + draw(_separator) for digit in digits)


@settings(max_examples=3000)
@given(
    code=st.sampled_from(COUNTRY_CODES),
    rest=st.text(alphabet="0123456789", max_size=18),
    region=st.sampled_from(["US", "GB", "DE", "IT", "BR", "IN"]),
)
@example(code=44, rest="07911123456", region="GB")  # a national prefix after the country code
@example(code=39, rest="0612345678", region="US")  # an Italian leading zero
@example(code=7, rest="8001234567", region="US")  # RU/KZ share +7, told apart by leading digits
def test_random_digits_after_a_real_country_code_match_the_library(code: int, rest: str, region: str) -> None:
    assert_same_as_library(f"+{code}{rest}", region)


@settings(max_examples=2000)
@given(data=st.data(), e164=st.sampled_from(EXAMPLES))
def test_valid_numbers_with_one_digit_added_removed_or_changed_match_the_library(
    data: st.DataObject, e164: str
) -> None:
    digits = e164[1:]
    at = data.draw(st.integers(min_value=0, max_value=len(digits)))
    digit = data.draw(st.sampled_from("0123456789"))
    mutated = data.draw(
        st.sampled_from(
            [
                digits[:at] + digit + digits[at:],
                digits[:at] + digits[at + 1 :],
                digits[:at] + digit + digits[at + 1 :],
            ]
        )
    )
    assert_same_as_library("+" + mutated)


@settings(max_examples=1000)
@given(data=st.data(), e164=st.sampled_from(EXAMPLES))
def test_separators_anywhere_do_not_change_the_answer(data: st.DataObject, e164: str) -> None:
    assert_same_as_library(data.draw(written_with_separators(e164[1:])))


@pytest.mark.parametrize(
    "text",
    [
        "+1 415 555 2671 ext 5",  # letters: the library's business (and refused)
        "+1\u00a0415 555 2671",  # a no-break space
        "+1 415 555 2671#",
        "+1/415 555 2671",
        "++14155552671",
        "+\uff11\uff14\uff11\uff15\uff15\uff15\uff15\uff12\uff16\uff17\uff11",  # full-width digits
        "tel:+1-415-555-2671",
        "+1" + " " * 260 + "4155552671",  # longer than the library reads
        "+0014155552671",
        "+12",
    ],
)
def test_anything_unusual_is_left_to_the_library(text: str) -> None:
    assert fast_e164(text) is None
