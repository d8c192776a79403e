"""Message status ranks: every report (a send result, a Twilio callback) may only move a message forward.

The success chain, in rank order:
    QUEUED < SENDING < AMBIGUOUS < ACCEPTED < SENT < DELIVERED < READ
AMBIGUOUS sits below ACCEPTED, so any callback for a send whose response was lost reconciles it.

Final states never change again, and each may only replace the statuses where it can be true:
- FAILED, UNDELIVERED: anything not yet DELIVERED. Twilio reports failed/undelivered after `sent`, and that
  must win; but once the phone confirmed delivery (DELIVERED/READ) a later failure cannot undo it.
- SKIPPED, WITHHELD: only before the message can have reached Twilio (QUEUED, SENDING).

The send path putting a claimed message back for a retry (SENDING -> QUEUED) is not a report: that
service does it as its own compare-and-set on SENDING.
"""

from __future__ import annotations

from shared.domain.enums import MessageStatus as S

RANK: dict[S, int] = {
    S.QUEUED: 0,
    S.SENDING: 1,
    S.AMBIGUOUS: 2,
    S.ACCEPTED: 3,
    S.SENT: 4,
    S.DELIVERED: 5,
    S.READ: 6,
}
FINAL = frozenset({S.FAILED, S.UNDELIVERED, S.SKIPPED, S.WITHHELD})
# The rank a final state must be below to replace a status.
_FINAL_REPLACES_BELOW = {
    S.FAILED: RANK[S.DELIVERED],
    S.UNDELIVERED: RANK[S.DELIVERED],
    S.SKIPPED: RANK[S.AMBIGUOUS],
    S.WITHHELD: RANK[S.AMBIGUOUS],
}

_FROM_TWILIO = {
    "queued": S.ACCEPTED,
    "accepted": S.ACCEPTED,
    "scheduled": S.ACCEPTED,
    "sending": S.ACCEPTED,
    "sent": S.SENT,
    # Some parts reached the phone: not a failure, but not a confirmed delivery either.
    "partially_delivered": S.SENT,
    "delivered": S.DELIVERED,
    "read": S.READ,
    "failed": S.FAILED,
    "undelivered": S.UNDELIVERED,
    # A scheduled message cancelled at Twilio will never be sent.
    "canceled": S.FAILED,
}

# Timestamps a status proves (a READ also proves delivery and sending); fill with COALESCE so the first
# report's time stays when callbacks arrive out of order or twice.
_TIMESTAMPS: dict[S, tuple[str, ...]] = {
    S.SENT: ("sent_at",),
    S.DELIVERED: ("delivered_at", "sent_at"),
    S.READ: ("read_at", "delivered_at", "sent_at"),
    S.FAILED: ("failed_at",),
    S.UNDELIVERED: ("failed_at",),
}


def can_advance(current: S, new: S) -> bool:
    """Whether a report of `new` may replace `current` (False for a repeat of the same status)."""
    if current in FINAL:
        return False
    if new in FINAL:
        return RANK[current] < _FINAL_REPLACES_BELOW[new]
    return RANK[new] > RANK[current]


def predecessors(new: S) -> frozenset[S]:
    """The statuses `new` may replace: for `UPDATE ... WHERE status = ANY(:predecessors)`."""
    return _PREDECESSORS[new]


def from_twilio_status(value: str | None) -> S | None:
    """Twilio's MessageStatus (case-insensitive); None for values that say nothing about an outbound send."""
    if value is None:
        return None
    return _FROM_TWILIO.get(value.strip().lower())


def timestamp_columns(status: S) -> tuple[str, ...]:
    """The `messages` timestamp columns that reaching `status` sets (if still NULL)."""
    return _TIMESTAMPS.get(status, ())


_PREDECESSORS = {new: frozenset(cur for cur in S if can_advance(cur, new)) for new in S}
