"""Templates and segments: list, create and edit forms with the services' validation (the API's too), the
variables a template uses, a template's preview (for a user or typed attributes) and test send (to one
opted-in user, audited), and audience previews (size and sample) for a definition or a saved segment."""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, g, jsonify, redirect, render_template, request, url_for
from pydantic import ValidationError
from werkzeug.wrappers import Response

from shared.api.errors import domain_status
from shared.bootstrap import runtime
from shared.boundary import parse_json
from shared.dashboard.web import FormErrors, form_errors, notice
from shared.domain.errors import DomainError
from shared.domain.templates import Channel, template_variables, validate_template
from shared.services import segments, template_test_send, templates
from shared.services.segments import PreviewIn, SegmentIn, SegmentPatch
from shared.services.send_config import SendConfig
from shared.services.template_test_send import TemplateTestSendIn
from shared.services.templates import PreviewIn as TemplatePreviewIn
from shared.services.templates import TemplateIn, TemplatePatch

bp = Blueprint("library", __name__)

PAGE_SIZE = 100
SAMPLE_SIZE = 10
_Invalid = (ValidationError, DomainError)


def _json_field(name: str, default: Any) -> Any:
    raw = request.form.get(name, "").strip()
    return parse_json(raw, name) if raw else default


# --- templates ---


@bp.get("/templates")
def template_list(
    values: dict[str, str] | None = None, errors: FormErrors | None = None, **panel: Any
) -> str:
    """`panel`: what the preview and test-send forms under the editor show (their fields, result, error)."""
    rt = runtime()
    page = templates.list_templates(rt.uow(), limit=PAGE_SIZE, cursor=request.args.get("cursor") or None)
    editing = request.args.get("edit", type=int)
    if values is None and editing is not None:
        row = templates.get_template(rt.uow(), editing)
        values = {
            "name": row.name,
            "content": row.content,
            "content_sid": row.content_sid or "",
            "content_variables": json.dumps(row.content_variables) if row.content_variables else "",
            "locale": row.locale or "",
            "channel": row.channel,
        }
    return render_template(
        "templates.html",
        page=page,
        values=values or {},
        errors=errors or FormErrors(),
        editing=editing,
        notice=notice(),
        channels=list(Channel),
        panel=panel,
    )


@bp.post("/templates")
def template_save() -> Response | tuple[str, int]:
    editing = request.args.get("edit", type=int)
    uow = runtime().uow()
    try:
        values = {
            "name": request.form.get("name", "").strip(),
            "content": request.form.get("content", ""),
            "content_sid": request.form.get("content_sid", "").strip() or None,
            "content_variables": _json_field("content_variables", {}),
            "locale": request.form.get("locale", "").strip() or None,
            "channel": request.form.get("channel") or Channel.WHATSAPP.value,
        }
        if editing is None:
            templates.create_template(uow, TemplateIn.model_validate(values))
        else:
            templates.change_template(uow, editing, TemplatePatch.model_validate(values))
    except _Invalid as exc:
        return template_list(values=request.form.to_dict(), errors=form_errors(exc)), 400
    return redirect(url_for("library.template_list", notice="saved" if editing else "created"))


@bp.post("/templates/variables")
def template_variables_preview() -> Response:
    """The live variable list under the content box: the domain's own parser, so it cannot disagree."""
    content = request.form.get("content", "")
    try:
        validate_template(content)
    except DomainError as exc:
        return jsonify(variables=[], error=exc.message)
    return jsonify(variables=template_variables(content), error=None)


