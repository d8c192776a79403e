"""One message: its ledger row, every status callback Twilio sent for it, and its audit trail."""

from __future__ import annotations

from flask import Blueprint, render_template

from shared.bootstrap import runtime
from shared.domain.twilio_errors import describe
from shared.services import messages

bp = Blueprint("messages", __name__)


@bp.get("/messages/<int:message_id>")
def message_detail(message_id: int) -> str:
    detail = messages.get_message(runtime().uow(), message_id)
    code = detail.message.error_code
    return render_template(
        "message.html",
        message=detail.message,
        receipts=detail.receipts,
        audit_events=detail.audit_events,
        error_meaning=None if code is None else describe(code),
    )
