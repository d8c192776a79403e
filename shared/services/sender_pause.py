"""A pool sender paused because Twilio reported it blocked or rate-limited (docs/architecture.md, "Sender
pools"): from a refused send and from a failed status callback alike."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.orm import Session

from shared.db.audit import record_audit
from shared.db.queries import senders as sender_sql
from shared.domain.twilio_errors import describe

log = logging.getLogger(__name__)


def pause_sender_for_error(
    session: Session,
    address: str,
    error_code: int | None,
    reason: str | None,
    now: datetime,
    *,
    campaign_id: int | None = None,
    message_id: int | None = None,
) -> bool:
    """Pause `address` in the caller's transaction, audited once (a repeated report only updates the
    sender's last error). True if this call paused it."""
    code = error_code if error_code is not None else 0
    why = reason or (describe(error_code) if error_code is not None else "reported unusable by Twilio")
    paused = sender_sql.pause_for_error(session, address, code, f"Twilio error {code}: {why}", now)
    if paused:
        record_audit(
            session,
            "sender.paused",
            campaign_id=campaign_id,
            message_id=message_id,
            source="twilio",
            detail={"sender": address, "error_code": error_code, "reason": why, "paused_by": "twilio"},
            at=now,
        )
        log.warning("sender paused by a Twilio error", extra={"sender": address, "error_code": error_code})
    return paused
