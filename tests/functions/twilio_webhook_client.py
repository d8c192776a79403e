"""The webhook functions as Twilio reaches them: signed over the public URL Twilio was given, delivered to
an app that sees another host and scheme (as a function behind Google's front end does); and the rows
the webhook tests start from."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine, text
from twilio.request_validator import RequestValidator
from werkzeug.test import TestResponse

from shared.config import Settings
from tests.functions.apps import function_client

AUTH_TOKEN = "test-auth-token"
# What the function's own server sees: not the public URL, so request.url cannot be what was signed.
SERVER_BASE_URL = "http://10.0.0.1:8080"


class TwilioWebhookClient:
    def __init__(self, target: str, public_url: str) -> None:
        self.raw: FlaskClient = function_client(target)
        self.public_url = public_url
        self.path = "/" + target

    def signature(self, params: dict[str, Any], query: str = "", token: str = AUTH_TOKEN) -> str:
        url = f"{self.public_url}?{query}" if query else self.public_url
        return str(RequestValidator(token).compute_signature(url, params))

    def post(
        self,
        params: dict[str, Any],
        *,
        query: str = "",
        signature: str | None = None,
        idempotency_token: str | None = None,
    ) -> TestResponse:
        """POST form params signed for the public URL (+ query) unless a signature is given."""
        headers = {"X-Twilio-Signature": self.signature(params, query) if signature is None else signature}
        if idempotency_token is not None:
            headers["I-Twilio-Idempotency-Token"] = idempotency_token
        path = f"{self.path}?{query}" if query else self.path
        return self.raw.post(path, base_url=SERVER_BASE_URL, data=params, headers=headers)

    def post_unsigned(self, params: dict[str, Any]) -> TestResponse:
        return self.raw.post(self.path, base_url=SERVER_BASE_URL, data=params)


def count_rows(engine: Engine, table: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


def fetch_one(engine: Engine, sql: str, **params: Any) -> Any:
    with engine.connect() as conn:
        return conn.execute(text(sql), params).one()


def seed_campaign_message(engine: Engine, phone: str, *, status: str, provider_sid: str | None = None) -> int:
    """A message of a running campaign to an opted-in user; returns its id."""
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO users (phone_e164, consent_state) VALUES (:p, 'OPT_IN') ON CONFLICT DO NOTHING"
            ),
            {"p": phone},
        )
        names = {"n": uuid.uuid4().hex}
        template = conn.execute(
            text("INSERT INTO templates (name, content) VALUES (:n, 'Hi') RETURNING id"), names
        )
        segment = conn.execute(
            text("INSERT INTO segments (name, definition) VALUES (:n, '{}'::jsonb) RETURNING id"), names
        )
        campaign = conn.execute(
            text(
                "INSERT INTO campaigns (name, template_id, segment_id, status)"
                " VALUES ('c', :t, :s, 'RUNNING') RETURNING id"
            ),
            {"t": template.scalar_one(), "s": segment.scalar_one()},
        ).scalar_one()
        message_id = conn.execute(
            text(
                "INSERT INTO messages (campaign_id, recipient_phone, body, status, provider_sid)"
                " VALUES (:c, :p, 'Hi', :s, :sid) RETURNING id"
            ),
            {"c": campaign, "p": phone, "s": status, "sid": provider_sid},
        ).scalar_one()
    return int(message_id)


@pytest.fixture
def inbound(settings: Settings) -> Iterator[TwilioWebhookClient]:
    """The inbound webhook as Twilio calls it, signed for this test's settings."""
    assert settings.inbound_webhook_url is not None
    yield TwilioWebhookClient("inbound_webhook", settings.inbound_webhook_url)


def inbound_form(body: str, sender: str, **extra: str) -> dict[str, str]:
    """An inbound WhatsApp message's form, as Twilio posts it; `extra` adds or replaces fields."""
    return {
        "MessageSid": "SM" + uuid.uuid4().hex,
        "AccountSid": "AC" + "0" * 32,
        "From": sender,
        "To": "whatsapp:+14155238886",
        "Body": body,
        "NumMedia": "0",
        **extra,
    }
