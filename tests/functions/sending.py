"""Fixtures for tests that send through the `api` function: a Twilio emulator, and process settings (with a
fresh runtime) that point the app's Twilio client at it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from infra.local.twilio_emulator import TwilioEmulator
from shared import bootstrap
from shared.config import Settings, override_settings
from tests.conftest import make_settings


@pytest.fixture
def twilio() -> Iterator[TwilioEmulator]:
    with TwilioEmulator(callback_delay=0.01) as emulator:
        yield emulator


@pytest.fixture
def sending_settings(database_url: str, twilio: TwilioEmulator) -> Iterator[Settings]:
    settings = make_settings(
        database_url,
        twilio_account_sid=twilio.account_sid,
        twilio_auth_token=twilio.auth_token,
        twilio_api_url=twilio.base_url,
    )
    override_settings(settings)
    bootstrap.reset()
    yield settings
    bootstrap.reset()
    override_settings(None)
