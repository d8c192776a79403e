"""Which sender of a pool a recipient is sent from (docs/architecture.md, "Sender pools").

Sticky, in this order: the active sender the user last wrote to (their conversation, and WhatsApp's 24-hour
window, live on that number), else the active sender that last messaged them, else a stable hash over the
pool's active senders. The hash is rendezvous (highest random weight) hashing: each (user, sender) pair
scores a fixed number and the highest wins, so pausing one sender moves only that sender's users, each to
its next choice, and resuming it brings exactly them back.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class PoolSender:
    address: str
    rate_limit_per_second: int
    # When this user last wrote to this sender, and when this sender last messaged this user.
    last_inbound_at: datetime | None = None
    last_outbound_at: datetime | None = None


def choose_sender(phone: str, active: Sequence[PoolSender]) -> PoolSender | None:
    """The sender for `phone` among the pool's active senders; None if there is none."""
    if not active:
        return None
    wrote_to = [s for s in active if s.last_inbound_at is not None]
    if wrote_to:
        return max(wrote_to, key=lambda s: (s.last_inbound_at, s.address))
    messaged_by = [s for s in active if s.last_outbound_at is not None]
    if messaged_by:
        return max(messaged_by, key=lambda s: (s.last_outbound_at, s.address))
    return max(active, key=lambda s: _score(phone, s.address))


def _score(phone: str, address: str) -> bytes:
    return hashlib.blake2b(f"{phone}|{address}".encode(), digest_size=8).digest()
