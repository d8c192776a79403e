"""PLACEHOLDER: replaced by the issue that builds these entry points. Answers 501 until then."""

from __future__ import annotations

from cloudevents.http import CloudEvent
from flask import Request, Response


def trigger_campaign(request: Request) -> Response:
    return Response("not implemented yet", status=501)


def send_message(request: Request) -> Response:
    return Response("not implemented yet", status=501)


def fanout_recipients(cloud_event: CloudEvent) -> None:
    raise NotImplementedError("fanout_recipients is not built yet")
