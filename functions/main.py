"""Every Cloud Function entry point, deployed separately from this one bundle (as main.py).

Each is a thin adapter: the request is parsed, validated and answered in shared.entrypoints, which
calls one service and maps its outcome through shared.transport. Nothing heavy happens at import:
the engine and the Twilio, Pub/Sub and Cloud Tasks clients belong to the process's runtime
(shared.bootstrap), which builds each on its first use.
"""

from __future__ import annotations

import functions_framework
from cloudevents.http import CloudEvent
from flask import Request, Response, request

from shared.config import get_settings
from shared.entrypoints import api as api_routes
from shared.entrypoints import pipeline, webhooks
from shared.log import configure_logging

# JSON lines on stdout are what Cloud Logging parses; cheap, so it happens at import.
configure_logging(get_settings().log_level)


@functions_framework.http
def inbound_webhook(request: Request) -> Response:
    return webhooks.inbound_webhook(request)


@functions_framework.http
def status_webhook(request: Request) -> Response:
    return webhooks.status_webhook(request)


@functions_framework.http
def api(request: Request) -> Response:
    return api_routes.api(request)


@functions_framework.http
def trigger_campaign(request: Request) -> Response:
    return pipeline.trigger_campaign(request)


@functions_framework.cloud_event
def fanout_recipients(cloud_event: CloudEvent) -> None:
    # The push request's headers carry the caller's ID token, which the CloudEvent does not.
    pipeline.fanout_recipients(cloud_event, request.headers)


@functions_framework.http
def send_message(request: Request) -> Response:
    return pipeline.send_message(request)
