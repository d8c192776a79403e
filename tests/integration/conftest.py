"""Fixtures for the send path's integration tests: the Twilio emulator (in process, through the real SDK)
and the send harness over it (tests/integration/send_harness.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from infra.local.twilio_emulator import TwilioEmulator
from tests.integration.send_harness import Harness


@pytest.fixture
def twilio() -> Iterator[TwilioEmulator]:
    with TwilioEmulator(callback_delay=0.01) as emulator:
        yield emulator


@pytest.fixture
def harness(engine: Engine, twilio: TwilioEmulator) -> Harness:
    return Harness(engine, twilio)
