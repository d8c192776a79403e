"""The Twilio webhooks' refusals, counted per minute (docs/architecture.md, "Health checks").

Only refusals (4xx: a bad or missing signature, a malformed form, a body over the cap) are counted: a
success already leaves its row (a receipt, an inbound event), and the status webhook's success path must
stay free of another write. A 503 is not counted here: it means the database could not be reached, so
neither could this count; the database check and the logs report an outage.

Refusals are what anyone on the internet can cause at will, and a refusal used to cost the database
nothing: so they are tallied in the process and written at most once per `FLUSH_EVERY` (the first refusal
after a quiet spell at once), and a flood of forged requests is one small transaction every few seconds,
not one upsert each, all contending for the same counter row. What a crash loses is at most that many
seconds of a count that is already high.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from datetime import datetime, timedelta

from shared.clock import Clock
from shared.db.queries import health as queries
from shared.db.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)


FLUSH_EVERY = timedelta(seconds=10)

Tally = Counter[tuple[datetime, str, int]]


class RefusalTally:
    """One process's refusals not yet written, by (minute, webhook, status)."""

    def __init__(self, every: timedelta = FLUSH_EVERY) -> None:
        self._every = every
        self._lock = threading.Lock()
        self._pending: Tally = Counter()
        self._flushed_at: datetime | None = None

    def add(self, minute: datetime, webhook: str, status: int, now: datetime) -> Tally | None:
        """Count one refusal; returns what to write now (everything pending) when a write is due."""
        with self._lock:
            self._pending[(minute, webhook, status)] += 1
            if self._flushed_at is not None and now - self._flushed_at < self._every:
                return None
            self._flushed_at = now
            due, self._pending = self._pending, Counter()
            return due


def count_refusal(uow: UnitOfWork, clock: Clock, tally: RefusalTally, webhook: str, status: int) -> None:
    now = clock.now()
    due = tally.add(now.replace(second=0, microsecond=0), webhook, status, now)
    if not due:
        return
    try:
        with uow:
            for (minute, name, code), count in sorted(due.items()):
                queries.count_webhook_error(uow.session, minute, name, code, count)
            uow.commit()
    except Exception:  # never turn a refusal into a 500: the answer is already decided
        log.warning("webhook refusals not counted", extra={"webhook": webhook, "count": due.total()})


# Counters kept this long (the report reads the last hour; a day more for a look back).
KEEP = timedelta(days=2)


def prune(uow: UnitOfWork, clock: Clock) -> int:
    """Drop counters no report reads any more (every scheduler tick: at most a minute's rows each time)."""
    with uow:
        removed = queries.prune_webhook_errors(uow.session, clock.now() - KEEP)
        uow.commit()
    return removed
