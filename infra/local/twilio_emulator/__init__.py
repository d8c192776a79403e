"""A local stand-in for Twilio's Messages API, used through the real `twilio` SDK
(docs/architecture.md, "Twilio emulator")."""

from .config import Outcome
from .emulator import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, TwilioEmulator

__all__ = ["DEFAULT_ACCOUNT_SID", "DEFAULT_AUTH_TOKEN", "Outcome", "TwilioEmulator"]
