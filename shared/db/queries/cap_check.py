"""The per-user frequency caps at send time (docs/architecture.md, "Frequency caps").

A marketing message (its campaign not transactional) may go only if, for every cap (N per window), the
user has fewer than N marketing messages claimed within the window before now. Claimed, not delivered:
a message counts from the moment it is claimed for its Twilio call (SENDING) and keeps counting while it
may have reached the user (AMBIGUOUS, ACCEPTED, SENT, DELIVERED, READ); a refused or failed one stops.

Atomic across campaigns: the claim takes an exclusive transaction lock on the user's cap key before it
counts, and its own SENDING row is committed before that lock is released, so of two campaigns claiming
for one user at once the second counts the first's claim.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from shared.db.queries.prepared import run_prepared
from shared.domain.enums import MessageStatus

COUNTED = (
    MessageStatus.SENDING,
    MessageStatus.AMBIGUOUS,
    MessageStatus.ACCEPTED,
    MessageStatus.SENT,
    MessageStatus.DELIVERED,
    MessageStatus.READ,
)
_COUNTED = "{" + ",".join(s.value for s in COUNTED) + "}"

# Taken only when a cap exists (no row: no lock, nothing to count). Class 3 = a user's frequency caps
# (classes 1 and 2 are shared.db.queries.send_guard's).
_LOCK_IF_CAPPED = "SELECT pg_advisory_xact_lock(3, hashtext(:phone)) FROM frequency_caps LIMIT 1"

# For each cap, the user's N-th most recent counted marketing message inside the window, if there is one:
# then the cap is full until that message leaves the window. The latest such moment over all caps is when
# every cap allows the next one; NULL means they all allow it now.
_CAPPED_UNTIL = """
SELECT max(held.release_at)
FROM frequency_caps AS fc
CROSS JOIN LATERAL (
    SELECT m.claimed_at + make_interval(secs => fc.window_seconds) AS release_at
    FROM messages AS m
    JOIN campaigns AS c ON c.id = m.campaign_id
    WHERE m.recipient_phone = :phone
      AND m.id <> :message_id
      AND NOT c.transactional
      AND m.status = ANY(CAST(:counted AS text[]))
      AND m.claimed_at > CAST(:now AS timestamptz) - make_interval(secs => fc.window_seconds)
    ORDER BY m.claimed_at DESC
    OFFSET fc.max_messages - 1
    LIMIT 1
) AS held
"""


def lock_user_caps(session: Session, phone: str) -> bool:
    """In the claim's transaction: serialize this user's capped claims until it commits. False when no cap
    is configured (nothing locked, nothing to check)."""
    rows = run_prepared(session.connection(), _LOCK_IF_CAPPED, {"phone": phone}, autocommit=False)
    return bool(rows)


def capped_until(session: Session, phone: str, message_id: int, now: datetime) -> datetime | None:
    """When the caps next allow a marketing message to this user, if they do not now."""
    rows = run_prepared(
        session.connection(),
        _CAPPED_UNTIL,
        {"phone": phone, "message_id": message_id, "now": now, "counted": _COUNTED},
        autocommit=False,
    )
    return rows[0][0] if rows else None
