"""The hard rate ceiling, enforced where it is measured: at the moment of each Twilio call.

GCRA (virtual scheduling) in PostgreSQL: each key (a campaign, the WhatsApp sender) holds a theoretical
arrival time `tat`. A send takes the slot max(now, tat of every key) and moves each key's tat to slot +
its spacing, so two send starts on one key are never closer than (1 + margin) / rate, and any 1-second
window holds at most `rate` of them, whatever mix of first sends, deferrals and retries asks. The sender
key bounds the sum over all running campaigns.

A slot is reserved even when it lies ahead: the caller either waits for it (if near) or reschedules the
message for it, so a crowd arriving together (a quiet-hours window ending) is spread once, instead of
bouncing back all at once again and again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session

from shared.domain.send_schedule import spacing


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
    locked until commit, and every send of the sender passes through its row.

    INSERT ... ON CONFLICT DO UPDATE creates a missing key and locks an existing one in a single statement;
    keys are taken in sorted order so two senders can never deadlock on them."""
    ordered = sorted(keys, key=lambda k: k.key)
    names = [k.key for k in ordered]
    values = ", ".join(f"(:k{i}, :now)" for i in range(len(names)))
    locked = session.execute(
        text(
            f"INSERT INTO rate_limiters (key, tat) VALUES {values} "
            "ON CONFLICT (key) DO UPDATE SET tat = rate_limiters.tat RETURNING key, tat"
        ),
        {"now": now, **{f"k{i}": name for i, name in enumerate(names)}},
    )
    slot: datetime = max([now, *(tat for _, tat in locked)])
    session.execute(
        text("UPDATE rate_limiters SET tat = :tat WHERE key = :key"),
        [{"key": k.key, "tat": slot + k.spacing} for k in ordered],
    )
    return slot
