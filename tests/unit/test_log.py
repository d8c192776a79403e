from __future__ import annotations

import io
import json
import logging

import pytest

from shared.config import Settings
from shared.log import JsonFormatter, mask_phone, set_trace

# API tokens are at least 32 bytes.
TOKEN_A = "token-a-" + "a" * 32
TOKEN_B = "token-b-" + "b" * 32


@pytest.fixture
def log_stream() -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("test.json")
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger, stream


def _entries(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("+14155550123", "+***0123"),
        ("whatsapp:+447700900123", "whatsapp:+***0123"),
        ("call +1 415-555-0123 now", "call +***0123 now"),
        ("from 14155550123.", "from ***0123."),
        ("(415) 555-0101", "***0101"),
        ("415-555-0101", "***0101"),
        ("415.555.0101", "***0101"),
        ("+1 415 555 0101", "+***0101"),
        ("+1 (415) 555-0101", "+***0101"),
        ("+44 (0)20 7946 0958", "+***0958"),
        ("020 7946 0958", "***0958"),
        ("01 23 45 67 89", "***6789"),
        # URL-encoded, as in a webhook's form: %2B is +, and + or %20 a space.
        ("%2B14155550101", "%2B***0101"),
        ("From=whatsapp%3A%2B14155550101&Body=STOP", "From=whatsapp%3A%2B***0101&Body=STOP"),
        ("From=whatsapp%3A%2B1+415+555+0101", "From=whatsapp%3A%2B***0101"),
        ("+1%20415%20555%200101", "+***0101"),
        ("whatsapp:+14155550101", "whatsapp:+***0101"),
        # Left alone: dates, times, offsets, SIDs, short and over-long numbers.
        ("order 42 shipped", "order 42 shipped"),
        ("at 2026-11-22 02:59:05", "at 2026-11-22 02:59:05"),
        ("2026-11-22T02:59:05.123456+00:00", "2026-11-22T02:59:05.123456+00:00"),
        ("22/11/2026 02:59", "22/11/2026 02:59"),
        ("SM0123456789abcdef0123456789abcd", "SM0123456789abcdef0123456789abcd"),
        ("message 1234567 of 9876543", "message 1234567 of 9876543"),
        ("id 1234567890123456789012", "id 1234567890123456789012"),
    ],
)
def test_mask_phone_keeps_only_the_last_four_digits(text: str, masked: str) -> None:
    assert mask_phone(text) == masked


def test_log_lines_are_json_with_severity_message_and_trace(
    log_stream: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = log_stream
    set_trace("105445aa7843bc8bf206b12000100000/1;o=1", "my-project")
    try:
        logger.warning("queued for %s", "+14155550123", extra={"recipient": "whatsapp:+14155550123"})
    finally:
        set_trace(None, "my-project")
    (entry,) = _entries(stream)
    assert entry["severity"] == "WARNING"
    assert entry["message"] == "queued for +***0123"
    assert entry["recipient"] == "whatsapp:+***0123"
    assert (
        entry["logging.googleapis.com/trace"] == "projects/my-project/traces/105445aa7843bc8bf206b12000100000"
    )


def test_secrets_in_settings_never_reach_a_log_line(log_stream: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = log_stream
    settings = Settings(twilio_auth_token="super-secret-token", api_tokens=f"{TOKEN_A},{TOKEN_B}")
    logger.info("settings: %s", settings, extra={"settings": settings.model_dump()})
    assert "super-secret-token" not in stream.getvalue()
    assert TOKEN_A not in stream.getvalue()
