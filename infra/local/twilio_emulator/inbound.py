"""POST /_emulator/inbound: a user's WhatsApp message, delivered to the app's webhook as Twilio would."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .messages_api import Address
from .signed_post import SignedPoster
from .store import new_sid

# Twilio gives a webhook about 15 s before it calls the attempt failed.
WEBHOOK_TIMEOUT_SECONDS = 15.0
_POSTER = SignedPoster()


@dataclass(frozen=True)
class InboundMessage:
    sender: Address
    recipient: Address
    body: str
    message_sid: str
    profile_name: str
    # Extra webhook fields a test needs (OptOutType, ButtonPayload, ...), passed through as given.
    extra: dict[str, str]

    @classmethod
    def parse(cls, spec: Mapping[str, Any], default_recipient: str) -> InboundMessage:
        sender = Address.parse(_whatsapp(spec.get("from")))
        if sender is None:
            raise ValueError("from: expected a +E164 number (optionally prefixed whatsapp:)")
        recipient = Address.parse(_whatsapp(spec.get("to") or default_recipient))
        if recipient is None:
            raise ValueError("to: expected a +E164 number (optionally prefixed whatsapp:)")
        body, extra = spec.get("body", ""), spec.get("extra") or {}
        if not isinstance(body, str) or not isinstance(extra, Mapping):
            raise ValueError("body: expected a string; extra: expected an object of webhook fields")
        return cls(
            sender=sender,
            recipient=recipient,
            body=body,
            message_sid=str(spec.get("message_sid") or new_sid("SM")),
            profile_name=str(spec.get("profile_name") or "Emulated User"),
            extra={str(k): str(v) for k, v in extra.items()},
        )

    def webhook_params(self, account_sid: str) -> dict[str, str]:
        return {
            "AccountSid": account_sid,
            "ApiVersion": "2010-04-01",
            "MessageSid": self.message_sid,
            "SmsMessageSid": self.message_sid,
            "SmsSid": self.message_sid,
            "SmsStatus": "received",
            "MessageType": "text",
            "From": str(self.sender),
            "To": str(self.recipient),
            "Body": self.body,
            "NumMedia": "0",
            "NumSegments": "1",
            "ReferralNumMedia": "0",
            "ProfileName": self.profile_name,
            "WaId": self.sender.number.lstrip("+"),
        } | self.extra


def deliver(url: str, message: InboundMessage, account_sid: str, auth_token: str) -> dict[str, Any]:
    """Post the signed webhook and report the app's answer; PostFailed propagates to the caller."""
    response = _POSTER.post(
        url,
        message.webhook_params(account_sid),
        auth_token,
        # Same event, same token: a forced redelivery (same message_sid) looks like Twilio's retry.
        str(uuid.uuid5(uuid.NAMESPACE_URL, message.message_sid)),
        WEBHOOK_TIMEOUT_SECONDS,
    )
    return {"status": response.status, "body": response.text, "headers": response.headers}


def _whatsapp(raw: object) -> str:
    text = str(raw or "")
    return text if text.startswith("whatsapp:") else f"whatsapp:{text}"
