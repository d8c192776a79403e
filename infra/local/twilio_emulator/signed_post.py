"""A webhook request as Twilio sends it: form-encoded, signed over the exact URL it calls."""

from __future__ import annotations

import requests
from twilio.request_validator import RequestValidator

USER_AGENT = "TwilioProxy/1.1"


def post_signed(
    session: requests.Session,
    url: str,
    params: dict[str, str],
    auth_token: str,
    idempotency_token: str,
    timeout: float,
) -> requests.Response:
    headers = {
        "X-Twilio-Signature": RequestValidator(auth_token).compute_signature(url, params),
        # Twilio repeats this token on every retry of one event, so receivers can dedupe on it.
        "I-Twilio-Idempotency-Token": idempotency_token,
        "User-Agent": USER_AGENT,
    }
    return session.post(url, data=params, headers=headers, timeout=timeout, allow_redirects=False)
