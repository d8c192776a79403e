"""What the hostile-input tests share: the values an attacker sends, a process whose engine pools one
connection (so a connection left mid-statement would be the next request's), and the normal request that
must still get its own rows afterwards."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote_to_bytes

import pytest
from sqlalchemy import Engine, text

from shared import bootstrap
from shared.config import Settings, override_settings
from shared.log import JsonFormatter
from tests.conftest import make_settings
from tests.functions.api_client import ApiClient

PHONE_A, PHONE_B = "+14155550202", "+14155550203"
# Percent-encoded bytes for a URL or a form: what each breaks once decoded.
RAW_TEXT = {
    "NUL": "%00",
    "lone surrogate": "%ED%A0%80",  # UTF-8 cannot encode U+D800: these bytes are not UTF-8 either
    "not UTF-8": "%FF%FE",
}
# A JSON body nested far past any parser's limit.
DEEP = "[" * 100_000 + "]" * 100_000


def path_info(path: str) -> str:
    """PATH_INFO as a server hands it over: the raw bytes of the path, one character each. (The test client
    would decode percent-escapes itself, replacing what is not UTF-8, before the function sees them.)"""
    return unquote_to_bytes(path.partition("?")[0]).decode("latin-1")


def one_connection(database_url: str, **overrides: Any) -> Settings:
    """Settings for a process whose pool holds one connection: whatever a request leaves on it, the next
    request gets."""
    settings = make_settings(database_url, db_pool_size=1, db_max_overflow=0, **overrides)
    override_settings(settings)
    bootstrap.reset()
    return settings


def seed_users(engine: Engine) -> None:
    """The two users every normal request reads back, opted in with their window open (so a send works)."""
    with engine.begin() as conn:
        for phone, n in ((PHONE_A, 2), (PHONE_B, 3)):
            conn.execute(
                text(
                    "INSERT INTO users (phone_e164, attributes, consent_state, last_inbound_at)"
                    " VALUES (:p, CAST(:a AS jsonb), 'OPT_IN', now())"
                ),
                {"p": phone, "a": json.dumps({"n": n})},
            )


@pytest.fixture
def hostile_settings(database_url: str, engine: Engine) -> Iterator[Settings]:
    seed_users(engine)
    yield one_connection(database_url)
    bootstrap.reset()
    override_settings(None)


def answers_normally(api: ApiClient, after: str) -> None:
    """Each user read back as itself, on the process that just served `after`."""
    for phone, n in ((PHONE_A, 2), (PHONE_B, 3)):
        response = api.get(f"/v1/users/{phone}")
        assert response.status_code == 200, f"after {after}: {response.get_data(as_text=True)}"
        body = response.get_json()
        assert (body["phone"], body["attributes"]) == (phone, {"n": n}), f"after {after}"


def api_field(body: dict[str, Any]) -> str:
    """Where an API error says the problem is."""
    details = body["error"]["details"]
    if details.get("errors"):
        return str(details["errors"][0]["field"])
    for key in ("field", "path", "element", "line", "byte"):
        if key in details:
            return f"{key} {details[key]}" if key in ("element", "line", "byte") else str(details[key])
    raise AssertionError(f"the error names no field: {body}")


def sign_form(token: str, url: str, fields: list[tuple[bytes, bytes]]) -> str:
    """X-Twilio-Signature over raw bytes, as Twilio computes it over what it sends (the SDK's own signer
    takes text, so it cannot sign bytes that are not UTF-8)."""
    grouped: dict[bytes, set[bytes]] = {}
    for name, value in fields:
        grouped.setdefault(name, set()).add(value)
    signed = url.encode() + b"".join(
        name + value for name in sorted(grouped) for value in sorted(grouped[name])
    )
    return base64.b64encode(hmac.new(token.encode(), signed, hashlib.sha1).digest()).decode()


class LogLines(logging.Handler):
    """Every log line the process writes, as Cloud Logging would receive it."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(JsonFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def entries(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines]


@pytest.fixture
def log_lines() -> Iterator[LogLines]:
    handler = LogLines()
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield handler
    root.removeHandler(handler)
    root.setLevel(level)
