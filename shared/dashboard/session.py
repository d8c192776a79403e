"""The dashboard's session: a signed cookie holding a CSRF token and, once signed in, a fingerprint of the
API token the operator presented (never the token itself) and a session id.

The signing key is derived from the configured API tokens, so rotating the tokens signs everyone out, and
a session is only valid while the token it was opened with is still configured. The cookie carries the
rest, so every function instance can check any cookie; the one thing it cannot say is that it was signed
out, which the app asks PostgreSQL by session id (shared.services.dashboard_access).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from ipaddress import ip_address

from flask import Request
from itsdangerous import BadSignature, URLSafeTimedSerializer
from werkzeug.wrappers import Response

from shared.config import Settings

COOKIE_NAME = "ese_dashboard"
COOKIE_PATH = "/ui"
# An operator's working day; after that the token is asked for again.
MAX_AGE_SECONDS = 12 * 3600
_SALT = "ese-dashboard-session"


@dataclass(frozen=True)
class DashboardSession:
    csrf_token: str
    # HMAC of the API token used to sign in; None for a visitor who has not signed in yet.
    token_fingerprint: str | None = None
    # Names the signed-in session, so signing out can revoke it; None for a visitor.
    session_id: str | None = None
    # Who signed in, for the audit trail (shared.domain.consent_rules.operator_id of their token); None for
    # a visitor, or a session opened before the cookie carried it.
    operator: str | None = None


def _signing_key(settings: Settings) -> bytes | None:
    tokens = sorted(settings.api_token_list)
    if not tokens:
        return None
    return hmac.new(b"ese-dashboard-cookie-key", "\n".join(tokens).encode(), hashlib.sha256).digest()


def _serializer(key: bytes) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(key, salt=_SALT, signer_kwargs={"digest_method": hashlib.sha256})


def _fingerprint(key: bytes, token: str) -> str:
    return hmac.new(key, token.encode(), hashlib.sha256).hexdigest()


def matching_fingerprint(settings: Settings, presented: str) -> str | None:
    """The fingerprint to store when `presented` is a configured API token, else None."""
    key = _signing_key(settings)
    if key is None or not presented:
        return None
    candidate = presented.strip().encode()
    # Every token is compared, without stopping early, so timing does not say which one nearly matched.
    matches = [hmac.compare_digest(candidate, token.encode()) for token in settings.api_token_list]
    return _fingerprint(key, presented.strip()) if any(matches) else None


def read_session(request: Request, settings: Settings) -> DashboardSession | None:
    """The cookie's session if its signature and age are good; a revoked token's session is anonymous."""
    key = _signing_key(settings)
    raw = request.cookies.get(COOKIE_NAME)
    if key is None or raw is None:
        return None
    try:
        payload = _serializer(key).loads(raw, max_age=MAX_AGE_SECONDS)
    except BadSignature:
        return None
    if not isinstance(payload, dict) or not isinstance(payload.get("csrf"), str):
        return None
    fingerprint, session_id = payload.get("tok"), payload.get("sid")
    valid = {_fingerprint(key, token) for token in settings.api_token_list}
    if fingerprint not in valid or not isinstance(session_id, str):
        return DashboardSession(payload["csrf"])
    operator = payload.get("op")
    return DashboardSession(
        payload["csrf"], fingerprint, session_id, operator if isinstance(operator, str) else None
    )


def new_session(token_fingerprint: str | None = None, operator: str | None = None) -> DashboardSession:
    session_id = None if token_fingerprint is None else secrets.token_urlsafe(16)
    return DashboardSession(secrets.token_urlsafe(32), token_fingerprint, session_id, operator)


def anonymous(session: DashboardSession) -> DashboardSession:
    """The same visitor, no longer signed in (the CSRF token stays: the page they hold still posts)."""
    return DashboardSession(session.csrf_token)


def write_session(
    response: Response, request: Request, settings: Settings, session: DashboardSession
) -> None:
    key = _signing_key(settings)
    if key is None:
        return
    value = _serializer(key).dumps(
        {
            "csrf": session.csrf_token,
            "tok": session.token_fingerprint,
            "sid": session.session_id,
            "op": session.operator,
        }
    )
    response.set_cookie(
        COOKIE_NAME,
        value,
        max_age=MAX_AGE_SECONDS,
        path=COOKIE_PATH,
        secure=needs_secure_cookie(request),
        httponly=True,
        samesite="Strict",
    )


def clear_session(response: Response, request: Request) -> None:
    response.delete_cookie(
        COOKIE_NAME, path=COOKIE_PATH, secure=needs_secure_cookie(request), httponly=True, samesite="Strict"
    )


def needs_secure_cookie(request: Request) -> bool:
    """Secure everywhere except plain HTTP on this machine (the local stack): behind Google's front end the
    scheme arrives as X-Forwarded-Proto, and any other host is treated as production."""
    if request.scheme == "https" or request.headers.get("X-Forwarded-Proto", "").lower() == "https":
        return True
    host = (request.host or "").rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return False
    try:
        return not ip_address(host).is_loopback
    except ValueError:
        return True


def csrf_matches(session: DashboardSession | None, presented: str | None) -> bool:
    if session is None or not presented:
        return False
    return hmac.compare_digest(session.csrf_token.encode(), presented.encode())
