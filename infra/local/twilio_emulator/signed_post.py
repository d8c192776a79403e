"""A webhook request as Twilio sends it: form-encoded, signed over the exact URL it calls."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from urllib.parse import urlencode

from twilio.request_validator import RequestValidator

from infra.local.keepalive_http import REQUEST_ERRORS, KeepAliveClient

USER_AGENT = "TwilioProxy/1.1"


class PostFailed(Exception):
    """No HTTP answer: the connection failed, broke or timed out."""

    def __init__(self, message: str, *, connect_failed: bool) -> None:
        super().__init__(message)
        # No TCP connection or TLS handshake at all (Twilio's `ct`), as opposed to no answer after it.
        self.connect_failed = connect_failed


@dataclass(frozen=True)
class PostResponse:
    status: int
    body: bytes
    headers: dict[str, str]

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


class SignedPoster:
    """Thread-safe; connections are kept alive per thread (status callbacks run at the send rate)."""

    def __init__(self) -> None:
        self._client = KeepAliveClient()

    def post(
        self, url: str, params: dict[str, str], auth_token: str, idempotency_token: str, timeout: float
    ) -> PostResponse:
        headers = {
            "X-Twilio-Signature": RequestValidator(auth_token).compute_signature(url, params),
            # Twilio repeats this token on every retry of one event, so receivers can dedupe on it.
            "I-Twilio-Idempotency-Token": idempotency_token,
            "User-Agent": USER_AGENT,
            "Content-Type": "application/x-www-form-urlencoded",
        }
        try:
            answer = self._client.request("POST", url, urlencode(params).encode(), headers, timeout)
        except REQUEST_ERRORS as error:
            connect_failed = isinstance(error, ConnectionRefusedError | ssl.SSLError)
            raise PostFailed(f"{type(error).__name__}: {error}", connect_failed=connect_failed) from error
        return PostResponse(answer.status, answer.body, dict(answer.headers.items()))
