"""Phone numbers to E.164, the one key a user has everywhere (imports, API, Twilio's `whatsapp:+…`).

Invalid numbers are reported with a reason, never guessed: letters (vanity numbers) and extensions are
refused rather than converted or dropped, because a WhatsApp address has neither.

Numbers already written internationally (`+…` or `00…`, digits and common separators) take a fast path
that decides validity from the library's own metadata, compiled once per country calling code: the
library's parse, validate and format cost ~50 µs a number, far too slow for a million-row import. The
fast path only ever answers "valid, and this is its E.164"; everything else (national numbers, odd
characters, national prefixes, invalid numbers that need a reason) goes through the library itself.
tests/unit/test_phone_fast_path.py holds it to the library's answers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

import phonenumbers
from phonenumbers import (
    COUNTRY_CODE_TO_REGION_CODE,
    NumberParseException,
    PhoneMetadata,
    PhoneNumberFormat,
    ValidationResult,
)

from shared.domain.errors import InvalidPhone

WHATSAPP_PREFIX = "whatsapp:"
_SUPPORTED_REGIONS = frozenset(phonenumbers.SUPPORTED_REGIONS)

_PARSE_REASONS = {
    NumberParseException.INVALID_COUNTRY_CODE: "unknown country calling code",
    NumberParseException.NOT_A_NUMBER: "not a phone number",
    NumberParseException.TOO_SHORT_AFTER_IDD: "too short to be a phone number",
    NumberParseException.TOO_SHORT_NSN: "too short to be a phone number",
    NumberParseException.TOO_LONG: "too long to be a phone number",
}
_POSSIBILITY_REASONS = {
    ValidationResult.TOO_SHORT: "too short",
    ValidationResult.TOO_LONG: "too long",
    ValidationResult.INVALID_LENGTH: "wrong number of digits",
}

# ASCII digits and separators only: nothing the library would read as an extension, a second number, a
# vanity letter or an RFC 3966 parameter, and every separator here is punctuation it simply drops.
_INTERNATIONAL = re.compile(r"(?:\+|00)[0-9 ().\-]+")
_SEPARATORS = str.maketrans("", "", " ().-")
# The library refuses longer input outright (TOO_LONG) and national numbers longer than 17 digits.
_MAX_INPUT_LENGTH = 250
_MAX_NATIONAL_LENGTH = 17
# The number types `is_valid_number` accepts, in the order its type helper tries them.
_TYPES = (
    "premium_rate",
    "toll_free",
    "shared_cost",
    "voip",
    "personal_number",
    "pager",
    "uan",
    "voicemail",
    "fixed_line",
)


def is_supported_region(code: str) -> bool:
    """Whether `code` is an ISO 3166 region the library has numbering rules for (case-insensitive)."""
    return code.upper() in _SUPPORTED_REGIONS


def try_normalize_phone(raw: str, default_region: str = "US") -> tuple[str | None, str | None]:
    """(E.164, None) or (None, reason). For bulk imports, where a bad row is reported, not raised."""
    if not is_supported_region(default_region):
        return None, f"unknown default region {default_region!r} (expected an ISO 3166 code such as US)"
    text = raw.strip()
    if text[: len(WHATSAPP_PREFIX)].lower() == WHATSAPP_PREFIX:
        text = text[len(WHATSAPP_PREFIX) :].strip()
    e164 = fast_e164(text)
    if e164 is not None:
        return e164, None
    return _normalize_with_library(text, default_region.upper())


def normalize_phone(raw: str, default_region: str = "US") -> str:
    """E.164 (`+14155550123`) for a number written in any common way; raises `InvalidPhone` with a reason."""
    e164, reason = try_normalize_phone(raw, default_region)
    if e164 is None:
        raise InvalidPhone(f"invalid phone number {raw!r}: {reason}", field="phone", value=raw, reason=reason)
    return e164


def whatsapp_address(e164: str) -> str:
    """The `To`/`From` form Twilio expects for WhatsApp."""
    return WHATSAPP_PREFIX + e164


def fast_e164(text: str) -> str | None:
    """The E.164 form of an internationally written number when it is certainly valid, else None
    (which means "ask the library", not "invalid"). Mirrors the library's parse (country code, national
    prefix, leading zeros) and `is_valid_number` (region by leading digits, then number-type patterns)."""
    if len(text) > _MAX_INPUT_LENGTH or not _INTERNATIONAL.fullmatch(text):
        return None
    digits = text[1 if text[0] == "+" else 2 :].translate(_SEPARATORS)
    # Fewer than 3 digits is not a number to the library; a leading 0 is no country code.
    if len(digits) < 3 or digits[0] == "0":
        return None
    for size in (1, 2, 3):
        if int(digits[:size]) in COUNTRY_CODE_TO_REGION_CODE:
            break
    else:
        return None
    national = digits[size:]
    # Leading zeros are kept by the library as a flag; leave those numbers (and lengths it refuses) to it.
    if not 2 <= len(national) <= _MAX_NATIONAL_LENGTH or national[0] == "0":
        return None
    country = _country_rules(int(digits[:size]))
    if country.strips_national_prefix(national) or not country.is_valid(national):
        return None
    return "+" + digits


@dataclass(frozen=True)
class _RegionRules:
    leading_digits: re.Pattern[str] | None
    # By national number length: the general pattern and any one number type, as one expression.
    valid_by_length: dict[int, re.Pattern[str]]

    def is_valid(self, national: str) -> bool:
        """`_number_type_helper(...) != UNKNOWN` for this region's metadata."""
        pattern = self.valid_by_length.get(len(national))
        return pattern is not None and pattern.fullmatch(national) is not None


