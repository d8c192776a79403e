"""Keyset pagination: a cursor is the opaque, URL-safe encoding of the last row's sort key, so a page
costs one index range scan however deep it is, and rows inserted meanwhile never shift later pages."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from shared.boundary import Refused, parse_json
from shared.domain.errors import InvalidCursor

Row = TypeVar("Row")


@dataclass(frozen=True)
class Page(Generic[Row]):
    items: list[Row]
    # Pass back as `cursor` for the next page; None on the last page.
    next_cursor: str | None


def encode_cursor(key: Sequence[Any]) -> str:
    raw = json.dumps(list(key), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None, types: Sequence[type]) -> list[Any] | None:
    """The key a cursor holds, checked against the expected types; `InvalidCursor` naming `cursor` otherwise."""
    if cursor is None:
        return None
    try:
        # The boundary rule too: a forged cursor's text reaches the database as a bound parameter.
        key = parse_json(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)), "cursor")
    except (binascii.Error, ValueError, Refused):
        key = None
    if (
        not isinstance(key, list)
        or len(key) != len(types)
        or not all(type(value) is kind for value, kind in zip(key, types, strict=True))
        # A forged id beyond BIGINT would reach the database as an out-of-range error.
        or any(type(value) is int and abs(value) >= 2**63 for value in key)
    ):
        raise InvalidCursor("cursor is not one this API issued; pass next_cursor unchanged", field="cursor")
    return key


def page_of(rows: Sequence[Row], limit: int, key: Callable[[Row], Sequence[Any]]) -> Page[Row]:
    """Queries fetch `limit + 1` rows: the extra one only says whether another page exists."""
    items = list(rows[:limit])
    next_cursor = encode_cursor(key(items[-1])) if len(rows) > limit else None
    return Page(items, next_cursor)
