"""One message: its ledger row, every status callback Twilio sent for it, and its audit trail."""

from __future__ import annotations

from flask import Blueprint, render_template

from shared.api.routes import messages as api
from shared.dashboard.web import api_context
from shared.domain.twilio_errors import describe

bp = Blueprint("messages", __name__)


@bp.get("/messages/<int:message_id>")
def message_detail(message_id: int) -> str:
    message = api.get_message(api_context(), message_id)
    meaning = None if message.error_code is None else describe(message.error_code)
    return render_template("message.html", message=message, error_meaning=meaning)
