"""Overview: the health panel (every check with its level, value and threshold), what is active and how
sending went today, refreshing itself."""

from __future__ import annotations

from datetime import timedelta

from flask import Blueprint, render_template

from shared.bootstrap import runtime
from shared.dashboard import charts
from shared.db.queries import dashboard as queries
from shared.services import reports
from shared.services.health import Thresholds, check_health, worst

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
    checks = check_health(
        rt.uow(), rt.clock, Thresholds.from_settings(rt.settings), lambda: rt.queue_inspector
    )
    return render_template(
        "overview.html", numbers=numbers, chart=chart, checks=checks, health=worst(checks).value
    )
