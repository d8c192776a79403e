"""The hard rate ceiling, enforced where it is measured: at the moment of each Twilio call.

GCRA (virtual scheduling) in PostgreSQL: each key (a campaign, the WhatsApp sender) holds a theoretical
arrival time `tat`. A send takes the slot max(now, tat of every key) and moves each key's tat to slot +
its spacing, so two send starts on one key are never closer than (1 + margin) / rate, and any 1-second
window holds at most `rate` of them, whatever mix of first sends, deferrals and retries asks. The sender
key bounds the sum over all running campaigns.

A slot is reserved even when it lies ahead: the caller either waits for it (if near) or reschedules the
message for it, so a crowd arriving together (a quiet-hours window ending) is spread once, instead of
bouncing back all at once again and again.

A send that starts later than its slot allows moves every key's tat later by as much (`push_later`), so
the send one ceiling's worth after it starts at least a second after it all the same (docs/architecture.md,
"Late sends").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session

from shared.db.queries.prepared import run_prepared
from shared.db.unit_of_work import UnitOfWork
from shared.domain.send_schedule import spacing

# The window a ceiling is counted over.
WINDOW = timedelta(seconds=1)


@dataclass(frozen=True)
class RateKey:
    key: str
    spacing: timedelta


def campaign_key(campaign_id: int, rate_per_second: int, margin: float) -> RateKey:
    return RateKey(f"campaign:{campaign_id}", spacing(rate_per_second, margin))


def sender_key(sender: str, rate_per_second: int, margin: float) -> RateKey:
    return RateKey(f"sender:{sender}", spacing(rate_per_second, margin))


def reserve_slot(session: Session, keys: Sequence[RateKey], now: datetime) -> datetime:
    """The reserved send slot (>= now). Hold the transaction only briefly after this: the key rows stay
    locked until commit, and every send of the sender passes through its row."""
    ordered = sorted(keys, key=lambda k: k.key)
    slot = _advance(session, ordered, now)
    if slot is None:
        _create_locked(session, ordered, now)
        slot = _advance(session, ordered, now)
        assert slot is not None, "a rate_limiters row vanished inside the transaction"
    return slot


def _advance(session: Session, ordered: Sequence[RateKey], now: datetime) -> datetime | None:
    """Lock the keys' rows, take slot = max(now, every tat) and move each tat to slot + its spacing, in
    one prepared statement: one round trip on the send path, where an unprepared one costs three.

    The CTE's FOR UPDATE takes the locks in key order (two senders never deadlock) and, after waiting
    for another sender, reads its committed tat. If any key has no row yet it locks nothing at all and
    returns None: holding one key while creating another could deadlock with a sender doing the reverse."""
    keys = ", ".join(f"(:k{i}, CAST(:s{i} AS interval))" for i in range(len(ordered)))
    rows = run_prepared(
        session.connection(),
        f"WITH wanted (key, spacing) AS (VALUES {keys}), "
        "locked AS (SELECT key, tat FROM rate_limiters WHERE key IN (SELECT key FROM wanted) "
        "AND (SELECT count(*) FROM rate_limiters WHERE key IN (SELECT key FROM wanted)) = :count "
        "ORDER BY key FOR UPDATE), "
        "slot AS (SELECT greatest(CAST(:now AS timestamptz), max(tat)) AS at FROM locked HAVING count(*) > 0) "
        "UPDATE rate_limiters AS r SET tat = slot.at + wanted.spacing FROM slot, wanted "
        "WHERE r.key = wanted.key RETURNING slot.at",
        {
            "now": now,
            "count": len(ordered),
            **{f"k{i}": k.key for i, k in enumerate(ordered)},
            **{f"s{i}": k.spacing for i, k in enumerate(ordered)},
        },
        autocommit=False,
    )
    return rows[0][0] if rows else None


def _create_locked(session: Session, ordered: Sequence[RateKey], now: datetime) -> None:
    """A key's first use: create the missing rows and lock all of them, in key order, in one statement
    (INSERT ... ON CONFLICT DO UPDATE both creates a missing key and locks an existing one)."""
    values = ", ".join(f"(:k{i}, :now)" for i in range(len(ordered)))
    session.execute(
        text(
            f"INSERT INTO rate_limiters (key, tat) VALUES {values} "
            "ON CONFLICT (key) DO UPDATE SET tat = rate_limiters.tat"
        ),
        {"now": now, **{f"k{i}": k.key for i, k in enumerate(ordered)}},
    )


def push_later(uow: UnitOfWork, keys: Sequence[RateKey], slot: datetime, by: timedelta) -> bool:
    """Move every key's tat `by` later, for a send that starts `by` past what its slot allows: one
    statement, its own transaction (call it outside `with uow:`), so it is committed before that send.

    It is safe only while every slot that must keep its distance from this send is still to be reserved:
    the send `rate` after this one must start a second after it, and with spacing (1 + margin) / rate, a
    key holds fewer than `rate` reservations past `slot` as long as its tat is within a second of `slot`.
    A key reserved further ahead (a backlog) refuses: nothing moves, False, and the caller takes a fresh
    slot instead. The locks are taken in key order, as reservations take them."""
    ordered = sorted(keys, key=lambda k: k.key)
    wanted = ", ".join(f"(:k{i})" for i in range(len(ordered)))
    rows = uow.prepared(
        f"WITH wanted (key) AS (VALUES {wanted}), "
        "locked AS (SELECT key, tat FROM rate_limiters WHERE key IN (SELECT key FROM wanted) "
        "ORDER BY key FOR UPDATE) "
        "UPDATE rate_limiters AS r SET tat = r.tat + CAST(:by AS interval) FROM locked "
        "WHERE r.key = locked.key "
        "AND (SELECT count(*) FROM locked WHERE tat <= CAST(:horizon AS timestamptz)) = :count "
        "RETURNING r.key",
        {
            "by": by,
            "horizon": slot + WINDOW,
            "count": len(ordered),
            **{f"k{i}": k.key for i, k in enumerate(ordered)},
        },
    )
    return len(rows) == len(ordered)