@bp.post("/templates/preview")
def template_preview() -> tuple[str, int]:
    """The content (the editor's, or the saved template's) rendered for a user or typed attributes; the
    page comes back with the preview panel filled (the script swaps in just that panel)."""
    editing = request.args.get("edit", type=int)
    fields = request.form.to_dict()
    try:
        body = TemplatePreviewIn.model_validate(
            {
                "content": fields.get("content") or None,
                "phone": fields.get("phone", "").strip() or None,
                "attributes": _json_field("attributes", None),
            }
        )
        rt = runtime()
        preview = templates.preview_template(rt.uow(), editing, body, rt.settings.default_region)
    except _Invalid as exc:
        status = domain_status(exc) if isinstance(exc, DomainError) else 400
        return template_list(preview_fields=fields, preview_error=_message(exc)), status
    return template_list(preview_fields=fields, preview=preview), 200


@bp.post("/templates/<int:template_id>/test-send")
def template_test_send_submit(template_id: int) -> tuple[str, int]:
    """Send the template now to one opted-in user (the service refuses anyone else), audited with this
    operator's token fingerprint; the page comes back with the outcome, Twilio's error explained."""
    rt = runtime()
    fields = request.form.to_dict()
    try:
        result = template_test_send.send_template_test(
            rt.uow(),
            rt.twilio_sender,
            rt.clock,
            SendConfig.from_settings(rt.settings),
            template_id,
            TemplateTestSendIn.model_validate({"phone": fields.get("phone", "").strip()}),
            operator="dashboard:" + (g.dashboard_session.token_fingerprint or "")[:12],
            default_region=rt.settings.default_region,
        )
    except _Invalid as exc:
        status = domain_status(exc) if isinstance(exc, DomainError) else 400
        return template_list(send_fields=fields, send_error=_message(exc)), status
    return template_list(send_fields=fields, sent=result), 200 if result.accepted else 502


def _message(exc: ValidationError | DomainError) -> str:
    errors = form_errors(exc)
    return "; ".join([*(f"{name}: {text}" for name, text in errors.fields.items()), *errors.general])


# --- segments ---


@bp.get("/segments")
def segment_list(values: dict[str, str] | None = None, errors: FormErrors | None = None) -> str:
    rt = runtime()
    page = segments.list_segments(rt.uow(), limit=PAGE_SIZE, cursor=request.args.get("cursor") or None)
    editing = request.args.get("edit", type=int)
    if values is None and editing is not None:
        row = segments.get_segment(rt.uow(), editing)
        values = {"name": row.name, "definition": json.dumps(row.definition, indent=2)}
    return render_template(
        "segments.html",
        page=page,
        values=values or {},
        errors=errors or FormErrors(),
        editing=editing,
        notice=notice(),
    )


@bp.post("/segments")
def segment_save() -> Response | tuple[str, int]:
    editing = request.args.get("edit", type=int)
    uow = runtime().uow()
    try:
        values = {"name": request.form.get("name", "").strip(), "definition": _json_field("definition", None)}
        if editing is None:
            segments.create_segment(uow, SegmentIn.model_validate(values))
        else:
            segments.change_segment(uow, editing, SegmentPatch.model_validate(values))
    except _Invalid as exc:
        return segment_list(values=request.form.to_dict(), errors=form_errors(exc)), 400
    return redirect(url_for("library.segment_list", notice="saved" if editing else "created"))


@bp.post("/segments/preview")
def segment_preview() -> tuple[Response, int]:
    try:
        body = PreviewIn.model_validate(
            {
                "definition": _json_field("definition", None),
                "topic": request.form.get("topic") or None,
                "sample_size": SAMPLE_SIZE,
            }
        )
        preview = segments.preview_definition(runtime().uow(), body)
    except _Invalid as exc:
        errors = form_errors(exc)
        return jsonify(error=next(iter(errors.fields.values()), None) or "; ".join(errors.general)), 400
    return jsonify(audience_size=preview.audience_size, sample=preview.sample), 200


@bp.get("/segments/<int:segment_id>/audience")
def segment_audience(segment_id: int) -> Response:
    topic = request.args.get("topic") or None
    preview = segments.preview_segment(runtime().uow(), segment_id, topic=topic, sample_size=0)
    return jsonify(audience_size=preview.audience_size)
