"""Users: search by phone (any format) or attribute text, one user's consent and attributes, the consent
change form, and the import upload with its rejected-rows report."""

from __future__ import annotations

import base64
import csv
import io

from flask import Blueprint, redirect, render_template, request, url_for
from pydantic import ValidationError
from werkzeug.wrappers import Response

from shared.api.errors import ApiError
from shared.api.routes import user_import
from shared.api.routes import users as api
from shared.dashboard import queries
from shared.dashboard.web import FormErrors, api_context, enum_arg, form_errors, notice
from shared.db.queries import users as user_queries
from shared.domain.enums import ConsentState
from shared.domain.errors import DomainError
from shared.domain.phones import try_normalize_phone

bp = Blueprint("users", __name__)

PAGE_SIZE = 50
# A spreadsheet runs a cell starting with these as a formula (OWASP, CSV injection); some skip leading
# spaces and line breaks before looking.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@bp.get("/users")
def user_list() -> Response | str:
    context = api_context()
    q = request.args.get("q", "").strip() or None
    if q is not None:
        e164, _ = try_normalize_phone(q, context.settings.default_region)
        if e164 is not None:
            with context.uow() as uow:
                if user_queries.user_exists(uow.session, e164):
                    return redirect(url_for("users.user_detail", phone=e164))
    query = api.UserListQuery(
        limit=PAGE_SIZE,
        cursor=request.args.get("cursor") or None,
        q=q[:100] if q else None,
        consent_state=enum_arg(ConsentState, "consent"),
    )
    page = api.list_users(context, query)
    return render_template(
        "users.html", page=page, q=q, consent=query.consent_state, states=list(ConsentState)
    )


@bp.get("/users/<phone>")
def user_detail(phone: str, errors: FormErrors | None = None) -> str:
    context = api_context()
    user = api.get_user(context, phone)
    with context.uow() as uow:
        history = queries.consent_history(uow.session, user.phone)
    return render_template(
        "user.html",
        user=user,
        history=history,
        states=list(ConsentState),
        errors=errors or FormErrors(),
        notice=notice(),
    )


@bp.post("/users/<phone>/consent")
def user_consent(phone: str) -> Response | tuple[str, int]:
    try:
        change = api.ConsentChange.model_validate(
            {"consent_state": request.form.get("consent_state"), "reason": request.form.get("reason") or None}
        )
        user = api.put_consent(api_context(), phone, change)
    except (ValidationError, ApiError, DomainError) as exc:
        if isinstance(exc, ApiError) and exc.status == 404:
            raise
        return user_detail(phone, errors=form_errors(exc)), 400
    return redirect(url_for("users.user_detail", phone=user.phone, notice="consent"))


@bp.get("/users/import")
def import_page() -> str:
    return render_template("import.html", report=None, rejected_csv=None, errors=FormErrors())


@bp.post("/users/import")
def import_submit() -> tuple[str, int]:
    try:
        report = user_import.import_users_file(api_context(), user_import.ImportQuery())
    except (ApiError, DomainError) as exc:
        return render_template("import.html", report=None, rejected_csv=None, errors=form_errors(exc)), 400
    return render_template("import.html", report=report, rejected_csv=_rejected_csv(report), errors=None), 200


def _rejected_csv(report: user_import.ImportReportOut) -> str | None:
    """The rejected rows as a data: URL, so the download needs no storage between requests."""
    if not report.rejected_rows:
        return None
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["row", "value", "reason"])
    for row in report.rejected_rows:
        writer.writerow([row.row, _inert(row.value or ""), _inert(row.reason)])
    return "data:text/csv;base64," + base64.b64encode(buffer.getvalue().encode()).decode()


def _inert(cell: str) -> str:
    """A cell no spreadsheet runs: one that would start a formula is prefixed with ', which shows it as
    text (OWASP's advice on CSV injection)."""
    formula = cell.startswith(_FORMULA_STARTS) or cell.lstrip(" \t\r\n").startswith(_FORMULA_STARTS)
    return "'" + cell if formula else cell
