"""What a handler made of its input, whatever the transport that brought it (docs/architecture.md,
"Transport outcomes").

Services return a `Result`; only shared/transport.py turns it into a status code, a raise or TwiML. Nothing
here knows Flask, so services and the code below them never depend on a web framework.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

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
