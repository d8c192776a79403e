"""Users: search by phone (any format) or attribute text, one user's consent and attributes, the consent
change form, and the import upload with its rejected-rows report."""

from __future__ import annotations

import base64
import csv
import io

from flask import Blueprint, redirect, render_template, request, url_for
from pydantic import ValidationError
from werkzeug.wrappers import Response

from shared.bootstrap import runtime
from shared.dashboard.web import FormErrors, enum_arg, form_errors, notice
from shared.db.queries import dashboard as queries
from shared.domain.enums import ConsentState
from shared.domain.errors import DomainError, NotFound
from shared.domain.phones import normalize_phone
from shared.services import import_upload, users
from shared.services.user_import import ImportReport
from shared.services.users import ConsentChange

bp = Blueprint("users", __name__)

PAGE_SIZE = 50
# The search box's text, as the API's `q` takes it.
MAX_QUERY = 100
# A spreadsheet runs a cell starting with these as a formula (OWASP, CSV injection); some skip leading
# spaces and line breaks before looking.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@bp.get("/users")
def user_list() -> Response | str:
    rt = runtime()
    q = request.args.get("q", "").strip() or None
    if q is not None:
        phone = users.existing_phone(rt.uow(), q, rt.settings.default_region)
        if phone is not None:
            return redirect(url_for("users.user_detail", phone=phone))
    consent = enum_arg(ConsentState, "consent")
    page = users.list_users(
        rt.uow(),
        limit=PAGE_SIZE,
        cursor=request.args.get("cursor") or None,
        consent_state=consent,
        q=q[:MAX_QUERY] if q else None,
    )
    return render_template("users.html", page=page, q=q, consent=consent, states=list(ConsentState))


@bp.get("/users/<phone>")
def user_detail(phone: str, errors: FormErrors | None = None) -> str:
    rt = runtime()
    user = users.get_user(rt.uow(), normalize_phone(phone, rt.settings.default_region))
    with rt.uow() as uow:
        history = queries.consent_history(uow.session, user.phone_e164)
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
    rt = runtime()
    try:
        change = ConsentChange.model_validate(
            {"consent_state": request.form.get("consent_state"), "reason": request.form.get("reason") or None}
        )
        e164 = normalize_phone(phone, rt.settings.default_region)
        user = users.set_consent(rt.uow(), e164, change, rt.clock.now())
    except NotFound:
        raise
    except (ValidationError, DomainError) as exc:
        return user_detail(phone, errors=form_errors(exc)), 400
    return redirect(url_for("users.user_detail", phone=user.phone_e164, notice="consent"))


@bp.get("/users/import")
def import_page() -> str:
    return render_template("import.html", report=None, rejected_csv=None, errors=FormErrors())


@bp.post("/users/import")
def import_submit() -> tuple[str, int]:
    rt = runtime()
    upload = request.files.get("file")
    if upload is None:
        errors = FormErrors(fields={"file": "the multipart body needs a 'file' part"})
        return render_template("import.html", report=None, rejected_csv=None, errors=errors), 400
    try:
        report = import_upload.import_upload(
            rt.uow(),
            upload.stream,
            import_upload.upload_media_type(upload.mimetype, upload.filename),
            region=request.form.get("default_region") or rt.settings.default_region,
            at=rt.clock.now(),
        )
    except DomainError as exc:
        return render_template("import.html", report=None, rejected_csv=None, errors=form_errors(exc)), 400
    return render_template("import.html", report=report, rejected_csv=_rejected_csv(report), errors=None), 200


def _rejected_csv(report: ImportReport) -> str | None:
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
