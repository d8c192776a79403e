"""Signature checks against signatures built with Twilio's own SDK, on real Flask requests."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from flask import Flask, Request
from pydantic import SecretStr
from twilio.request_validator import RequestValidator

from shared.adapters.twilio_signature import SIGNATURE_HEADER, TwilioRequest, is_valid_twilio_request

TOKEN = SecretStr("secret-token")
PUBLIC_URL = "https://hooks.example.test/status_webhook"
PARAMS = {"MessageSid": "SM" + "a" * 32, "MessageStatus": "delivered", "To": "whatsapp:+14155550100"}


def _sign(url: str, params: Any, token: str = TOKEN.get_secret_value()) -> str:
    return str(RequestValidator(token).compute_signature(url, params))


def _request(
    *,
    query: str = "",
    data: dict[str, Any] | None = None,
    body: str | None = None,
    signature: str | None = None,
    base_url: str = "http://10.0.0.1:8080",
) -> Request:
    headers = {"X-Twilio-Signature": signature} if signature is not None else {}
    path = f"/status_webhook?{query}" if query else "/status_webhook"
    app = Flask(__name__)
    if body is not None:
        context = app.test_request_context(
            path,
            method="POST",
            base_url=base_url,
            data=body,
            content_type="application/json",
            headers=headers,
        )
    else:
        context = app.test_request_context(path, method="POST", base_url=base_url, data=data, headers=headers)
    return context.request


def _received(request: Request) -> TwilioRequest:
    return TwilioRequest.parse(request.mimetype, request.query_string, request.get_data())


def _valid(request: Request, public_url: str | None = PUBLIC_URL, token: SecretStr | None = TOKEN) -> bool:
    return is_valid_twilio_request(
        _received(request), request.headers.get(SIGNATURE_HEADER), public_url, token
    )


def test_signature_for_the_public_url_passes_although_the_server_sees_another_host() -> None:
    request = _request(data=PARAMS, signature=_sign(PUBLIC_URL, PARAMS))
    assert request.url.startswith("http://10.0.0.1:8080")
    assert _valid(request, PUBLIC_URL, TOKEN)


def test_signature_covers_the_query_string_of_the_called_url() -> None:
    signed = _sign(f"{PUBLIC_URL}?message_id=7", PARAMS)
    assert _valid(_request(query="message_id=7", data=PARAMS, signature=signed), PUBLIC_URL, TOKEN)
    assert not _valid(_request(query="message_id=8", data=PARAMS, signature=signed), PUBLIC_URL, TOKEN)


def test_a_signature_over_the_url_with_its_default_port_is_accepted_as_the_sdk_accepts_it() -> None:
    # Twilio has signed some webhooks with the port written out; the check of the URL as configured fails
    # first, and the SDK's own check of the other form must still accept it (and nothing more).
    with_port = "https://hooks.example.test:443/status_webhook"
    assert _valid(_request(data=PARAMS, signature=_sign(with_port, PARAMS)), PUBLIC_URL, TOKEN)
    tampered = {**PARAMS, "MessageStatus": "read"}
    assert not _valid(_request(data=tampered, signature=_sign(with_port, PARAMS)), PUBLIC_URL, TOKEN)


def test_a_signature_header_that_is_not_ascii_is_refused_not_an_error() -> None:
    assert not _valid(_request(data=PARAMS, signature="sïgnature"), PUBLIC_URL, TOKEN)


def test_a_changed_parameter_breaks_the_signature() -> None:
    tampered = {**PARAMS, "MessageStatus": "read"}
    assert not _valid(_request(data=tampered, signature=_sign(PUBLIC_URL, PARAMS)), PUBLIC_URL, TOKEN)


def test_a_signature_made_for_another_url_is_refused() -> None:
    other = _sign("https://hooks.example.test/inbound_webhook", PARAMS)
    assert not _valid(_request(data=PARAMS, signature=other), PUBLIC_URL, TOKEN)


def test_a_signature_made_with_another_token_is_refused() -> None:
    forged = _sign(PUBLIC_URL, PARAMS, token="guessed")
    assert not _valid(_request(data=PARAMS, signature=forged), PUBLIC_URL, TOKEN)


def test_missing_header_token_or_public_url_fails_closed() -> None:
    signature = _sign(PUBLIC_URL, PARAMS)
    assert not _valid(_request(data=PARAMS), PUBLIC_URL, TOKEN)
    assert not _valid(_request(data=PARAMS, signature=""), PUBLIC_URL, TOKEN)
    assert not _valid(_request(data=PARAMS, signature=signature), PUBLIC_URL, None)
    assert not _valid(_request(data=PARAMS, signature=signature), PUBLIC_URL, SecretStr(""))
    assert not _valid(_request(data=PARAMS, signature=signature), None, TOKEN)


def test_json_body_is_covered_by_the_body_hash_in_the_signed_url() -> None:
    body = json.dumps(PARAMS)
    query = f"bodySHA256={hashlib.sha256(body.encode()).hexdigest()}"
    signature = _sign(f"{PUBLIC_URL}?{query}", {})
    assert _valid(_request(query=query, body=body, signature=signature), PUBLIC_URL, TOKEN)
    tampered = json.dumps({**PARAMS, "MessageStatus": "read"})
    assert not _valid(_request(query=query, body=tampered, signature=signature), PUBLIC_URL, TOKEN)


def test_json_body_without_a_body_hash_is_refused() -> None:
    body = json.dumps(PARAMS)
    assert not _valid(_request(body=body, signature=_sign(PUBLIC_URL, {})), PUBLIC_URL, TOKEN)


def test_the_form_as_received_is_the_form_werkzeug_reads_repeated_fields_in_order() -> None:
    request = _request(data={"Body": "hi", "MediaUrl": ["https://a", "https://b"]})
    assert _received(request).form == list(request.form.items(multi=True))
