"""The OIDC check on send_message: only Cloud Tasks (our queue's service account) may ask for a send.

The token is verified exactly as in production with google-auth, against Google's certificates or, locally,
the Cloud Tasks emulator's (OIDC_CERTS_URL). The audience is send_message's configured public URL, never
request.url, which behind Google's front end is not what the caller used. The certificates are cached for
a few minutes: fetching them on every send would cost an HTTP round trip per message.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from google.auth import exceptions
from google.auth.transport import requests as google_requests
from google.oauth2 import id_token

from shared.config import Settings

CERTS_TTL_SECONDS = 300.0


class _CachingRequest:
    """A google-auth transport Request that answers repeated GETs of one URL from memory."""

    def __init__(self) -> None:
        self._inner = google_requests.Request()
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, Any]] = {}

    def __call__(self, url: str, method: str = "GET", **kwargs: Any) -> Any:
        if method != "GET":
            return self._inner(url, method=method, **kwargs)
        with self._lock:
            cached = self._cache.get(url)
        if cached is not None and time.monotonic() - cached[0] < CERTS_TTL_SECONDS:
            return cached[1]
        response = self._inner(url, method=method, **kwargs)
        if response.status == 200:
            with self._lock:
                self._cache[url] = (time.monotonic(), response)
        return response

    def forget(self) -> None:
        with self._lock:
            self._cache.clear()


_request = _CachingRequest()


def verified_caller(authorization: str | None, settings: Settings) -> str | None:
    """The verified caller's email, or None if the bearer token is missing, forged, expired or foreign."""
    if not authorization or not authorization.startswith("Bearer ") or not settings.send_message_url:
        return None
    token = authorization.removeprefix("Bearer ").strip()
    claims = _verify(token, settings)
    if claims is None:
        # The keys may have rotated since they were cached: one fresh look before refusing.
        _request.forget()
        claims = _verify(token, settings)
    if claims is None:
        return None
    email = claims.get("email")
    if not isinstance(email, str) or not claims.get("email_verified"):
        return None
    allowed = _allowed_callers(settings)
    return email if not allowed or email in allowed else None


def _allowed_callers(settings: Settings) -> set[str]:
    """OIDC_ALLOWED_EMAILS (terraform's function_callers) if set, else the queue's service account."""
    if settings.oidc_allowed_emails:
        return {e.strip() for e in settings.oidc_allowed_emails.split(",") if e.strip()}
    return {settings.tasks_service_account_email} if settings.tasks_service_account_email else set()


def _verify(token: str, settings: Settings) -> Any:
    try:
        return id_token.verify_token(
            token,
            _request,  # type: ignore[arg-type]
            audience=settings.send_message_url,
            certs_url=settings.oidc_certs_url,
        )
    except (ValueError, exceptions.GoogleAuthError):
        return None
