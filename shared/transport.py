"""One mapping from a handler's outcome to each transport's answer (docs/architecture.md, "Transport
outcomes").

Services return an `Outcome`; entry points never pick status codes themselves. The mapping matters:
Cloud Tasks retries anything but 2xx (so a recorded permanent failure must answer 2xx or it retries
forever), Pub/Sub push redelivers when the function raises, and Twilio retries a webhook only when it
could not connect (a 5xx answer is not retried by default, so the sweeper recovers lost status callbacks
from Twilio's API).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

from flask import Response
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import Forbidden

from shared.db.errors import is_transient

log = logging.getLogger(__name__)


class Outcome(Enum):
    DONE = "done"  # done, or a duplicate already handled
    PERMANENT_FAILURE = "permanent_failure"  # recorded; retrying cannot help
    TRANSIENT_FAILURE = "transient_failure"  # retrying later can help
    MALFORMED = "malformed"  # the request itself is bad
    TOO_LARGE = "too_large"  # the body is over the door's cap, refused unread
    FORBIDDEN = "forbidden"  # bad or missing signature / token


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    reason: str = ""
    retry_after_seconds: int | None = None
    # Twilio webhooks may answer with TwiML; other transports ignore it.
    twiml: str | None = None
    details: dict[str, object] = field(default_factory=dict)


class TransientFailure(Exception):
    """Raised from a Pub/Sub handler so that the push is redelivered."""


DATABASE_UNAVAILABLE = "database unavailable"


def unless_db_unavailable(handle: Callable[[], Result]) -> Result:
    """Run a service; a database that is down or saturated becomes a transient outcome (retry later),
    while any other database error is a bug and propagates.

    No Retry-After: Cloud Tasks then backs the task off by its queue's retry policy (10 s doubling to
    5 min, for a day: infra/terraform/tasks.tf), and treats the 503 as a reason to slow the whole queue
    ("if the worker returns 429 ... 503 ... Cloud Tasks will use a higher backoff rate",
    https://cloud.google.com/tasks/docs/common-pitfalls), which is what a database coming back needs.
    A Retry-After of a few seconds made the queue spend its ten attempts in under a minute."""
    try:
        return handle()
    except (DBAPIError, PoolTimeout) as exc:
        if not is_transient(exc):
            raise
        log.warning("database unavailable; asking the caller to retry", extra={"error": type(exc).__name__})
        return Result(Outcome.TRANSIENT_FAILURE, reason=DATABASE_UNAVAILABLE)


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
