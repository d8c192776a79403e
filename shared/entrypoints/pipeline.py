"""The campaign pipeline's three doors: trigger_campaign (Cloud Scheduler), fanout_recipients (Pub/Sub push)
and send_message (Cloud Tasks). Each checks its caller's identity (shared.adapters.oidc), parses, calls one
service, and maps its outcome. Operators start a campaign through the API (POST /v1/campaigns/{id}/trigger):
trigger_campaign's ingress admits only Google's own services.

The database, the clock and the clients (Pub/Sub publisher, Cloud Tasks, Twilio) come from the process's
runtime (shared.bootstrap), taken at request time and built on first use.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import time
from dataclasses import asdict
from typing import Any

from cloudevents.http import CloudEvent
from flask import Request, Response

from shared.adapters.oidc import CallerPolicy, HeaderSource, verified_caller
from shared.bootstrap import Runtime, runtime
from shared.boundary import BIGINT_MAX, INTEGER_MAX, Refused, TooLarge, bounded_int, parse_json, read_body
from shared.config import Settings
from shared.log import set_trace
from shared.outcome import DATABASE_UNAVAILABLE, Outcome, Result, unless_db_unavailable
from shared.services import campaign_lifecycle as lifecycle
from shared.services import webhook_errors
from shared.services.dead_letters import drain_dead_letters
from shared.services.fanout import FanoutConfig, fanout_page
from shared.services.message_tallies import fold_tallies
from shared.services.page_publishing import PageMessage
from shared.services.send_config import SendConfig
from shared.services.sender import send_message as send_one
from shared.services.sweeper import SweepConfig, sweep
from shared.transport import for_cloud_tasks, for_pubsub

log = logging.getLogger(__name__)

# What Cloud Tasks and Cloud Scheduler send here is a few dozen bytes of JSON: {"message_id", "generation"}
# or {"campaign_id"}. Anything much larger is refused before it is parsed.
MAX_BODY_BYTES = 16 * 1024


def trigger_campaign(request: Request) -> Response:
    """No body: start every due campaign (the scheduler's tick). `{"campaign_id": N}`: start that one now."""
    rt = runtime()
    settings = rt.settings
    set_trace(request.headers.get("X-Cloud-Trace-Context"), settings.gcp_project)
    if not _caller_allowed(request.headers, settings, settings.trigger_campaign_url, "trigger_campaign"):
        return _json({"error": "forbidden: an ID token of the scheduler's service account is required"}, 403)
    try:
        campaign_id = _campaign_to_start(request)
    except Refused as refused:
        return _json(
            {"error": refused.message, "field": refused.field}, 413 if isinstance(refused, TooLarge) else 400
        )
    answers: list[Response] = []

    def handle() -> Result:
        answers.append(_tick(rt) if campaign_id is None else _start_one(rt, campaign_id))
        return Result(Outcome.DONE)

    if unless_db_unavailable(handle).outcome is Outcome.TRANSIENT_FAILURE:
        # Cloud Scheduler retries nothing (the next tick is the retry); the 503 says why this one failed.
        return _json({"error": DATABASE_UNAVAILABLE}, 503)
    return answers[0]


def _tick(rt: Runtime) -> Response:
    """The scheduler's minute: start what is due, then repair what crashes and outages left behind."""
    settings, uow, clock = rt.settings, rt.uow(), rt.clock
    results = lifecycle.start_due_campaigns(uow, rt.publisher, clock, settings.fanout_page_size)
    report = sweep(
        uow,
        rt.task_scheduler,
        rt.twilio_lookup,
        rt.publisher,
        clock,
        SweepConfig.from_settings(settings, SendConfig.from_settings(settings)),
    )
    # Dead-lettered pages become rows the health report counts (docs/architecture.md, "Health checks").
    drained = drain_dead_letters(uow, lambda: rt.dead_letter_source, clock, settings.dead_letter_drain_limit)
    webhook_errors.prune(uow, clock)
    # docs/architecture.md, "Analytics at a million messages".
    fold_tallies(uow)
    return _json(
        {
            "started": [_start_json(r) for r in results],
            "sweep": asdict(report),
            "dead_letters": asdict(drained),
        },
        200,
    )


def _start_one(rt: Runtime, campaign_id: int) -> Response:
    page_size = rt.settings.fanout_page_size
    result = lifecycle.start_campaign(rt.uow(), rt.publisher, campaign_id, rt.clock, page_size)
    status = 200 if result.started else 404 if result.status is None else 409
    return _json(_start_json(result), status)


def fanout_recipients(cloud_event: CloudEvent, headers: HeaderSource) -> None:
    """`headers`: the push request's, where the caller's ID token is (a CloudEvent carries none)."""
    rt = runtime()
    settings = rt.settings
    if not _caller_allowed(headers, settings, settings.fanout_recipients_url, "fanout_recipients"):
        for_pubsub(Result(Outcome.FORBIDDEN))
        return
    try:
        page = PageMessage.decode(_pubsub_data(cloud_event))
    except ValueError as error:
        for_pubsub(Result(Outcome.MALFORMED, str(error)))
        return
    config = FanoutConfig(settings.fanout_page_max_age, settings.rate_safety_margin)
    for_pubsub(
        unless_db_unavailable(lambda: fanout_page(rt.uow(), rt.task_scheduler, rt.clock, page, config))
    )


def send_message(request: Request) -> Response:
    rt = runtime()
    settings = rt.settings
    set_trace(request.headers.get("X-Cloud-Trace-Context"), settings.gcp_project)
    if not _caller_allowed(request.headers, settings, settings.send_message_url, "send_message"):
        return for_cloud_tasks(Result(Outcome.FORBIDDEN))
    try:
        message_id, generation = _task_body(request)
    except Refused as refused:
        return for_cloud_tasks(
            Result(Outcome.TOO_LARGE if isinstance(refused, TooLarge) else Outcome.MALFORMED, refused.message)
        )
    config = SendConfig.from_settings(settings)
    result = unless_db_unavailable(
        lambda: send_one(
            rt.uow(),
            rt.twilio_sender,
            rt.task_scheduler,
            rt.clock,
            time.sleep,
            config,
            message_id,
            generation,
        )
    )
    return for_cloud_tasks(result)


def _caller_allowed(headers: HeaderSource, settings: Settings, audience: str | None, door: str) -> bool:
    if verified_caller(headers, CallerPolicy.for_function(settings, audience)) is not None:
        return True
    log.warning("%s refused: no ID token of an allowed caller for this function", door)
    return False


def _campaign_to_start(request: Request) -> int | None:
    body = read_body(request, MAX_BODY_BYTES)
    payload = parse_json(body, "body") if body else {}
    if not isinstance(payload, dict):
        raise Refused("body", 'expected no body, or {"campaign_id": <positive integer>}')
    campaign_id = payload.get("campaign_id")
    return None if campaign_id is None else bounded_int(campaign_id, "campaign_id", 1, BIGINT_MAX)


def _task_body(request: Request) -> tuple[int, int]:
    """The task's {message_id, generation}, within their columns (BIGINT, INTEGER)."""
    body = parse_json(read_body(request, MAX_BODY_BYTES), "body")
    if not isinstance(body, dict):
        raise Refused("body", "expected {message_id: int >= 1, generation: int >= 0}")
    return (
        bounded_int(body.get("message_id"), "message_id", 1, BIGINT_MAX),
        bounded_int(body.get("generation"), "generation", 0, INTEGER_MAX),
    )


def _pubsub_data(cloud_event: CloudEvent) -> bytes:
    """The Pub/Sub message's payload from the push envelope functions-framework turned into a CloudEvent."""
    data = cloud_event.get_data()
    message = data.get("message") if isinstance(data, dict) else None
    encoded = message.get("data") if isinstance(message, dict) else None
    if not isinstance(encoded, str):
        raise ValueError("the event carries no Pub/Sub message data")
    try:
        return base64.b64decode(encoded, validate=True)
    except binascii.Error:
        raise ValueError("the Pub/Sub message data is not base64") from None


def _start_json(result: lifecycle.StartResult) -> dict[str, Any]:
    return {
        "campaign_id": result.campaign_id,
        "started": result.started,
        "status": result.status.value if result.status else None,
        "recipients": result.recipients,
        "pages": result.pages,
        "problem": result.problem,
    }


def _json(payload: dict[str, Any], status: int) -> Response:
    return Response(json.dumps(payload), status=status, mimetype="application/json")
