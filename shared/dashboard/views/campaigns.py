"""Campaigns: the list with progress, the create form, the detail page and the lifecycle buttons. Every
rule is the campaigns service's, the one the API calls: the form builds its input and calls it."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from flask import Blueprint, redirect, render_template, request, url_for
from pydantic import ValidationError
from werkzeug.wrappers import Response

from shared.adapters import clients
from shared.dashboard import charts
from shared.dashboard.web import FormErrors, Wiring, enum_arg, form_errors, notice, wiring
from shared.db.models import Campaign, Segment, Template
from shared.db.queries import dashboard as queries
from shared.domain.enums import CampaignStatus, MessageStatus
from shared.domain.errors import Conflict, DomainError
from shared.domain.quiet_hours import describe_source, format_window, load_timezone
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
# The form's quiet-hours choice: the deployment's default, the times typed, or none.
QUIET_HOURS_CHOICES = ("default", "custom", "none")


@bp.get("/campaigns")
def campaign_list() -> str:
    wired = wiring()
    status = enum_arg(CampaignStatus, "status")
    page = campaigns.list_campaigns(
        wired.uow(), limit=PAGE_SIZE, cursor=request.args.get("cursor") or None, status=status
    )
    with wired.uow() as uow:
        progress = queries.campaign_progress(uow.session, [c.id for c in page.items])
    return render_template(
        "campaigns.html", page=page, progress=progress, status=status, statuses=list(CampaignStatus)
    )


@bp.get("/campaigns/new")
def campaign_new() -> str:
    return _form_page(
        {"rate_limit_per_second": "80", "timezone": "UTC", "quiet_hours": "default"}, FormErrors()
    )


@bp.post("/campaigns/new")
def campaign_create() -> Response | tuple[str, int]:
    values = request.form.to_dict()
    wired = wiring()
    try:
        created = campaigns.create_campaign(
            wired.uow(),
            CampaignIn.model_validate(_campaign_values(values)),
            default_quiet_hours=wired.settings.default_quiet_hours_window,
        )
    except (ValidationError, DomainError) as exc:
        return _form_page(values, _segment_under_its_field(form_errors(exc))), 400
    except _QuietHoursChoice as refused:
        return _form_page(values, FormErrors(fields={"quiet_hours": str(refused)})), 400
    return redirect(url_for("campaigns.campaign_detail", campaign_id=created.id, notice="created"))


def _campaign_values(form: dict[str, str]) -> dict[str, Any]:
    """Form text to the service's input: blanks are absent, and the schedule, typed as a wall-clock time,
    is read in the campaign's timezone."""
    values: dict[str, Any] = {name: form[name].strip() for name in _FORM_FIELDS if form.get(name, "").strip()}
    values.update(_quiet_hours(form))
    if form.get("schedule_time"):
        zone = load_timezone(values.get("timezone", "UTC"))
        try:
            values["schedule_time"] = datetime.fromisoformat(form["schedule_time"]).replace(tzinfo=zone)
        except ValueError:
            values["schedule_time"] = form["schedule_time"]  # the model says what is wrong with it
    return values


def _segment_under_its_field(errors: FormErrors) -> FormErrors:
    """The form offers saved segments only: "give segment_id or segment" means none was chosen."""
    for message in list(errors.general):
        if "segment_id and segment" in message:
            errors.general.remove(message)
            errors.fields.setdefault("segment_id", "Choose a segment.")
    return errors


class _QuietHoursChoice(ValueError):
    """The quiet-hours choice contradicts the times typed."""


def _quiet_hours(form: dict[str, str]) -> dict[str, Any]:
    """The choice as the service's input: left out (the default), the times typed, or both null (none).
    A form without the choice (a script's POST) means "custom" when times are typed, else the default."""
    typed = {name: form[name] for name in _OPTIONAL_TIMES if form.get(name)}
    choice = form.get("quiet_hours") or ("custom" if typed else "default")
    if choice not in QUIET_HOURS_CHOICES:
        raise _QuietHoursChoice(f"choose one of: {', '.join(QUIET_HOURS_CHOICES)}")
    if choice == "custom":
        return typed  # the service's input says what is missing when only one is typed
    if typed:
        raise _QuietHoursChoice(
            f"times were typed but '{choice}' is chosen: choose 'these hours', or clear the times"
        )
    return {} if choice == "default" else dict.fromkeys(_OPTIONAL_TIMES)


def _form_page(values: dict[str, str], errors: FormErrors) -> str:
    with wiring().uow() as uow:
        templates = queries.choices(uow.session, Template)
        segments = queries.choices(uow.session, Segment)
    return render_template(
        "campaign_form.html",
        values=values,
        errors=errors,
        templates=templates,
        segments=segments,
        default_quiet_hours=format_window(wiring().settings.default_quiet_hours_window),
    )


@bp.get("/campaigns/<int:campaign_id>")
def campaign_detail(campaign_id: int, action_error: str | None = None) -> str:
    wired = wiring()
    campaign = campaigns.get_campaign(wired.uow(), campaign_id)
    summary = reports.campaign_summary(wired.uow(), campaign_id)
    status = enum_arg(MessageStatus, "status")
    page = messages.list_messages(
        wired.uow(),
        limit=MESSAGES_PAGE_SIZE,
        cursor=request.args.get("cursor") or None,
        campaign_id=campaign_id,
        status=status,
    )
    with wired.uow() as uow:
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
        quiet_hours=describe_source(
            campaign.quiet_hours_start, campaign.quiet_hours_end, campaign.quiet_hours_source
        ),
        refresh=_still_changing(campaign, summary, wired.clock.now()),
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
        _act(wiring(), action, campaign_id)
    except Conflict as refused:
        return campaign_detail(campaign_id, action_error=refused.message), 409
    return redirect(url_for("campaigns.campaign_detail", campaign_id=campaign_id, notice=ACTIONS[action]))


def _act(wired: Wiring, action: str, campaign_id: int) -> None:
    uow, clock = wired.uow(), wired.clock
    match action:
        case "ready":
            campaigns.mark_ready(uow, campaign_id, clock)
        case "trigger":
            page_size = wired.settings.fanout_page_size
            campaigns.trigger_campaign(uow, clients.publisher(), campaign_id, clock, page_size)
        case "pause":
            campaigns.pause_campaign(uow, campaign_id, clock)
        case "resume":
            campaigns.resume_campaign(uow, clients.publisher(), campaign_id, clock)
        case "cancel":
            campaigns.cancel_campaign(uow, campaign_id, clock)
