"""One mapping from a handler's outcome to each transport's answer (docs/architecture.md, "Transport
outcomes").

Services return a `Result` (shared/outcome.py); entry points never pick status codes themselves. The mapping matters:
Cloud Tasks retries anything but 2xx (so a recorded permanent failure must answer 2xx or it retries
forever), Pub/Sub push redelivers when the function raises, and Twilio retries a webhook only when it
could not connect (a 5xx answer is not retried by default, so the sweeper recovers lost status callbacks
from Twilio's API).
"""

from __future__ import annotations

import logging

from flask import Response
from werkzeug.exceptions import Forbidden

from shared.outcome import Outcome, Result

log = logging.getLogger(__name__)


class TransientFailure(Exception):
    """Raised from a Pub/Sub handler so that the push is redelivered."""


_EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


def for_cloud_tasks(result: Result) -> Response:
    if result.outcome is Outcome.TRANSIENT_FAILURE:
        response = Response(result.reason or "retry later", status=503, mimetype="text/plain")
        if result.retry_after_seconds is not None:
            response.headers["Retry-After"] = str(result.retry_after_seconds)
        return response
    if result.outcome is Outcome.FORBIDDEN:
        return Response("forbidden", status=403, mimetype="text/plain")
    if result.outcome in (Outcome.MALFORMED, Outcome.TOO_LARGE):
        # A poison task: answering 4xx/5xx would make Cloud Tasks retry it up to 100 times.
        log.error("malformed task acknowledged", extra={"reason": result.reason})
    return Response(result.outcome.value, status=200, mimetype="text/plain")


def for_pubsub(result: Result) -> None:
    if result.outcome is Outcome.TRANSIENT_FAILURE:
        raise TransientFailure(result.reason)
    if result.outcome is Outcome.FORBIDDEN:
        # A non-2xx answer is a nack: the page is redelivered (and dead-lettered in the end), never lost
        # to a caller the function cannot identify.
        raise Forbidden("an ID token of the push subscription's service account is required")
    if result.outcome in (Outcome.MALFORMED, Outcome.TOO_LARGE, Outcome.PERMANENT_FAILURE):
        log.error("pub/sub message acknowledged without effect", extra={"reason": result.reason})


def for_twilio(result: Result) -> Response:
    if result.outcome is Outcome.FORBIDDEN:
        return Response("forbidden", status=403, mimetype="text/plain")
    if result.outcome is Outcome.MALFORMED:
        return Response(result.reason or "malformed request", status=400, mimetype="text/plain")
    if result.outcome is Outcome.TOO_LARGE:
        return Response(result.reason, status=413, mimetype="text/plain")
    if result.outcome is Outcome.TRANSIENT_FAILURE:
        return Response("temporarily unavailable", status=503, mimetype="text/plain")
    return Response(result.twiml or _EMPTY_TWIML, status=200, mimetype="text/xml")