@dataclass(frozen=True)
class _CountryRules:
    national_prefix: re.Pattern[str] | None
    regions: tuple[_RegionRules, ...]

    def strips_national_prefix(self, national: str) -> bool:
        """Whether parsing might strip or rewrite a national prefix (e.g. +44 07…): the library's business.
        An empty match capturing nothing leaves the number as it is."""
        if self.national_prefix is None:
            return False
        found = self.national_prefix.match(national)
        return found is not None and (found.end() > 0 or any(g is not None for g in found.groups()))

    def is_valid(self, national: str) -> bool:
        """`region_code_for_number` then `is_valid_number_for_region`, as the library does them."""
        if len(self.regions) == 1:
            return self.regions[0].is_valid(national)
        for region in self.regions:
            if region.leading_digits is not None:
                if region.leading_digits.match(national):
                    return region.is_valid(national)
            elif region.is_valid(national):
                return True
        return False


@cache
def _country_rules(country_code: int) -> _CountryRules:
    # Compiled on first use: loading every region's metadata up front would cost every process start.
    region_codes = COUNTRY_CODE_TO_REGION_CODE[country_code]
    main = PhoneMetadata.metadata_for_region_or_calling_code(country_code, region_codes[0])
    prefix = main.national_prefix_for_parsing if main is not None else None
    regions: tuple[_RegionRules, ...]
    if len(region_codes) == 1:
        regions = (_region_rules(main, use_leading_digits=False),) if main is not None else ()
    else:
        found = (PhoneMetadata.metadata_for_region(code.upper(), None) for code in region_codes)
        regions = tuple(_region_rules(metadata, use_leading_digits=True) for metadata in found if metadata)
    return _CountryRules(re.compile(prefix) if prefix else None, regions)


def _region_rules(metadata: PhoneMetadata, *, use_leading_digits: bool) -> _RegionRules:
    descs = [getattr(metadata, name) for name in _TYPES]
    if not metadata.same_mobile_and_fixed_line_pattern:
        descs.append(metadata.mobile)
    general = metadata.general_desc
    valid_by_length = {}
    # A desc matches a number when its pattern matches in full and, if it lists lengths, the length is one
    # of them (`_is_number_matching_desc`); a missing desc or empty pattern matches nothing.
    if general is not None and general.national_number_pattern:
        for length in range(2, _MAX_NATIONAL_LENGTH + 1):
            types = [d.national_number_pattern for d in descs if _admits(d, length)]
            if _admits(general, length) and types:
                # Lookahead: the general pattern must match the whole number too, not just some type.
                alternatives = "|".join(f"(?:{pattern})" for pattern in types)
                expression = f"(?=(?:{general.national_number_pattern})\\Z)(?:{alternatives})"
                valid_by_length[length] = re.compile(expression)
    leading = metadata.leading_digits if use_leading_digits else None
    return _RegionRules(re.compile(leading) if leading is not None else None, valid_by_length)


def _admits(desc: phonenumbers.PhoneNumberDesc | None, length: int) -> bool:
    return (
        desc is not None
        and bool(desc.national_number_pattern)
        and (not desc.possible_length or length in desc.possible_length)
    )


def _normalize_with_library(text: str, region: str) -> tuple[str | None, str | None]:
    if not text:
        return None, "empty phone number"
    if any(ch.isalpha() for ch in text):
        return None, "contains letters or an extension; write digits only, e.g. +14155550123"
    if text.startswith("00"):
        # International prefix used across Europe and elsewhere; phonenumbers only knows the region's own.
        text = "+" + text[2:]
    try:
        number = phonenumbers.parse(text, region)
    except NumberParseException as exc:
        return None, _PARSE_REASONS.get(exc.error_type, "not a phone number")
    if number.extension:
        return None, "contains an extension; a WhatsApp number has none"
    if not phonenumbers.is_valid_number(number):
        return None, _invalid_reason(number, written_international=text.startswith("+"), region=region)
    return phonenumbers.format_number(number, PhoneNumberFormat.E164), None


def _invalid_reason(number: phonenumbers.PhoneNumber, written_international: bool, region: str) -> str:
    problem = _POSSIBILITY_REASONS.get(
        phonenumbers.is_possible_number_with_reason(number), "not a valid number"
    )
    reason = f"{problem} for country code +{number.country_code}"
    if written_international:
        return reason
    return f"{reason} (read as a {region} number; write other countries' numbers with + and the country code)"
