"""Bearer-token authentication for every API route, failing closed.

Tokens come from settings (filled from Secret Manager in production); several may be configured so one
can be rotated without downtime. With none configured every request is refused.
"""

from __future__ import annotations

import hashlib
import hmac

from flask import Request, Response

from shared.api.errors import error_response
from shared.config import Settings


def presented_token(request: Request) -> str | None:
    """The bearer token the request carries, if any (not yet checked)."""
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        return None
    return presented.strip()


def is_authorized(request: Request, settings: Settings) -> bool:
    presented = presented_token(request)
    if presented is None:
        return False
    candidate = presented.encode()
    # Compare against every token, without stopping early, so timing does not say which one nearly matched.
    matches = [hmac.compare_digest(candidate, token.encode()) for token in settings.api_token_list]
    return any(matches)


def operator_label(request: Request) -> str:
    """Who did it, for the audit trail: the door and the first 12 hex digits of the SHA-256 of the bearer
    token presented (which token, never the token)."""
    _, _, presented = request.headers.get("Authorization", "").partition(" ")
    return "api:" + hashlib.sha256(presented.strip().encode()).hexdigest()[:12]


def unauthorized() -> Response:
    response = error_response(
        401, "unauthorized", "send Authorization: Bearer <token> with a valid API token"
    )
    response.headers["WWW-Authenticate"] = 'Bearer realm="api"'
    return response
