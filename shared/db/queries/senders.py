"""SQL for senders on the send path and the webhooks (docs/architecture.md, "Sender pools"): a pool's
active senders as one recipient sees them, the automatic pause, and the per-sender 24-hour window."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.orm import Session

from shared.domain.enums import SenderState
from shared.domain.sender_choice import PoolSender


def active_pool_senders(session: Session, pool: str, phone: str) -> list[PoolSender]:
    """The pool's active senders as one user sees them (when the user last wrote to each, when each last
    messaged the user). Admission asks this only when the sender fan-out wrote is no longer the one to
    use: paused, or the user has since written to another."""
    return pool_senders_for(session, pool, [phone])[1][phone]


def pool_senders_for(
    session: Session, pool: str, phones: Sequence[str]
) -> tuple[list[PoolSender], dict[str, list[PoolSender]]]:
    """The pool's active senders, and for each user the same senders with when the user last wrote to
    each (user_senders) and when each last messaged the user (its latest claimed message to them, through
    the (recipient_phone, ...) index): three statements for a whole fan-out page."""
    active = session.execute(
        text(
            "SELECT address, rate_limit_per_second FROM senders WHERE pool = :pool AND state = :active "
            "ORDER BY address"
        ),
        {"pool": pool, "active": SenderState.ACTIVE.value},
    ).all()
    pool_senders = [PoolSender(address, rate) for address, rate in active]
    if not active or not phones:
        return pool_senders, {phone: pool_senders for phone in phones}
    addresses = [address for address, _ in active]
    inbound: dict[tuple[str, str], datetime] = {
        (phone, sender): at
        for phone, sender, at in session.execute(
            text(
                "SELECT user_phone, sender, last_inbound_at FROM user_senders "
                "WHERE user_phone = ANY(:phones) AND sender = ANY(:senders)"
            ),
            {"phones": list(phones), "senders": addresses},
        )
    }
    outbound: dict[tuple[str, str], datetime] = {
        (phone, sender): at
        for phone, sender, at in session.execute(
            text(
                "SELECT recipient_phone, sender, max(claimed_at) FROM messages "
                "WHERE recipient_phone = ANY(:phones) AND sender = ANY(:senders) AND claimed_at IS NOT NULL "
                "GROUP BY recipient_phone, sender"
            ),
            {"phones": list(phones), "senders": addresses},
        )
    }
    return pool_senders, {
        phone: [PoolSender(a, r, inbound.get((phone, a)), outbound.get((phone, a))) for a, r in active]
        for phone in phones
    }


def pause_for_error(session: Session, address: str, error_code: int, reason: str, now: datetime) -> bool:
    """Pause an active sender that Twilio reported blocked or rate-limited; True if this call paused it
    (a second report, or one about a sender an operator already paused, changes nothing but the error)."""
    paused = session.execute(
        text(
            "UPDATE senders SET state = :paused, paused_reason = :reason, paused_by = 'twilio', "
            "paused_at = :now, last_error_code = :code, last_error_at = :now, updated_at = now() "
            "WHERE address = :address AND state = :active RETURNING id"
        ),
        {
            "paused": SenderState.PAUSED.value,
            "active": SenderState.ACTIVE.value,
            "reason": reason,
            "now": now,
            "code": error_code,
            "address": address,
        },
    ).first()
    if paused is None:
        session.execute(
            text(
                "UPDATE senders SET last_error_code = :code, last_error_at = :now, updated_at = now() "
                "WHERE address = :address"
            ),
            {"code": error_code, "now": now, "address": address},
        )
    return paused is not None


def record_inbound(session: Session, phone: str, business_number: str, at: datetime) -> None:
    """The user wrote to this business number: its 24-hour window with them opens (never shortened by a
    delayed or redelivered webhook)."""
    session.execute(
        text(
            "INSERT INTO user_senders (user_phone, sender, last_inbound_at) VALUES (:phone, :sender, :at) "
            "ON CONFLICT (user_phone, sender) DO UPDATE "
            "SET last_inbound_at = greatest(user_senders.last_inbound_at, EXCLUDED.last_inbound_at)"
        ),
        {"phone": phone, "sender": business_number, "at": at},
    )


def message_sender(session: Session, message_id: int) -> str | None:
    """The pool sender a message went out from (None: the configured sender)."""
    row = session.execute(text("SELECT sender FROM messages WHERE id = :id"), {"id": message_id}).first()
    return row[0] if row else None
