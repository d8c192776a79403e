"""SQL for operating senders and frequency caps (docs/architecture.md, "Operating senders and caps"): the
senders with what each is doing now (its sends of the last minute and its errors of the last hour, both
read through the partial index ix_messages_sender_claimed_at, so the cost grows with a sender's recent
sends, never with the ledger), adding, pausing and resuming one, the pools, and the frequency caps.

The send path's own sender queries (choosing one, its rate key, pausing it on Twilio's errors) are the
send path's; these are the operator's."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, delete, exists, insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from shared.db.models import FrequencyCap, Sender
from shared.domain.enums import SenderState

# A sender's current rate is its sends claimed in this last window, per second.
RATE_WINDOW = timedelta(seconds=60)
# Its recent errors: messages claimed in this last window that carry an error code.
ERROR_WINDOW = timedelta(hours=1)

_SENDER_COLUMNS = (
    "s.id, s.address, s.pool, s.rate_limit_per_second, s.state, s.paused_reason, s.paused_by, "
    "s.paused_at, s.last_error_code, s.last_error_at, s.created_at, s.updated_at"
)

# One row per sender with two index range scans each: its claims of the last minute, and of the last hour
# with an error code. A pool has a handful of senders, so the lateral probes stay few.
_SENDERS = text(f"""
SELECT {_SENDER_COLUMNS},
       recent.sends AS sends_last_minute,
       recent.errors AS errors_last_hour
FROM senders s
CROSS JOIN LATERAL (
    SELECT count(*) FILTER (WHERE m.claimed_at > :rate_since) AS sends,
           count(*) FILTER (WHERE m.error_code IS NOT NULL) AS errors
    FROM messages m
    WHERE m.sender = s.address AND m.sender IS NOT NULL AND m.claimed_at > :error_since
) recent
WHERE (CAST(:sender_id AS bigint) IS NULL OR s.id = :sender_id)
ORDER BY s.pool, s.address
""")


def senders_with_activity(
    session: Session, now: datetime, sender_id: int | None = None
) -> Sequence[Row[Any]]:
    """Every sender (or the one `sender_id`), by pool then address, with `sends_last_minute` and
    `errors_last_hour`."""
    params = {
        "rate_since": now - RATE_WINDOW,
        "error_since": now - ERROR_WINDOW,
        "sender_id": sender_id,
    }
    return session.execute(_SENDERS, params).all()


def insert_sender(session: Session, address: str, pool: str, rate_limit_per_second: int) -> int | None:
    """The new sender's id; None when the address is already a sender (the unique constraint decides, so
    two requests at once cannot both add it)."""
    statement = (
        pg_insert(Sender)
        .values(address=address, pool=pool, rate_limit_per_second=rate_limit_per_second)
        .on_conflict_do_nothing(index_elements=[Sender.address])
        .returning(Sender.id)
    )
    sender_id = session.execute(statement).scalar_one_or_none()
    return None if sender_id is None else int(sender_id)


def lock_sender(session: Session, sender_id: int) -> Sender | None:
    return session.get(Sender, sender_id, with_for_update=True)


def pause_sender(session: Session, sender_id: int, reason: str, paused_by: str, at: datetime) -> None:
    session.execute(
        update(Sender)
        .where(Sender.id == sender_id)
        .values(
            state=SenderState.PAUSED.value,
            paused_reason=reason,
            paused_by=paused_by,
            paused_at=at,
            updated_at=at,
        )
    )


def resume_sender(session: Session, sender_id: int, at: datetime) -> None:
    session.execute(
        update(Sender)
        .where(Sender.id == sender_id)
        .values(
            state=SenderState.ACTIVE.value, paused_reason=None, paused_by=None, paused_at=None, updated_at=at
        )
    )


def pool_names(session: Session) -> list[str]:
    """Every pool with at least one sender, by name."""
    return [str(name) for name in session.scalars(select(Sender.pool).distinct().order_by(Sender.pool))]


def pool_exists(session: Session, pool: str) -> bool:
    return bool(session.scalar(select(exists().where(Sender.pool == pool))))


def frequency_caps(session: Session) -> list[tuple[int, int]]:
    """(max_messages, window_seconds) of every cap, shortest window first."""
    statement = select(FrequencyCap.max_messages, FrequencyCap.window_seconds).order_by(
        FrequencyCap.window_seconds
    )
    return [(int(n), int(w)) for n, w in session.execute(statement)]


def lock_frequency_caps(session: Session) -> None:
    """Serialise replacements of the caps: two at once would each read the same "before"."""
    session.execute(text("LOCK TABLE frequency_caps IN SHARE ROW EXCLUSIVE MODE"))


def replace_frequency_caps(session: Session, caps: Sequence[tuple[int, int]], at: datetime) -> None:
    """The caps become exactly `caps` ((max_messages, window_seconds) pairs, windows distinct)."""
    session.execute(delete(FrequencyCap))
    if caps:
        session.execute(
            insert(FrequencyCap),
            [{"max_messages": n, "window_seconds": w, "updated_at": at} for n, w in caps],
        )
