"""Dead-lettered pages become rows: the scheduler tick drains the dead-letter hold subscription into
`dead_letters`, so the operator sees them on the health report and the dashboard, with their data for a
replay (docs/architecture.md, "Health checks").

Store, commit, then acknowledge: a crash between the two redelivers the message, and its Pub/Sub message
id (unique) makes the second store a no-op. Nothing is ever acknowledged before it is stored.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from shared.adapters.pubsub import DeadLetterSource
from shared.clock import Clock
from shared.db.queries import health as queries
from shared.db.queries import heartbeats
from shared.db.unit_of_work import UnitOfWork
from shared.services.health import DEAD_LETTER_DRAIN

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DrainReport:
    pulled: int
    stored: int
    error: str | None = None


def drain_dead_letters(
    uow: UnitOfWork, subscriber: Callable[[], DeadLetterSource], clock: Clock, limit: int
) -> DrainReport:
    """One bounded pull per tick (a dead letter is rare; a backlog drains `limit` a minute). A failure is
    recorded in the drain's heartbeat, which the health report shows as failing, and never raised: the
    rest of the tick (starting campaigns, the sweep) must not depend on it. `subscriber` builds the client
    (credentials are looked up then, and may be missing)."""
    try:
        source = subscriber()
        pulled = source.pull(limit)
    except Exception as error:
        return _record(uow, clock, DrainReport(0, 0, f"{type(error).__name__}: {str(error)[:200]}"))
    stored = 0
    with uow:
        for message in pulled:
            stored += queries.store_dead_letter(
                uow.session,
                pubsub_message_id=message.message_id,
                subscription=source.subscription,
                data=message.data,
                attributes=message.attributes,
                published_at=message.published_at,
                delivery_attempt=message.delivery_attempt,
                received_at=clock.now(),
            )
        uow.commit()
    if stored:
        log.warning("dead-lettered pages stored", extra={"stored": stored})
    try:
        source.ack([message.ack_id for message in pulled])
    except Exception as error:  # stored already: the redelivery is a no-op
        return _record(uow, clock, DrainReport(len(pulled), stored, f"ack failed: {type(error).__name__}"))
    return _record(uow, clock, DrainReport(len(pulled), stored))


def _record(uow: UnitOfWork, clock: Clock, report: DrainReport) -> DrainReport:
    if report.error:
        log.warning("dead-letter drain failed", extra={"error": report.error})
    with uow:
        detail: dict[str, object] = {"pulled": report.pulled, "stored": report.stored}
        if report.error:
            detail["error"] = report.error
        heartbeats.beat(uow.session, DEAD_LETTER_DRAIN, clock.now(), detail)
        uow.commit()
    return report
