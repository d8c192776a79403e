"""What an inbound message's fields say beyond their text: the body normalised for matching, and the
channel it came on (docs/architecture.md, "Conversations")."""

from __future__ import annotations

import re
import unicodedata
from enum import StrEnum

_SPACES = re.compile(r"\s+")


class Channel(StrEnum):
    WHATSAPP = "whatsapp"
    SMS = "sms"


def normalize_body(body: str | None) -> str | None:
    """NFKC, case-folded, trimmed, inner whitespace runs made one space: a full-width ' STOP ' and 'stop'
    match, as do 'Straße' and 'STRASSE'. NFKC again after case folding, as Unicode's NFKC_Casefold does, because folding
    can produce text that is no longer normalised. None for no body, or one that is only whitespace."""
    if body is None:
        return None
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", body).casefold())
    text = _SPACES.sub(" ", folded).strip()
    return text or None


def channel_of(raw_from: str | None) -> Channel | None:
    """Twilio writes a WhatsApp sender as `whatsapp:+E164` and an SMS sender as the bare number; other
    prefixes (messenger:, rcs:) are neither, and so is a missing From."""
    if raw_from is None or not raw_from.strip():
        return None
    value = raw_from.strip()
    if value.lower().startswith("whatsapp:"):
        return Channel.WHATSAPP
    return None if ":" in value else Channel.SMS
