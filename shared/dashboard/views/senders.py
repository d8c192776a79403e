"""Senders: the pool's senders with their state, why and by whom each is paused, current rate and last
error with its meaning; adding one; pausing one (with a reason) and resuming it; and the per-user frequency
caps, edited as rows. Every change goes through the services the API calls, with the same validation and
audit (docs/architecture.md, "Operating senders and caps")."""

from __future__ import annotations

from flask import Blueprint, g, redirect, render_template, request, url_for
from pydantic import ValidationError
from werkzeug.wrappers import Response

from shared.bootstrap import runtime
from shared.dashboard.web import FormErrors, form_errors, notice
from shared.domain.errors import DomainError, NotFound
from shared.services import frequency_caps, senders
from shared.services.frequency_caps import FrequencyCapsIn
from shared.services.senders import SenderIn, SenderPause
from shared.services.users import Operator

bp = Blueprint("senders", __name__)

# Empty cap rows the form offers beside the caps already set.
BLANK_CAP_ROWS = 2


def _operator() -> Operator:
    return Operator("dashboard", g.dashboard_session.operator)


@bp.get("/senders")
def sender_list(
    errors: FormErrors | None = None,
    failed_form: str | None = None,
    values: dict[str, str] | None = None,
    cap_rows: list[dict[str, str]] | None = None,
) -> str:
    rt = runtime()
    items = senders.list_senders(rt.uow(), rt.clock)
    if cap_rows is None:
        cap_rows = [
            {"max_messages": str(cap.max_messages), "window_hours": str(cap.window_hours)}
            for cap in frequency_caps.get_caps(rt.uow())
        ]
    return render_template(
        "senders.html",
        senders=items,
        pools=sorted({s.pool for s in items}),
        cap_rows=cap_rows + [{"max_messages": "", "window_hours": ""}] * BLANK_CAP_ROWS,
        errors=errors or FormErrors(),
        failed_form=failed_form,
        values=values or {"rate_limit_per_second": "80"},
        notice=notice(),
    )


@bp.post("/senders")
def sender_add() -> Response | tuple[str, int]:
    rt = runtime()
    values = {
        name: request.form.get(name, "").strip() for name in ("address", "pool", "rate_limit_per_second")
    }
    try:
        fields: dict[str, str] = {k: v for k, v in values.items() if v}
        senders.add_sender(rt.uow(), rt.clock, SenderIn.model_validate(fields), _operator())
    except (ValidationError, DomainError) as exc:
        status = 409 if isinstance(exc, senders.SenderExists) else 400
        return sender_list(errors=form_errors(exc), failed_form="add", values=values), status
    return redirect(url_for("senders.sender_list", notice="sender_added"))


@bp.post("/senders/<int:sender_id>/pause")
def sender_pause(sender_id: int) -> Response | tuple[str, int]:
    rt = runtime()
    try:
        pause = SenderPause.model_validate({"reason": request.form.get("reason", "")})
        senders.pause_sender(rt.uow(), rt.clock, sender_id, pause, _operator())
    except NotFound:
        raise
    except (ValidationError, DomainError) as exc:
        errors = form_errors(exc)
        errors.fields[f"reason-{sender_id}"] = errors.fields.pop("reason", "give a reason")
        return sender_list(errors=errors, failed_form=f"pause-{sender_id}"), 400
    return redirect(url_for("senders.sender_list", notice="sender_paused"))


@bp.post("/senders/<int:sender_id>/resume")
def sender_resume(sender_id: int) -> Response:
    rt = runtime()
    senders.resume_sender(rt.uow(), rt.clock, sender_id, _operator())
    return redirect(url_for("senders.sender_list", notice="sender_resumed"))


@bp.post("/senders/caps")
def caps_save() -> Response | tuple[str, int]:
    """The rows as typed; a row with both cells empty is no cap."""
    rt = runtime()
    maxes = request.form.getlist("max_messages")
    windows = request.form.getlist("window_hours")
    rows = [
        {"max_messages": m.strip(), "window_hours": w.strip()}
        for m, w in zip(maxes, windows, strict=False)
        if m.strip() or w.strip()
    ]
    try:
        caps = FrequencyCapsIn.model_validate({"caps": rows})
        frequency_caps.replace_caps(rt.uow(), rt.clock, caps, _operator())
    except (ValidationError, DomainError) as exc:
        return sender_list(errors=_cap_errors(exc), failed_form="caps", cap_rows=rows), 400
    return redirect(url_for("senders.sender_list", notice="caps_saved"))


def _cap_errors(exc: ValidationError | DomainError) -> FormErrors:
    """Each problem under its row ("Cap 2: ..."), as the page lists the rows."""
    errors = FormErrors()
    if isinstance(exc, ValidationError):
        for error in exc.errors(include_url=False, include_context=False, include_input=False):
            loc = error["loc"]
            if len(loc) >= 3 and isinstance(loc[1], int):
                errors.general.append(f"Cap {loc[1] + 1}, {str(loc[2]).replace('_', ' ')}: {error['msg']}")
            else:
                errors.general.append(str(error["msg"]))
        return errors
    row = exc.details.get("row")
    errors.general.append(f"Cap {row + 1}: {exc.message}" if isinstance(row, int) else exc.message)
    return errors
