"""Twilio webhooks as received: X-Twilio-Signature, the lock on the only two unauthenticated doors into
the system, and the fields behind it.

Twilio signs the exact URL it called. Behind Google's front end `request.url` is not that URL (the host,
scheme and port differ), so the URL is rebuilt from the configured public URL of the webhook function
plus the raw query string as received. Everything fails closed: no token, no public URL, no header, or
a body we cannot verify means the request is refused.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from flask import Request
from pydantic import SecretStr
from twilio.request_validator import RequestValidator
from werkzeug.datastructures import MultiDict

SIGNATURE_HEADER = "X-Twilio-Signature"
IDEMPOTENCY_HEADER = "I-Twilio-Idempotency-Token"
# Twilio's JSON webhooks sign the URL, which carries the SHA-256 of the body in this query parameter.
BODY_HASH_PARAM = "bodySHA256"
MESSAGE_ID_PARAM = "message_id"


def status_callback_url(base: str, message_id: int) -> str:
    """The StatusCallback for one message: `base` plus our message id, so a callback can be matched even
    when the create response (and with it the SID) was lost."""
    separator = "&" if urlsplit(base).query else "?"
    return f"{base}{separator}{urlencode({MESSAGE_ID_PARAM: message_id})}"


def signed_url(public_url: str, query_string: str) -> str:
    """The URL Twilio called, as it signed it: the public URL and the query string exactly as received."""
    return f"{public_url}?{query_string}" if query_string else public_url


def is_valid_twilio_request(request: Request, public_url: str | None, auth_token: SecretStr | None) -> bool:
    signature = request.headers.get(SIGNATURE_HEADER)
    if not signature or not public_url or auth_token is None or not auth_token.get_secret_value():
        return False
    url = signed_url(public_url, request.query_string.decode("latin-1"))
    validator = _validator(auth_token.get_secret_value())
    if request.mimetype == "application/json":
        # Without the body hash in the signed URL nothing would cover the body: refuse.
        if BODY_HASH_PARAM not in parse_qs(request.query_string.decode("latin-1")):
            return False
        return bool(validator.validate(url, request.get_data(as_text=True), signature))
    # The SDK's validate signs the URL both with and without its port, every time. The URL as configured is
    # always one of the two, and the one Twilio signs: check it alone first, then let the SDK try the other.
    if hmac.compare_digest(validator.compute_signature(url, request.form).encode(), signature.encode()):
        return True
    return bool(validator.validate(url, request.form, signature))


@lru_cache(maxsize=4)
def _validator(auth_token: str) -> RequestValidator:
    return RequestValidator(auth_token)


def webhook_params(request: Request) -> dict[str, Any]:
    """Every field as sent, for the raw record: a repeated field keeps all its values as a list.

    A JSON body that is not an object is kept whole under `_body`, so the record still shows what came.
    """
    if request.mimetype != "application/json":
        return flatten(request.form)
    text = request.get_data(as_text=True)
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    return parsed if isinstance(parsed, dict) else {"_body": text}


def flatten(fields: MultiDict[str, str]) -> dict[str, Any]:
    return {name: values[0] if len(values) == 1 else values for name, values in fields.lists()}


def single_value(params: Mapping[str, Any], name: str) -> str | None:
    """A webhook field that must appear once: None when missing, blank or repeated."""
    value = params.get(name)
    return value.strip() if isinstance(value, str) and value.strip() else None
