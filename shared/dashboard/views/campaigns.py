"""Campaigns: the list with progress, the create form, the detail page and the lifecycle buttons. Every
rule is the campaigns service's, the one the API calls: the form builds its input and calls it."""

from __future__ import annotations

import logging
import math
from datetime import datetime, timedelta
from typing import Any

from flask import Blueprint, Response, redirect, render_template, request, url_for
from pydantic import ValidationError
from werkzeug.wrappers import Response as WerkzeugResponse

from shared.bootstrap import Runtime, runtime
from shared.dashboard import charts
from shared.dashboard.web import FormErrors, enum_arg, form_errors, notice
from shared.db.models import Campaign, Segment, Template
from shared.db.queries import dashboard as queries
from shared.domain.enums import CampaignStatus, MessageStatus
from shared.domain.errors import Conflict, DomainError
from shared.domain.quiet_hours import describe_source, format_window, load_timezone
from shared.services import campaigns, messages, reports, senders
from shared.services.campaigns import CampaignIn
from shared.services.reports import CampaignSummary

bp = Blueprint("campaigns", __name__)
log = logging.getLogger(__name__)

PAGE_SIZE = 50
MESSAGES_PAGE_SIZE = 50
# The sends-per-minute chart keeps at most this many bars: a longer campaign gets a bar per few minutes.
CHART_BARS = 120
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
_FORM_FIELDS = (
    "name",
    "template_id",
    "segment_id",
    "topic",
    "rate_limit_per_second",
    "timezone",
    "sender_pool",
    "frequency_cap_policy",
)
# Wall-clock times typed in the campaign's timezone.
_LOCAL_TIMES = ("schedule_time", "ends_at")
_OPTIONAL_TIMES = ("quiet_hours_start", "quiet_hours_end")
# The form's quiet-hours choice: the deployment's default, the times typed, or none.
QUIET_HOURS_CHOICES = ("default", "custom", "none")


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
    return _form_page(
        {"rate_limit_per_second": "80", "timezone": "UTC", "quiet_hours": "default"}, FormErrors()
    )


@bp.post("/campaigns/new")
def campaign_create() -> WerkzeugResponse | tuple[str, int]:
    values = request.form.to_dict()
    rt = runtime()
    try:
        created = campaigns.create_campaign(
            rt.uow(),
            CampaignIn.model_validate(_campaign_values(values)),
            default_quiet_hours=rt.settings.default_quiet_hours_window,
            now=rt.clock.now(),
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
    if "transactional" in form:
        values["transactional"] = form["transactional"] in ("true", "on", "1")
    for name in _LOCAL_TIMES:
        if form.get(name):
            zone = load_timezone(values.get("timezone", "UTC"))
            try:
                values[name] = datetime.fromisoformat(form[name]).replace(tzinfo=zone)
            except ValueError:
                values[name] = form[name]  # the model says what is wrong with it
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
    with runtime().uow() as uow:
        templates = queries.choices(uow.session, Template)
        segments = queries.choices(uow.session, Segment)
    pools = senders.pool_names(runtime().uow())
    return render_template(
        "campaign_form.html",
        values=values,
        errors=errors,
        templates=templates,
        segments=segments,
        pools=pools,
        default_quiet_hours=format_window(runtime().settings.default_quiet_hours_window),
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
    audience = summary.analytics.audience
    progress = queries.progress_from_counts(audience, summary.counts, summary.handed_to_twilio)
    chart, chart_minutes = _sends_chart(summary)
    return render_template(
        "campaign_detail.html",
        campaign=campaign,
        summary=summary,
        progress=progress,
        chart=chart,
        chart_minutes=chart_minutes,
        messages=page,
        message_status=status.value if status else None,
        statuses=list(MessageStatus),
        errors=summary.analytics.error_codes,
        notice=notice(),
        action_error=action_error,
        quiet_hours=describe_source(
            campaign.quiet_hours_start, campaign.quiet_hours_end, campaign.quiet_hours_source
        ),
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


def _sends_chart(summary: CampaignSummary) -> tuple[charts.BarChart | None, int]:
    """Sends per minute from the summary's own counts (no query of its own): a bar per minute, or per few
    minutes when the campaign sent for longer than CHART_BARS minutes; empty minutes are bars of 0."""
    minutes = summary.analytics.sends_per_minute
    if not minutes:
        return None, 1
    first, last = minutes[0].minute, minutes[-1].minute
    span = int((last - first) / timedelta(minutes=1)) + 1
    per_bar = max(1, math.ceil(span / CHART_BARS))
    bucket = timedelta(minutes=per_bar)
    counts: dict[datetime, int] = {}
    for entry in minutes:
        start = first + ((entry.minute - first) // bucket) * bucket
        counts[start] = counts.get(start, 0) + entry.sent
    starts = charts.bucket_starts(first, last + timedelta(minutes=1), bucket)
    return charts.bar_chart(counts, starts, "sent"), per_bar


@bp.get("/campaigns/<int:campaign_id>/messages.csv")
def campaign_export(campaign_id: int) -> Response:
    """The per-recipient CSV (the reports service's, as the API's): streamed, full phone numbers, which are
    never logged."""
    rows = reports.export_messages(runtime().uow(), campaign_id)
    log.info("campaign messages exported", extra={"campaign_id": campaign_id})
    return Response(
        rows,
        mimetype="text/csv",
        headers={
            "Content-Disposition": f'attachment; filename="campaign-{campaign_id}-messages.csv"',
            "Cache-Control": "no-store",
        },
    )


@bp.post("/campaigns/<int:campaign_id>/<action>")
def campaign_action(campaign_id: int, action: str) -> WerkzeugResponse | tuple[str, int]:
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
