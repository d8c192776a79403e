"""Sign-in with an API token, throttled per client, and sign-out, which revokes the session. The token
itself is never stored: the cookie keeps an HMAC of it, checked against the configured tokens on every
request."""

from __future__ import annotations

import logging
import math
from datetime import timedelta

from flask import Blueprint, g, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from shared.bootstrap import runtime
from shared.dashboard import session as cookies
from shared.dashboard.web import client_address
from shared.domain.consent_rules import operator_id
from shared.services import dashboard_access

log = logging.getLogger(__name__)
bp = Blueprint("auth", __name__)


@bp.get("/signin")
def signin() -> str:
    return render_template("signin.html", next=_safe_next(request.args.get("next")), error=None)


@bp.post("/signin")
def signin_submit() -> Response | tuple[str, int] | tuple[str, int, dict[str, str]]:
    rt = runtime()
    settings = rt.settings
    target = _safe_next(request.form.get("next"))
    client = client_address(request)
    wait = dashboard_access.signin_wait(rt.uow(), client, rt.clock.now())
    if wait is not None:
        log.warning("dashboard sign-in throttled", extra={"client": client})
        error = f"Too many sign-in attempts from your address. Try again in {_minutes(wait)}."
        retry_after = str(max(1, math.ceil(wait.total_seconds())))
        return render_template("signin.html", next=target, error=error), 429, {"Retry-After": retry_after}
    presented = request.form.get("token", "")
    fingerprint = cookies.matching_fingerprint(settings, presented)
    if fingerprint is None:
        return render_template("signin.html", next=target, error="That token is not valid."), 401
    dashboard_access.signed_in(rt.uow(), client)
    # A fresh CSRF token at sign-in, so one a visitor saw before signing in is worth nothing after.
    g.new_cookie = cookies.new_session(fingerprint, operator_id(presented))
    return redirect(target or url_for("overview.overview"))


@bp.post("/signout")
def signout() -> Response:
    """The cookie is cleared, and its session revoked: a copy of the cookie kept elsewhere is worthless."""
    session_id = g.dashboard_session.session_id
    if session_id is not None:
        rt = runtime()
        now = rt.clock.now()
        expires_at = now + timedelta(seconds=cookies.MAX_AGE_SECONDS)
        dashboard_access.sign_out(rt.uow(), session_id, now, expires_at)
    response = redirect(url_for("auth.signin"))
    g.new_cookie = None
    cookies.clear_session(response, request)
    return response


def _minutes(wait: timedelta) -> str:
    minutes = max(1, math.ceil(wait.total_seconds() / 60))
    return "1 minute" if minutes == 1 else f"{minutes} minutes"


def _safe_next(target: str | None) -> str | None:
    """Only a path of this dashboard: never another site (an open redirect) or a scheme-relative URL."""
    if not target or not target.startswith("/ui/") or target.startswith("//") or "\\" in target:
        return None
    return target
