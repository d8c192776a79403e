"""The dashboard's Flask app: sign-in required on every page, CSRF checked on every POST, a strict
Content-Security-Policy (no inline script or style, nothing from another origin), HTML error pages.

It is a Flask app of its own, not routes on the API's, because the two authenticate differently (cookie
versus bearer token) and answer errors differently (HTML versus the API's JSON shape).
"""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import urlsplit

from flask import Flask, Response, g, redirect, render_template, request, url_for
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as BaseResponse

from shared.api.errors import domain_status
from shared.bootstrap import runtime
from shared.boundary import (
    Refused,
    TooLarge,
    check_declared_length,
    check_fields,
    check_url,
    form_fields,
    read_body,
)
from shared.dashboard import session as cookies
from shared.dashboard.views import auth, campaigns, library, messages, monitoring, overview, senders, users
from shared.db.errors import is_transient
from shared.domain.errors import DomainError
from shared.domain.templates import template_variables
from shared.services import dashboard_access
from shared.services.import_upload import IMPORT_MAX_BYTES

log = logging.getLogger(__name__)

PREFIX = "/ui"
_HERE = Path(__file__).parent
# The largest form is a template or segment definition typed into a page: far below this.
FORM_MAX_BYTES = 1024 * 1024
# Pages reachable without signing in; everything else redirects to sign-in.
_PUBLIC_ENDPOINTS = frozenset({"auth.signin", "auth.signin_submit", "static"})
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)


def create_dashboard_app() -> Flask:
    app = Flask(
        "event_stream_engine_dashboard",
        root_path=str(_HERE),
        static_folder="static",
        static_url_path=f"{PREFIX}/static",
        template_folder="templates",
    )
    for module in (auth, overview, campaigns, messages, users, library, senders, monitoring):
        app.register_blueprint(module.bp, url_prefix=PREFIX)
    app.before_request(_refuse_unacceptable_input)
    app.before_request(_load_session)
    app.before_request(_require_sign_in)
    app.before_request(_check_csrf)
    app.after_request(_security_headers)
    app.register_error_handler(Exception, _error_page)
    app.jinja_env.globals["csrf_token"] = lambda: g.dashboard_session.csrf_token
    app.jinja_env.filters["template_variables"] = template_variables
    return app


def _refuse_unacceptable_input() -> Response | None:
    """The boundary rule on everything a page is sent (path, query string, form), before any view reads
    it: a refusal names the field, and nothing it carried reaches the database."""
    try:
        check_url(request.environ.get("PATH_INFO", ""), request.query_string)
        if request.method != "POST":
            return None
        if request.mimetype == "multipart/form-data":
            # The import upload: werkzeug spools the file, and the import reads it under its own rules.
            check_declared_length(request, IMPORT_MAX_BYTES)
            check_fields(request.form.items(multi=True))
        else:
            check_fields(form_fields(read_body(request, FORM_MAX_BYTES)))
    except Refused as refused:
        log.warning("dashboard input refused", extra={"path": request.path, "field": refused.field})
        return _page(413 if isinstance(refused, TooLarge) else 400, refused.message)
    return None


def _load_session() -> None:
    g.dashboard_session = cookies.read_session(request, runtime().settings)
    g.new_cookie = None
    if g.dashboard_session is None:
        # Even the sign-in form needs a CSRF token, so a visitor gets an anonymous session first.
        g.dashboard_session = g.new_cookie = cookies.new_session()
    elif _signed_out(g.dashboard_session):
        g.dashboard_session = cookies.anonymous(g.dashboard_session)


def _signed_out(session: cookies.DashboardSession) -> bool:
    """A cookie stays valid until it expires: one signed out before then is known only to the database.
    Static assets show nothing private, so they spare the lookup."""
    return (
        session.session_id is not None
        and request.endpoint != "static"
        and dashboard_access.is_signed_out(runtime().uow(), session.session_id)
    )


def _require_sign_in() -> BaseResponse | None:
    if request.endpoint in _PUBLIC_ENDPOINTS or g.dashboard_session.token_fingerprint is not None:
        return None
    target = request.full_path.rstrip("?") if request.method == "GET" else None
    return redirect(url_for("auth.signin", next=target))


def _check_csrf() -> Response | None:
    """SameSite=Strict already keeps the cookie off cross-site requests; the token also refuses a POST
    from a page of ours that an attacker could not read (and from any origin that is not ours).

    "Ours" is the configured public URL (API_URL), never the request's own URL: behind Google's front end
    the function sees http:// and a browser's Origin says https://, so they never match. Without a
    configured URL no Origin counts as ours (fail closed)."""
    if request.method not in ("POST", "PUT", "PATCH", "DELETE"):
        return None
    origin = request.headers.get("Origin")
    public_url = runtime().settings.api_url
    same_origin = origin is None or (public_url is not None and _origin_of(origin) == _origin_of(public_url))
    presented = request.form.get("csrf_token") or request.headers.get("X-CSRF-Token")
    if same_origin and cookies.csrf_matches(g.dashboard_session, presented):
        return None
    log.warning("dashboard POST refused: missing or wrong CSRF token", extra={"path": request.path})
    message = "This form expired or was sent from another site. Reload the page and try again."
    return Response(render_template("error.html", status=403, message=message), status=403)


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def _security_headers(response: Response) -> Response:
    if g.get("new_cookie") is not None:
        cookies.write_session(response, request, runtime().settings, g.new_cookie)
    response.headers["Content-Security-Policy"] = _CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    if request.endpoint != "static":
        # Pages show personal data: never kept by a shared cache or the browser's back-forward store.
        response.headers["Cache-Control"] = "no-store"
    return response


def _error_page(exc: Exception) -> Response:
    if isinstance(exc, DomainError):
        # A refusal by the rules, with the status the API gives it: a row that does not exist (404), or a
        # page's own input (a phone in the address, a cursor: 400).
        return _page(domain_status(exc), exc.message)
    if isinstance(exc, HTTPException):
        return _page(exc.code or 500, exc.description or exc.name)
    if isinstance(exc, PoolTimeout) or (isinstance(exc, DBAPIError) and is_transient(exc)):
        log.warning("transient database failure in the dashboard", exc_info=exc)
        response = _page(503, "The database is briefly unavailable. Reload the page in a moment.")
        response.headers["Retry-After"] = "2"
        return response
    log.error("unhandled error in dashboard %s %s", request.method, request.path, exc_info=exc)
    return _page(500, "Something went wrong on our side; it has been logged.")


def _page(status: int, message: str) -> Response:
    # after_request (the security headers) still runs on what an error handler returns.
    return Response(render_template("error.html", status=status, message=message), status=status)
