"""Consent keywords in inbound messages (docs/architecture.md, "Consent keywords").

A keyword counts only as the whole message: case-insensitive, ignoring surrounding whitespace and
punctuation ("stop", " Stop! ", "«STOP»"), but never inside a sentence ("please stop calling" is a message,
not an opt-out), which is how carriers and Twilio's own opt-out handling read them too.
"""

from __future__ import annotations

import unicodedata
from enum import StrEnum

from shared.domain.enums import ConsentState


class KeywordAction(StrEnum):
    STOP = "STOP"
    START = "START"
    HELP = "HELP"

    @property
    def consent_state(self) -> ConsentState | None:
        """The consent the keyword sets; HELP changes nothing."""
        return _CONSENT.get(self)


_CONSENT = {KeywordAction.STOP: ConsentState.STOP, KeywordAction.START: ConsentState.OPT_IN}

_KEYWORDS = {
    **dict.fromkeys(
        ("STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"), KeywordAction.STOP
    ),
    **dict.fromkeys(("START", "YES", "UNSTOP"), KeywordAction.START),
    **dict.fromkeys(("HELP", "INFO"), KeywordAction.HELP),
}
# Longer than any keyword plus generous punctuation: skip normalizing ordinary messages.
_MAX_KEYWORD_MESSAGE = 64


def classify_keyword(body: str | None) -> KeywordAction | None:
    if body is None or len(body) > _MAX_KEYWORD_MESSAGE:
        return None
    return _KEYWORDS.get(_strip_surroundings(body).upper())


def from_opt_out_type(value: str | None) -> KeywordAction | None:
    """Twilio's `OptOutType` webhook field (STOP, START, HELP) when its Advanced Opt-Out is on."""
    if value is None:
        return None
    try:
        return KeywordAction(value.strip().upper())
    except ValueError:
        return None


def _strip_surroundings(text: str) -> str:
    start, end = 0, len(text)
    while start < end and _is_noise(text[start]):
        start += 1
    while end > start and _is_noise(text[end - 1]):
        end -= 1
    return text[start:end]


def _is_noise(char: str) -> bool:
    # Unicode categories: P* punctuation (incl. ¡¿«»), Z* separators; plus ASCII whitespace and controls.
    return char.isspace() or unicodedata.category(char)[0] in "PZC"
