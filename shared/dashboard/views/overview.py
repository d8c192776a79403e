"""Overview: what is running and how sending went today, refreshing itself."""

from __future__ import annotations

from datetime import timedelta

from flask import Blueprint, render_template

from shared.bootstrap import runtime
from shared.dashboard import charts
from shared.db.queries import dashboard as queries
from shared.services import reports

bp = Blueprint("overview", __name__)

CHART_SPAN = timedelta(hours=1)
CHART_BUCKET = timedelta(minutes=1)


@bp.get("/")
def overview() -> str:
    rt = runtime()
    now = rt.clock.now()
    numbers = reports.overview(rt.uow(), now)
    since = (now - CHART_SPAN).replace(second=0, microsecond=0) + CHART_BUCKET
    with rt.uow() as uow:
        counts = queries.sends_per_bucket(uow.session, since, CHART_BUCKET)
    chart = charts.bar_chart(counts, charts.bucket_starts(since, now, CHART_BUCKET), "sent")
    return render_template("overview.html", numbers=numbers, chart=chart)
