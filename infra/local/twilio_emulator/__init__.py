"""A local stand-in for Twilio's Messages API, used through the real `twilio` SDK (ARCHITECTURE.md §8)."""

from .config import Outcome
from .emulator import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, TwilioEmulator

__all__ = ["DEFAULT_ACCOUNT_SID", "DEFAULT_AUTH_TOKEN", "Outcome", "TwilioEmulator"]
