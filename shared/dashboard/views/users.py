"""Users: search by phone (any format) or attribute text, adding a user, one user's page (attributes to
add, change or remove; consent with a required reason; topics; the conversation timeline), and the import
upload with its rejected-rows report. Every change goes through the same services, and so the same
validation and audit, as the API's."""

from __future__ import annotations

import base64
import csv
import io
import math
from typing import Any, Literal

from flask import Blueprint, g, redirect, render_template, request, url_for
from pydantic import Field, ValidationError
from werkzeug.wrappers import Response

from shared.api.errors import domain_status
from shared.bootstrap import runtime
from shared.boundary import NotJson, Refused, parse_json
from shared.dashboard.web import FormErrors, enum_arg, form_errors, notice
from shared.db.queries import dashboard as queries
from shared.domain.enums import ConsentState
from shared.domain.errors import DomainError, NotFound
from shared.domain.phones import normalize_phone
from shared.services import conversation, import_upload, users
from shared.services.inputs import RequestModel, Topic
from shared.services.user_import import ImportReport
from shared.services.users import ConsentChange, Operator

bp = Blueprint("users", __name__)

PAGE_SIZE = 50
# The search box's text, as the API's `q` takes it.
MAX_QUERY = 100
# A spreadsheet runs a cell starting with these as a formula (OWASP, CSV injection); some skip leading
# spaces and line breaks before looking.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# Rows of the conversation timeline per page.
CONVERSATION_PAGE = 50


class AttributeEdit(RequestModel):
    """One attribute set from the user page: the value typed as text, a number or true/false."""

    key: str = Field(min_length=1, max_length=100, pattern=r"^\S(.*\S)?$")
    value: str = Field(max_length=4096)
    type: Literal["text", "number", "boolean"] = "text"

    def typed_value(self) -> Any:
        if self.type == "number":
            number = float(self.value)  # ValueError: reported on the value field
            if not math.isfinite(number):
                raise ValueError("expected a finite number")
            return int(number) if number.is_integer() and "." not in self.value else number
        if self.type == "boolean":
            if self.value.strip().lower() not in ("true", "false"):
                raise ValueError("expected true or false")
            return self.value.strip().lower() == "true"
        return self.value


class TopicForm(RequestModel):
    topic: Topic


def _operator() -> Operator:
    return Operator("dashboard", g.dashboard_session.operator)


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


@bp.get("/users/new")
def user_new(errors: FormErrors | None = None) -> str:
    return render_template(
        "user_new.html", states=list(ConsentState), errors=errors or FormErrors(), form=request.form
    )


@bp.post("/users/new")
def user_add() -> Response | tuple[str, int]:
    rt = runtime()
    form = request.form
    try:
        phone = normalize_phone(form.get("phone", ""), rt.settings.default_region)
        attributes = _attributes_json(form.get("attributes", ""))
        state = form.get("consent_state") or ConsentState.OPT_OUT.value
        # A new user is OPT_OUT: anything else is a consent change, with its reason, like any other.
        consent = (
            None
            if state == ConsentState.OPT_OUT.value
            else ConsentChange.model_validate(
                {
                    "consent_state": state,
                    "reason": form.get("reason", ""),
                    "evidence": form.get("evidence") or None,
                }
            )
        )
        user = users.add_user(rt.uow(), phone, attributes, consent, rt.clock.now(), _operator())
    except (ValidationError, DomainError) as exc:
        return user_new(errors=form_errors(exc)), 400
    return redirect(url_for("users.user_detail", phone=user.phone_e164, notice="created"))


def _attributes_json(text: str) -> dict[str, Any]:
    """The add form's attributes: a JSON object, as the API's body takes them; empty is none."""
    if not text.strip():
        return {}
    try:
        value = parse_json(text.encode(), "attributes")
    except (NotJson, Refused):
        value = None
    if not isinstance(value, dict):
        raise DomainError('attributes: expected a JSON object such as {"city": "London"}', field="attributes")
    return value


