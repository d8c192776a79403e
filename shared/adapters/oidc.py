"""Who is calling: the identity check on the three functions only Google's services call (send_message:
Cloud Tasks; trigger_campaign: Cloud Scheduler; fanout_recipients: Pub/Sub push).

Deployed, each is invoker-restricted: Google's front end verifies the caller's ID token (signature,
expiry, audience, roles/run.invoker) before the container sees the request, and may forward it with its
signature replaced by `SIGNATURE_REMOVED_BY_GOOGLE` (documented for tokens in X-Serverless-Authorization
and for user tokens, https://cloud.google.com/run/docs/troubleshooting#signature-removed and
https://cloud.google.com/iap/docs/enabling-cloud-run). Such a token cannot be verified here, only read: the
front end vouches for it, and this checks the claims the function cares about on top (`aud` is this
function's public URL, `exp`, the issuer, `email` among the allowed callers). A token that still carries a
signature (a direct call in a test, a caller not behind the front end) is verified as before, with
google-auth against Google's certificates, or locally the emulator's (OIDC_CERTS_URL).

Trusting a stripped token is only right where the front end checked it: never grant allUsers the invoker
role on these functions (tests/infra asserts terraform does not), because on a public service the front end
strips an X-Serverless-Authorization signature without checking anything. With no allowed caller or no
audience configured, every request is refused. docs/architecture.md, "Google's front end", has the whole
picture.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from google.auth import exceptions
from google.auth.transport import requests as google_requests
from google.oauth2 import id_token

from shared.config import Settings

SIGNATURE_REMOVED = "SIGNATURE_REMOVED_BY_GOOGLE"
CERTS_TTL_SECONDS = 300.0
# Google's ID tokens allow this much clock skew between issuer and verifier.
CLOCK_SKEW_SECONDS = 10


class HeaderSource(Protocol):
    """Request headers, looked up by name (Flask's Headers, or a dict in tests)."""

    def get(self, key: str, /) -> str | None: ...


@dataclass(frozen=True)
class CallerPolicy:
    """What one function accepts: its own public URL as `aud`, these identities, this issuer."""

    audience: str | None
    allowed: frozenset[str]
    issuer: str
    certs_url: str

    @classmethod
    def for_function(cls, settings: Settings, audience: str | None) -> CallerPolicy:
        allowed = frozenset(e.strip() for e in (settings.oidc_allowed_emails or "").split(",") if e.strip())
        return cls(audience, allowed, settings.oidc_issuer, settings.oidc_certs_url)


class _CachingRequest:
    """A google-auth transport Request that answers repeated GETs of one URL from memory: fetching the
    certificates on every send would cost an HTTP round trip per message."""

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


def bearer_token(headers: HeaderSource) -> str | None:
    """The caller's ID token: X-Serverless-Authorization when present (Cloud Run checks only that one
    when both are sent), else Authorization."""
    value = headers.get("X-Serverless-Authorization") or headers.get("Authorization") or ""
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def verified_caller(headers: HeaderSource, policy: CallerPolicy) -> str | None:
    """The caller's email when it may call this function, else None (refuse)."""
    token = bearer_token(headers)
    if token is None or not policy.audience or not policy.allowed:
        return None
    claims = (
        _front_end_checked(token) if token.endswith("." + SIGNATURE_REMOVED) else _verified(token, policy)
    )
    if claims is None or not _claims_acceptable(claims, policy):
        return None
    email: str = claims["email"]
    return email


def _claims_acceptable(claims: Mapping[str, Any], policy: CallerPolicy) -> bool:
    audiences = claims.get("aud")
    audiences = audiences if isinstance(audiences, list) else [audiences]
    wanted = (policy.audience or "").rstrip("/")
    expires = claims.get("exp")
    return (
        any(isinstance(a, str) and a.rstrip("/") == wanted for a in audiences)
        and isinstance(expires, int | float)
        and expires + CLOCK_SKEW_SECONDS > time.time()
        and claims.get("iss") in (policy.issuer, policy.issuer.removeprefix("https://"))
        and claims.get("email_verified") is True
        and claims.get("email") in policy.allowed
    )


def _front_end_checked(token: str) -> dict[str, Any] | None:
    """The claims of a token whose signature the front end verified and removed."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except (binascii.Error, ValueError):
        return None
    return claims if isinstance(claims, dict) else None


def _verified(token: str, policy: CallerPolicy) -> dict[str, Any] | None:
    claims = _verify_signature(token, policy)
    if claims is None:
        # The keys may have rotated since they were cached: one fresh look before refusing.
        _request.forget()
        claims = _verify_signature(token, policy)
    return claims


def _verify_signature(token: str, policy: CallerPolicy) -> dict[str, Any] | None:
    try:
        claims = id_token.verify_token(
            token,
            _request,  # type: ignore[arg-type]
            audience=policy.audience,
            certs_url=policy.certs_url,
            clock_skew_in_seconds=CLOCK_SKEW_SECONDS,
        )
    except (ValueError, exceptions.GoogleAuthError):
        return None
    return dict(claims)
