"""Reconciliation with Twilio: settling what only Twilio knows (docs/architecture.md, "Reconciliation").

- An AMBIGUOUS message (the send's answer was lost: a timeout, a crash between the call and the record)
  is looked up in Twilio's list of messages to that recipient from its sender (its pool's, or ours), created between its claim
  and the end of the Twilio timeout. One match: Twilio has it, so its SID and status are recorded, and it
  is never sent again. None: it never reached Twilio, so it is sent again under a new generation (still
  exactly once). Several: it stays AMBIGUOUS for an operator, rather than guessing.
- An ACCEPTED or SENT message nothing moved for a while (its callbacks were answered 503 while the database
  was down, and Twilio does not retry those) is fetched by SID, and Twilio's status is recorded as a
  callback would have.

A campaign is not COMPLETED while any message of it is AMBIGUOUS (shared.db.queries.campaigns).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from shared.adapters.tasks import SendTask
from shared.adapters.twilio_lookup import MessageLookup, TwilioMessage
from shared.db.audit import record_audit
from shared.db.queries import messages as message_sql
from shared.db.queries import repairs
from shared.db.queries.message_status_updates import record_callback
from shared.db.unit_of_work import UnitOfWork
from shared.domain.enums import CampaignStatus, MessageStatus
from shared.services.campaign_lifecycle import CANCELLED_REASON
from shared.services.delivery_status import status_move

log = logging.getLogger(__name__)

# Twilio's clock and ours differ a little; a match may be created this much outside the claim's window.
CLOCK_SLACK = timedelta(seconds=5)
CONFLICT_REASON = "several messages at Twilio match this send: an operator must decide which is it"


@dataclass(frozen=True)
class ReconcileConfig:
    # Wait this long after a claim before asking Twilio: its list may lag what it accepted.
    settle_after: timedelta
    # How long a send's Twilio call may last (the SDK's timeout): the end of the window to look in.
    call_window: timedelta
    # An ACCEPTED/SENT message unmoved this long has lost its callbacks.
    stale_after: timedelta
    # Messages claimed longer ago than this are not chased any more.
    give_up_after: timedelta = timedelta(days=3)
    limit: int = 500


@dataclass
class Reconciled:
    found: int = 0
    resent: int = 0
    conflicts: int = 0
    refreshed: int = 0
    tasks: list[SendTask] = field(default_factory=list)
    finished_campaigns: set[int] = field(default_factory=set)


def reconcile_ambiguous(
    uow: UnitOfWork, lookup: MessageLookup, now: datetime, config: ReconcileConfig, report: Reconciled
) -> None:
    """Settle the AMBIGUOUS messages old enough to ask about, in one transaction that holds their row
    locks. Tasks for messages sent again are in `report.tasks`, to create after it commits."""
    with uow:
        session = uow.session
        for message in repairs.lock_ambiguous(session, now - config.settle_after, config.limit):
            claimed = message.claimed_at or message.created_at
            candidates = lookup.find(
                message.recipient_phone,
                claimed - CLOCK_SLACK,
                claimed + config.call_window + CLOCK_SLACK,
                sender=message.sender,
            )
            taken = repairs.known_sids(session, [c.sid for c in candidates])
            matches = [
                c
                for c in candidates
                if c.sid not in taken
                and (message.uses_template or message.body is None or c.body == message.body)
            ]
            if len(matches) == 1:
                _record_found(uow, message, matches[0], now)
                report.found += 1
            elif not matches:
                _send_again(session, message, now, report)
            else:
                _conflict(session, message, matches, now, report)
        uow.commit()


def _record_found(uow: UnitOfWork, message: repairs.Unsettled, found: TwilioMessage, now: datetime) -> None:
    session = uow.session
    message_sql.set_fields(
        session,
        message.id,
        MessageStatus.AMBIGUOUS,
        provider_sid=found.sid,
        status=MessageStatus.ACCEPTED.value,
        status_reason=None,
        updated_at=now,
    )
    _record_status(uow, message.id, found, now)
    record_audit(
        session,
        "reconcile.found",
        campaign_id=message.campaign_id,
        message_id=message.id,
        user_phone=message.recipient_phone,
        source="reconciliation",
        detail={"message_sid": found.sid, "twilio_status": found.status},
        at=now,
    )


def _send_again(session: Session, message: repairs.Unsettled, now: datetime, report: Reconciled) -> None:
    """Twilio never received it: back to the queue under a new generation (its old task, if any, is stale),
    or withheld or parked as its campaign now demands."""
    generation = message.generation + 1
    if message.campaign_status is CampaignStatus.CANCELLED:
        values: dict[str, object] = {
            "status": MessageStatus.WITHHELD.value,
            "status_reason": CANCELLED_REASON,
        }
        report.finished_campaigns.add(message.campaign_id)
    else:
        running = message.campaign_status is CampaignStatus.RUNNING
        values = {
            "status": MessageStatus.QUEUED.value,
            "generation": generation,
            "scheduled_at": now if running else None,
            "slot_at": None,
            "status_reason": "sent again: Twilio never received it",
        }
        if running:
            report.tasks.append(SendTask(message.id, generation, message.created_at, now))
    message_sql.set_fields(session, message.id, MessageStatus.AMBIGUOUS, updated_at=now, **values)
    record_audit(
        session,
        "reconcile.resent",
        campaign_id=message.campaign_id,
        message_id=message.id,
        user_phone=message.recipient_phone,
        source="reconciliation",
        detail={"campaign_status": message.campaign_status.value},
        at=now,
    )
    report.resent += 1


def _conflict(
    session: Session,
    message: repairs.Unsettled,
    matches: list[TwilioMessage],
    now: datetime,
    report: Reconciled,
) -> None:
    changed = message_sql.set_fields(
        session, message.id, MessageStatus.AMBIGUOUS, status_reason=CONFLICT_REASON, updated_at=now
    )
    if changed:
        record_audit(
            session,
            "reconcile.conflict",
            campaign_id=message.campaign_id,
            message_id=message.id,
            user_phone=message.recipient_phone,
            source="reconciliation",
            detail={"message_sids": [m.sid for m in matches]},
            at=now,
        )
    report.conflicts += 1
    log.warning("reconciliation found several matching Twilio messages", extra={"message_id": message.id})


def refresh_stale(
    uow: UnitOfWork, lookup: MessageLookup, now: datetime, config: ReconcileConfig, report: Reconciled
) -> None:
    """Fetch by SID the ACCEPTED/SENT messages whose callbacks never came, and record what Twilio says."""
    with uow:
        stale = repairs.stale_accepted(
            uow.session, now - config.stale_after, now - config.give_up_after, config.limit
        )
        repairs.touch(uow.session, [s.id for s in stale], now)
        uow.commit()
    for message in stale:
        found = lookup.fetch(message.provider_sid)
        if found is None:
            continue
        with uow:
            moved = _record_status(uow, message.id, found, now)
            uow.commit()
        report.refreshed += moved


def _record_status(uow: UnitOfWork, message_id: int, found: TwilioMessage, now: datetime) -> int:
    """Twilio's status for the message, recorded as its callback would be (a receipt, the forward-only
    move), in the open transaction; 1 if it moved the message."""
    raw = json.dumps({"source": "reconciliation", "MessageSid": found.sid, "MessageStatus": found.status})
    record = record_callback(
        uow,
        message_sid=found.sid,
        twilio_status=found.status,
        message_id=message_id,
        error_code=found.error_code,
        raw_payload=raw,
        idempotency_token=None,
        move=status_move(found.status, found.error_code, now),
        act=True,
    )
    return int(record.after is not None and record.after != record.before)
