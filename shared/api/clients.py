"""Clients the API needs beyond the database, built on first use (never at import) and overridable."""

from __future__ import annotations

import threading

from shared.adapters.pubsub import Publisher, make_publisher
from shared.config import get_settings

_lock = threading.Lock()
_publisher: Publisher | None = None


def get_publisher() -> Publisher:
    global _publisher
    if _publisher is None:
        with _lock:
            if _publisher is None:
                _publisher = make_publisher(get_settings())
    return _publisher


def override_publisher(publisher: Publisher | None) -> None:
    """Use this publisher (tests), or None to build the real one again on next use."""
    global _publisher
    _publisher = publisher
