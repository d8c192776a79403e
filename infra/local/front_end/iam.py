"""Cloud Run's invoker check, as the front end makes it before the container sees a request.

What Google documents, and what this does (citations: Cloud Run troubleshooting,
https://cloud.google.com/run/docs/troubleshooting; service-to-service authentication,
https://cloud.google.com/run/docs/authenticating/service-to-service; IAP for Cloud Run,
https://cloud.google.com/iap/docs/enabling-cloud-run):

- The token is read from `X-Serverless-Authorization` when present ("If both headers are provided, only
  the X-Serverless-Authorization header is checked"), else from `Authorization`.
- No token: 403 ("Calls missing an auth token might cause the 403 error"). A token that is not a valid
  Google-signed ID token for this service (bad signature, expired, wrong `aud`, several Authorization
  headers): 401. A valid token whose identity lacks run.invoker: 403.
- An accepted token reaches the container with its signature replaced by SIGNATURE_REMOVED_BY_GOOGLE,
  in the header the caller used; when that was X-Serverless-Authorization, `Authorization` passes through
  untouched (the IAP page: "Cloud Run passes this header to your service after stripping its signature").
  Google documents the stripping for X-Serverless-Authorization and for user tokens minted by gcloud; it
  does not promise to leave a service account's signature in `Authorization` intact. The emulator strips
  every accepted token: the stricter case, which the functions must handle (they read the claims and
  trust the front end) and which a function that insists on verifying the signature fails here as it
  would in production.
- A public service (allUsers) is not authenticated; a token in X-Serverless-Authorization still arrives
  stripped (observed, not documented), so its claims are the caller's to choose and prove nothing.

Tokens are verified as Google verifies its own: the local issuer's certificates (the Cloud Tasks
emulator's OIDC_CERTS_URL), `exp`, and `aud` equal to the service's URL.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from google.auth import exceptions, jwt

SIGNATURE_REMOVED = "SIGNATURE_REMOVED_BY_GOOGLE"
SERVERLESS_AUTHORIZATION = "x-serverless-authorization"
AUTHORIZATION = "authorization"
# Verified tokens are remembered until they expire (the emulators reuse one token for minutes): Google
# checks each request, and so does this, but one RSA verification per token is enough to know the answer.
_CACHE_LIMIT = 4096


@dataclass(frozen=True)
class Decision:
    """Refused with `status` (401 or 403), or admitted with the header to rewrite (name, new value)."""

    status: int | None
    rewrite: tuple[str, str] | None = None
    reason: str = ""


def strip_signature(token: str) -> str:
    header, payload, _ = ([*token.split("."), "", ""])[:3]
    return f"{header}.{payload}.{SIGNATURE_REMOVED}"


class TokenVerifier:
    """Checks Google-signed ID tokens against the issuer's published certificates ({kid: PEM})."""

    def __init__(self, certs_url: str) -> None:
        self._certs_url = certs_url
        self._certs: dict[str, str] = {}
        self._lock = threading.Lock()
        self._verified: dict[str, dict[str, Any]] = {}

    def claims(self, token: str) -> dict[str, Any] | None:
        """The token's claims if Google's signature and lifetime check out, else None."""
        cached = self._verified.get(token)
        if cached is not None:
            return cached if cached.get("exp", 0) > time.time() else None
        claims = self._decode(token, refresh=False)
        if claims is None:
            # A key it has not seen yet: the issuer may have rotated.
            claims = self._decode(token, refresh=True)
        if claims is not None:
            with self._lock:
                if len(self._verified) >= _CACHE_LIMIT:
                    self._verified.clear()
                self._verified[token] = claims
        return claims

    def _decode(self, token: str, *, refresh: bool) -> dict[str, Any] | None:
        certs = self._load_certs(refresh)
        try:
            decoded: dict[str, Any] = jwt.decode(token, certs=certs, verify=True)  # type: ignore[no-untyped-call]
        except (ValueError, exceptions.GoogleAuthError):
            return None
        return decoded

    def _load_certs(self, refresh: bool) -> dict[str, str]:
        with self._lock:
            if self._certs and not refresh:
                return self._certs
        with urllib.request.urlopen(self._certs_url, timeout=5) as response:  # noqa: S310 - our own issuer
            certs: dict[str, str] = json.loads(response.read())
        with self._lock:
            self._certs = certs
        return certs


def authorize(
    headers: Sequence[tuple[str, str]],
    *,
    public: bool,
    audiences: Sequence[str],
    invokers: Sequence[str],
    verifier: TokenVerifier,
) -> Decision:
    """The front end's decision on one request: `headers` as received (names in any case)."""
    serverless = _values(headers, SERVERLESS_AUTHORIZATION)
    if public:
        # Not authenticated at all; a serverless token is still stripped on its way in.
        if len(serverless) == 1 and serverless[0].lower().startswith("bearer "):
            return Decision(
                None, (SERVERLESS_AUTHORIZATION, "Bearer " + strip_signature(serverless[0][7:].strip()))
            )
        return Decision(None)
    used = SERVERLESS_AUTHORIZATION if serverless else AUTHORIZATION
    values = serverless or _values(headers, AUTHORIZATION)
    if not values:
        return Decision(403, reason="no identity token")
    if len(values) > 1:
        return Decision(401, reason="several authorization headers")
    scheme, _, token = values[0].partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return Decision(401, reason="not a bearer token")
    token = token.strip()
    claims = verifier.claims(token)
    if claims is None:
        return Decision(401, reason="not a valid Google-signed ID token")
    if not _audience_matches(claims.get("aud"), audiences):
        return Decision(401, reason=f"audience {claims.get('aud')!r} is not this service")
    email = claims.get("email")
    if not isinstance(email, str) or not claims.get("email_verified") or email not in invokers:
        return Decision(403, reason=f"{email!r} lacks roles/run.invoker on this service")
    return Decision(None, (used, "Bearer " + strip_signature(token)))


def _values(headers: Sequence[tuple[str, str]], name: str) -> list[str]:
    return [value for key, value in headers if key.lower() == name]


def _audience_matches(audience: object, accepted: Sequence[str]) -> bool:
    # A trailing slash is the same service URL.
    wanted = {a.rstrip("/") for a in accepted}
    candidates = audience if isinstance(audience, list) else [audience]
    return any(isinstance(a, str) and a.rstrip("/") in wanted for a in candidates)
