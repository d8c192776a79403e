"""Monitoring: the inbound feed (phones masked), the newest send errors with Twilio's meaning, and the
send backlog of every running or paused campaign. Refreshes itself."""

from __future__ import annotations

from flask import Blueprint, render_template

from shared.bootstrap import runtime
from shared.db.queries import dashboard as queries
from shared.domain.twilio_errors import describe
from shared.log import mask_phone
from shared.services import reports

bp = Blueprint("monitoring", __name__)

FEED_SIZE = 30


@bp.get("/monitoring")
def monitoring() -> str:
    rt = runtime()
    inbound = reports.recent_inbound(rt.uow(), limit=FEED_SIZE, cursor=None)
    with rt.uow() as uow:
        errors = queries.recent_errors(uow.session)
        backlog = queries.backlog(uow.session, rt.clock.now())
    return render_template(
        "monitoring.html",
        inbound=inbound.items,
        errors=[(row, mask_phone(row.recipient_phone), describe(row.error_code)) for row in errors],
        backlog=backlog,
        now=rt.clock.now(),
    )
