"""The Twilio webhooks' refusals, counted per minute (docs/architecture.md, "Health checks").

Only refusals (4xx: a bad or missing signature, a malformed form, a body over the cap) are counted: a
success already leaves its row (a receipt, an inbound event), and the status webhook's success path must
stay free of another write. A 503 is not counted here: it means the database could not be reached, so
neither could this count; the database check and the logs report an outage.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from shared.clock import Clock
from shared.db.queries import health as queries
from shared.db.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)


def count_refusal(uow: UnitOfWork, clock: Clock, webhook: str, status: int) -> None:
    minute = clock.now().replace(second=0, microsecond=0)
    try:
        with uow:
            queries.count_webhook_error(uow.session, minute, webhook, status)
            uow.commit()
    except Exception:  # never turn a refusal into a 500: the answer is already decided
        log.warning("webhook refusal not counted", extra={"webhook": webhook, "status": status})


# Counters kept this long (the report reads the last hour; a day more for a look back).
KEEP = timedelta(days=2)


def prune(uow: UnitOfWork, clock: Clock) -> int:
    """Drop counters no report reads any more (every scheduler tick: at most a minute's rows each time)."""
    with uow:
        removed = queries.prune_webhook_errors(uow.session, clock.now() - KEEP)
        uow.commit()
    return removed
