"""Campaigns: the list with progress, the create form, the detail page and the lifecycle buttons. Every
rule is the campaigns service's, the one the API calls: the form builds its input and calls it."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from flask import Blueprint, redirect, render_template, request, url_for
from pydantic import ValidationError
from werkzeug.wrappers import Response

from shared.bootstrap import Runtime, runtime
from shared.dashboard import charts
from shared.dashboard.web import FormErrors, enum_arg, form_errors, notice
from shared.db.models import Campaign, Segment, Template
from shared.db.queries import dashboard as queries
from shared.domain.enums import CampaignStatus, MessageStatus
from shared.domain.errors import Conflict, DomainError
from shared.domain.quiet_hours import load_timezone
from shared.domain.twilio_errors import describe
from shared.services import campaigns, messages, reports
from shared.services.campaigns import CampaignIn
from shared.services.reports import CampaignSummary

bp = Blueprint("campaigns", __name__)

PAGE_SIZE = 50
MESSAGES_PAGE_SIZE = 50
# The sends-over-time chart keeps about this many bars, however long the campaign ran.
CHART_BARS = 60
# A finished campaign's page keeps refreshing this long while Twilio's delivery callbacks still arrive.
CALLBACK_SETTLING = timedelta(minutes=10)
_LIVE = (CampaignStatus.READY, CampaignStatus.RUNNING)
_AWAITING_CALLBACK = (MessageStatus.ACCEPTED, MessageStatus.SENT, MessageStatus.AMBIGUOUS)


# Each button's action, and the notice the page shows after it.
ACTIONS = {
    "ready": "ready",
    "trigger": "triggered",
    "pause": "paused",
    "resume": "resumed",
    "cancel": "cancelled",
}
_FORM_FIELDS = ("name", "template_id", "segment_id", "topic", "rate_limit_per_second", "timezone")
_OPTIONAL_TIMES = ("quiet_hours_start", "quiet_hours_end")


@bp.get("/campaigns")
def campaign_list() -> str:
    rt = runtime()
    status = enum_arg(CampaignStatus, "status")
    page = campaigns.list_campaigns(
        rt.uow(), limit=PAGE_SIZE, cursor=request.args.get("cursor") or None, status=status
    )
    with rt.uow() as uow:
        progress = queries.campaign_progress(uow.session, [c.id for c in page.items])
    return render_template(
        "campaigns.html", page=page, progress=progress, status=status, statuses=list(CampaignStatus)
    )


@bp.get("/campaigns/new")
def campaign_new() -> str:
    return _form_page({"rate_limit_per_second": "80", "timezone": "UTC"}, FormErrors())


@bp.post("/campaigns/new")
def campaign_create() -> Response | tuple[str, int]:
    values = request.form.to_dict()
    try:
        created = campaigns.create_campaign(
            runtime().uow(), CampaignIn.model_validate(_campaign_values(values))
        )
    except (ValidationError, DomainError) as exc:
        return _form_page(values, form_errors(exc)), 400
    return redirect(url_for("campaigns.campaign_detail", campaign_id=created.id, notice="created"))


def _campaign_values(form: dict[str, str]) -> dict[str, Any]:
    """Form text to the service's input: blanks are absent, and the schedule, typed as a wall-clock time,
    is read in the campaign's timezone."""
    values: dict[str, Any] = {name: form[name].strip() for name in _FORM_FIELDS if form.get(name, "").strip()}
    for name in _OPTIONAL_TIMES:
        if form.get(name):
            values[name] = form[name]
    if form.get("schedule_time"):
        zone = load_timezone(values.get("timezone", "UTC"))
        try:
            values["schedule_time"] = datetime.fromisoformat(form["schedule_time"]).replace(tzinfo=zone)
        except ValueError:
            values["schedule_time"] = form["schedule_time"]  # the model says what is wrong with it
    return values


def _form_page(values: dict[str, str], errors: FormErrors) -> str:
    with runtime().uow() as uow:
        templates = queries.choices(uow.session, Template)
        segments = queries.choices(uow.session, Segment)
    return render_template(
        "campaign_form.html", values=values, errors=errors, templates=templates, segments=segments
    )


@bp.get("/campaigns/<int:campaign_id>")
def campaign_detail(campaign_id: int, action_error: str | None = None) -> str:
    rt = runtime()
    campaign = campaigns.get_campaign(rt.uow(), campaign_id)
    summary = reports.campaign_summary(rt.uow(), campaign_id)
    status = enum_arg(MessageStatus, "status")
    page = messages.list_messages(
        rt.uow(),
        limit=MESSAGES_PAGE_SIZE,
        cursor=request.args.get("cursor") or None,
        campaign_id=campaign_id,
        status=status,
    )
    with rt.uow() as uow:
        audience = queries.audiences(uow.session, [campaign_id]).get(campaign_id, 0)
        progress = queries.progress_from_counts(audience, summary.counts, summary.handed_to_twilio)
        chart = _sends_chart(uow.session, summary)
    return render_template(
        "campaign_detail.html",
        campaign=campaign,
        summary=summary,
        progress=progress,
        chart=chart,
        messages=page,
        message_status=status.value if status else None,
        statuses=list(MessageStatus),
        errors=[(e.error_code, e.count, describe(e.error_code)) for e in summary.top_error_codes],
        notice=notice(),
        action_error=action_error,
        refresh=_still_changing(campaign, summary, rt.clock.now()),
    )


def _still_changing(campaign: Campaign, summary: CampaignSummary, now: datetime) -> bool:
    if campaign.status in _LIVE:
        return True
    awaiting = sum(summary.counts.get(status, 0) for status in _AWAITING_CALLBACK)
    return (
        bool(awaiting)
        and campaign.completed_at is not None
        and now - campaign.completed_at < CALLBACK_SETTLING
    )


def _sends_chart(session: Any, summary: CampaignSummary) -> charts.BarChart | None:
    if summary.first_sent_at is None or summary.last_sent_at is None:
        return None
    span = summary.last_sent_at - summary.first_sent_at
    bucket = max(timedelta(seconds=1), timedelta(seconds=int(span.total_seconds() / CHART_BARS) + 1))
    since = summary.first_sent_at.replace(microsecond=0)
    counts = queries.sends_per_bucket(session, since, bucket, campaign_id=summary.campaign_id)
    return charts.bar_chart(
        counts, charts.bucket_starts(since, summary.last_sent_at + bucket, bucket), "sent"
    )


@bp.post("/campaigns/<int:campaign_id>/<action>")
def campaign_action(campaign_id: int, action: str) -> Response | tuple[str, int]:
    if action not in ACTIONS:
        return campaign_detail(campaign_id, action_error=f"Unknown action {action!r}."), 404
    try:
        _act(runtime(), action, campaign_id)
    except Conflict as refused:
        return campaign_detail(campaign_id, action_error=refused.message), 409
    return redirect(url_for("campaigns.campaign_detail", campaign_id=campaign_id, notice=ACTIONS[action]))


def _act(rt: Runtime, action: str, campaign_id: int) -> None:
    uow, clock = rt.uow(), rt.clock
    match action:
        case "ready":
            campaigns.mark_ready(uow, campaign_id, clock)
        case "trigger":
            page_size = rt.settings.fanout_page_size
            campaigns.trigger_campaign(uow, rt.publisher, campaign_id, clock, page_size)
        case "pause":
            campaigns.pause_campaign(uow, campaign_id, clock)
        case "resume":
            campaigns.resume_campaign(uow, rt.publisher, campaign_id, clock)
        case "cancel":
            campaigns.cancel_campaign(uow, campaign_id, clock)