@bp.get("/users/<phone>")
def user_detail(phone: str, errors: FormErrors | None = None, form: str | None = None) -> str:
    rt = runtime()
    user = users.get_user(rt.uow(), normalize_phone(phone, rt.settings.default_region))
    with rt.uow() as uow:
        history = queries.consent_history(uow.session, user.phone_e164)
    timeline = conversation.conversation(
        rt.uow(), user.phone_e164, limit=CONVERSATION_PAGE, cursor=request.args.get("before") or None
    )
    return render_template(
        "user.html",
        user=user,
        history=history,
        timeline=timeline,
        states=list(ConsentState),
        errors=errors or FormErrors(),
        failed_form=form,
        notice=notice(),
    )


@bp.post("/users/<phone>/consent")
def user_consent(phone: str) -> Response | tuple[str, int]:
    rt = runtime()
    e164 = normalize_phone(phone, rt.settings.default_region)
    try:
        change = ConsentChange.model_validate(
            {
                "consent_state": request.form.get("consent_state"),
                "reason": request.form.get("reason", ""),
                "evidence": request.form.get("evidence") or None,
            }
        )
        user = users.set_consent(rt.uow(), e164, change, rt.clock.now(), _operator())
    except NotFound:
        raise
    except (ValidationError, DomainError) as exc:
        return user_detail(phone, errors=form_errors(exc), form="consent"), domain_or_400(exc)
    return redirect(url_for("users.user_detail", phone=user.phone_e164, notice="consent"))


@bp.post("/users/<phone>/attributes")
def user_attribute_set(phone: str) -> Response | tuple[str, int]:
    rt = runtime()
    e164 = normalize_phone(phone, rt.settings.default_region)
    try:
        edit = AttributeEdit.model_validate(
            {k: request.form.get(k, "") for k in ("key", "value", "type")}
            | {"type": request.form.get("type") or "text"}
        )
        try:
            value = edit.typed_value()
        except ValueError as exc:
            raise DomainError(f"value: {exc}", field="value") from None
        users.patch_user(rt.uow(), e164, {edit.key: value}, rt.clock.now())
    except NotFound:
        raise
    except (ValidationError, DomainError) as exc:
        return user_detail(phone, errors=form_errors(exc), form="attributes"), 400
    return redirect(url_for("users.user_detail", phone=e164, notice="saved"))


@bp.post("/users/<phone>/attributes/remove")
def user_attribute_remove(phone: str) -> Response | tuple[str, int]:
    rt = runtime()
    e164 = normalize_phone(phone, rt.settings.default_region)
    key = request.form.get("key", "")
    if not key:
        errors = FormErrors(fields={"key": "name the attribute to remove"})
        return user_detail(phone, errors=errors, form="attributes"), 400
    # A merge patch's null removes the key: the API's PATCH, exactly.
    users.patch_user(rt.uow(), e164, {key: None}, rt.clock.now())
    return redirect(url_for("users.user_detail", phone=e164, notice="saved"))


@bp.post("/users/<phone>/topics")
def user_topic_add(phone: str) -> Response | tuple[str, int]:
    return _topic(phone, users.subscribe)


@bp.post("/users/<phone>/topics/remove")
def user_topic_remove(phone: str) -> Response | tuple[str, int]:
    return _topic(phone, users.unsubscribe)


def _topic(phone: str, change: Any) -> Response | tuple[str, int]:
    rt = runtime()
    e164 = normalize_phone(phone, rt.settings.default_region)
    try:
        topic = TopicForm.model_validate({"topic": request.form.get("topic", "")}).topic
        change(rt.uow(), e164, topic)
    except NotFound:
        raise
    except (ValidationError, DomainError) as exc:
        return user_detail(phone, errors=form_errors(exc), form="topics"), 400
    return redirect(url_for("users.user_detail", phone=e164, notice="saved"))


def domain_or_400(exc: ValidationError | DomainError) -> int:
    """A refusal by the rules keeps its status (409 for a consent the rules refuse); bad input is 400."""
    return domain_status(exc) if isinstance(exc, DomainError) else 400


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
