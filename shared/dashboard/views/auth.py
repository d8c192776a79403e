"""Sign-in with an API token, and sign-out. The token itself is never stored: the cookie keeps an HMAC
of it, checked against the configured tokens on every request."""

from __future__ import annotations

from flask import Blueprint, g, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from shared.config import get_settings
from shared.dashboard import session as cookies

bp = Blueprint("auth", __name__)


@bp.get("/signin")
def signin() -> str:
    return render_template("signin.html", next=_safe_next(request.args.get("next")), error=None)


@bp.post("/signin")
def signin_submit() -> Response | tuple[str, int]:
    settings = get_settings()
    fingerprint = cookies.matching_fingerprint(settings, request.form.get("token", ""))
    target = _safe_next(request.form.get("next"))
    if fingerprint is None:
        return render_template("signin.html", next=target, error="That token is not valid."), 401
    # A fresh CSRF token at sign-in, so one a visitor saw before signing in is worth nothing after.
    g.new_cookie = cookies.new_session(fingerprint)
    return redirect(target or url_for("overview.overview"))


@bp.post("/signout")
def signout() -> Response:
    response = redirect(url_for("auth.signin"))
    g.new_cookie = None
    cookies.clear_session(response, request)
    return response


def _safe_next(target: str | None) -> str | None:
    """Only a path of this dashboard: never another site (an open redirect) or a scheme-relative URL."""
    if not target or not target.startswith("/ui/") or target.startswith("//") or "\\" in target:
        return None
    return target
