"""Twilio webhooks as received, and X-Twilio-Signature, the lock on the only two unauthenticated doors into
the system. Reading the fields behind the lock is shared.adapters.twilio_forms.

Twilio signs the exact URL it called. Behind Google's front end `request.url` is not that URL (the host,
scheme and port differ), so the URL is rebuilt from the configured public URL of the webhook function
plus the raw query string as received. Everything fails closed: no token, no public URL, no header, or
a body we cannot verify means the request is refused.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from urllib.parse import urlsplit

from pydantic import SecretStr

from shared.boundary import form_fields

SIGNATURE_HEADER = "X-Twilio-Signature"
# Twilio's JSON webhooks sign the URL, which carries the SHA-256 of the body in this query parameter.
BODY_HASH_PARAM = "bodySHA256"


def signed_url(public_url: str, query_string: str) -> str:
    """The URL Twilio called, as it signed it: the public URL and the query string exactly as received."""
    return f"{public_url}?{query_string}" if query_string else public_url


@dataclass(frozen=True)
class TwilioRequest:
    """A webhook as received, parsed once: the query string and either the form's fields or a JSON body.
    Text is decoded without loss (bytes that are not UTF-8 as lone surrogates), so the signature is checked
    over exactly what was sent and the boundary rule still refuses the bad field by name afterwards."""

    query_string: bytes
    query: list[tuple[str, str]]
    form: list[tuple[str, str]] | None  # None: a JSON body, signed through its hash in the query
    body: bytes

    @classmethod
    def parse(cls, mimetype: str, query_string: bytes, body: bytes) -> TwilioRequest:
        form = None if mimetype == "application/json" else form_fields(body)
        return cls(query_string, form_fields(query_string), form, body)


def is_valid_twilio_request(
    received: TwilioRequest, signature: str | None, public_url: str | None, auth_token: SecretStr | None
) -> bool:
    """Twilio's X-Twilio-Signature: HMAC-SHA1, keyed with the auth token, of the URL it called followed by
    every form field's name and value, sorted (the SDK's `compute_signature`). The fields are put in order
    once; the HMAC is taken over the URL as configured and, only when that fails, over the same URL with its
    default port toggled, as the SDK's `validate` does (Twilio has signed some webhooks with the port)."""
    if not signature or not public_url or auth_token is None or not auth_token.get_secret_value():
        return False
    url = signed_url(public_url, received.query_string.decode("latin-1"))
    if received.form is None:
        # Without the body hash in the signed URL nothing would cover the body: refuse.
        hashes = [value for name, value in received.query if name == BODY_HASH_PARAM]
        body_hash = hashlib.sha256(received.body).hexdigest()
        if len(hashes) != 1 or not hmac.compare_digest(hashes[0].encode(), body_hash.encode()):
            return False
        fields = b""
    else:
        fields = _signed_fields(received.form)
    key = auth_token.get_secret_value().encode()
    expected = signature.encode()
    return hmac.compare_digest(_signature(key, url, fields), expected) or hmac.compare_digest(
        _signature(key, _port_toggled(url), fields), expected
    )


def _signed_fields(form: list[tuple[str, str]]) -> bytes:
    values: dict[str, set[str]] = {}
    for name, value in form:
        values.setdefault(name, set()).add(value)
    text = "".join(name + value for name in sorted(values) for value in sorted(values[name]))
    return text.encode("utf-8", "surrogateescape")


def _signature(key: bytes, url: str, fields: bytes) -> bytes:
    digest = hmac.new(key, url.encode() + fields, hashlib.sha1).digest()
    return base64.b64encode(digest)


def _port_toggled(url: str) -> str:
    parts = urlsplit(url)
    if parts.port is not None:
        return parts._replace(netloc=parts.netloc.rsplit(":", 1)[0]).geturl()
    default = 443 if parts.scheme == "https" else 80
    return parts._replace(netloc=f"{parts.netloc}:{default}").geturl()
