"""One WhatsApp send through the real `twilio` SDK, reduced to what the sender must decide on.

The distinction that matters is whether Twilio may have received the request: a refused or timed-out
connection sent nothing (safe to retry), while a read timeout or a connection dropped mid-request may
have been accepted (ambiguous: never resend, reconcile from the status callback instead).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Protocol

import requests
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, NameResolutionError, NewConnectionError

from shared.adapters.wire_gate import Withheld, gate

WHATSAPP = "whatsapp:"
_SDK_LOGGER = "twilio.http_client"


@dataclass(frozen=True)
class OutboundMessage:
    to: str
    status_callback: str
    body: str | None = None
    content_sid: str | None = None
    content_variables: dict[str, str] | None = None
    # A pool sender: a `whatsapp:+E164` number or a Messaging Service SID. None: the configured sender.
    from_: str | None = None


@dataclass(frozen=True)
class SendAttempt:
    sid: str | None = None
    # None when no HTTP answer arrived.
    http_status: int | None = None
    error_code: int | None = None
    error_message: str = ""
    # The request may have reached Twilio but no answer came back.
    ambiguous: bool = False
    # The last-moment check said no: not a byte was written, Twilio never saw it.
    withheld: bool = False


# Runs right before the request's first byte is written; may sleep; False withholds the request.
LastMoment = Callable[[], bool]


class MessageSender(Protocol):
    def send(self, message: OutboundMessage, last_moment: LastMoment | None = None) -> SendAttempt: ...


class TwilioMessageSender:
    def __init__(self, client: Client, from_: str | None, messaging_service_sid: str | None) -> None:
        if not from_ and not messaging_service_sid:
            raise RuntimeError("set TWILIO_FROM or TWILIO_MESSAGING_SERVICE_SID to send messages")
        # The SDK logs every request and response at INFO: ten JSON lines per send, several of them between
        # the rate slot and the call, a quarter of the SDK's CPU per send. Its warnings still come through.
        logging.getLogger(_SDK_LOGGER).setLevel(logging.WARNING)
        self._client = client
        self._from = from_ if not from_ or from_.startswith(WHATSAPP) else WHATSAPP + from_
        self._service = messaging_service_sid

    def send(self, message: OutboundMessage, last_moment: LastMoment | None = None) -> SendAttempt:
        try:
            with gate(last_moment) if last_moment is not None else nullcontext():
                created = self._client.messages.create(**self._arguments(message))
        except Withheld:
            return SendAttempt(withheld=True)
        except TwilioRestException as error:
            return SendAttempt(http_status=error.status, error_code=error.code, error_message=error.msg)
        except (requests.ConnectTimeout, requests.ConnectionError) as error:
            if _nothing_was_sent(error):
                return SendAttempt(error_message=f"could not connect to Twilio: {type(error).__name__}")
            return SendAttempt(ambiguous=True, error_message=f"connection lost mid-request: {error}")
        except requests.RequestException as error:
            return SendAttempt(ambiguous=True, error_message=f"no answer from Twilio: {type(error).__name__}")
        return SendAttempt(sid=created.sid)

    def _arguments(self, message: OutboundMessage) -> dict[str, object]:
        arguments: dict[str, object] = {
            "to": WHATSAPP + message.to,
            "status_callback": message.status_callback,
        }
        if message.from_ is not None:
            key = "messaging_service_sid" if message.from_.startswith("MG") else "from_"
            arguments[key] = message.from_
        elif self._service:
            arguments["messaging_service_sid"] = self._service
        else:
            arguments["from_"] = self._from
        if message.content_sid:
            arguments["content_sid"] = message.content_sid
            arguments["content_variables"] = json.dumps(message.content_variables or {})
        else:
            arguments["body"] = message.body
        return arguments


def _nothing_was_sent(error: requests.RequestException) -> bool:
    if isinstance(error, requests.ConnectTimeout):
        return True
    reason = error.args[0] if error.args else None
    if isinstance(reason, MaxRetryError):
        reason = reason.reason
    return isinstance(reason, (NewConnectionError, ConnectTimeoutError, NameResolutionError))
