"""Phone numbers to E.164, the one key a user has everywhere (imports, API, Twilio's `whatsapp:+…`).

Invalid numbers are reported with a reason, never guessed: letters (vanity numbers) and extensions are
refused rather than converted or dropped, because a WhatsApp address has neither.
"""

from __future__ import annotations

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat, ValidationResult

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


def try_normalize_phone(raw: str, default_region: str = "US") -> tuple[str | None, str | None]:
    """(E.164, None) or (None, reason). For bulk imports, where a bad row is reported, not raised."""
    region = default_region.upper()
    if region not in _SUPPORTED_REGIONS:
        return None, f"unknown default region {default_region!r} (expected an ISO 3166 code such as US)"
    text = raw.strip()
    if text[: len(WHATSAPP_PREFIX)].lower() == WHATSAPP_PREFIX:
        text = text[len(WHATSAPP_PREFIX) :].strip()
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


def normalize_phone(raw: str, default_region: str = "US") -> str:
    """E.164 (`+14155550123`) for a number written in any common way; raises `InvalidPhone` with a reason."""
    e164, reason = try_normalize_phone(raw, default_region)
    if e164 is None:
        raise InvalidPhone(f"invalid phone number {raw!r}: {reason}", field="phone", value=raw, reason=reason)
    return e164


def whatsapp_address(e164: str) -> str:
    """The `To`/`From` form Twilio expects for WhatsApp."""
    return WHATSAPP_PREFIX + e164


def _invalid_reason(number: phonenumbers.PhoneNumber, written_international: bool, region: str) -> str:
    problem = _POSSIBILITY_REASONS.get(
        phonenumbers.is_possible_number_with_reason(number), "not a valid number"
    )
    reason = f"{problem} for country code +{number.country_code}"
    if written_international:
        return reason
    return f"{reason} (read as a {region} number; write other countries' numbers with + and the country code)"
