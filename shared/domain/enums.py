"""The vocabularies the database CHECKs and the code share."""

from __future__ import annotations

from enum import StrEnum


class ConsentState(StrEnum):
    OPT_IN = "OPT_IN"
    OPT_OUT = "OPT_OUT"  # never opted in, or opted out through an operator
    STOP = "STOP"  # the user said STOP (or Twilio reported an opt-out): only the user can undo it


class CampaignStatus(StrEnum):
    DRAFT = "DRAFT"
    READY = "READY"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"


class MessageStatus(StrEnum):
    # Waiting to be sent: a task is scheduled for it at scheduled_at, or, with scheduled_at NULL, it is
    # parked (its campaign is paused) and resume re-plans it.
    QUEUED = "QUEUED"
    SENDING = "SENDING"  # claimed by send_message; the Twilio call is in flight
    # The Twilio call may have been accepted but its response was lost (timeout after the request left).
    # Never resent blindly: a status callback (our message id is in its URL) reconciles it.
    AMBIGUOUS = "AMBIGUOUS"
    ACCEPTED = "ACCEPTED"  # Twilio accepted it (we hold its SID): Twilio's queued/accepted/sending
    SENT = "SENT"
    DELIVERED = "DELIVERED"
    READ = "READ"
    FAILED = "FAILED"  # final: Twilio or we gave up
    UNDELIVERED = "UNDELIVERED"  # final: Twilio could not deliver
    # final, at fan-out (missing template variable, no consent) or at send time (status_reason
    # "frequency_cap": the per-user caps held it back and its campaign skips rather than defers)
    SKIPPED = "SKIPPED"
    WITHHELD = "WITHHELD"  # final, at send time: consent revoked, campaign cancelled, no content_sid


class QuietHoursSource(StrEnum):
    """Where a campaign's quiet hours came from (docs/architecture.md, "Domain rules")."""

    EXPLICIT = "explicit"  # the request gave them, or turned them off with null
    DEFAULT = "default"  # the request left them out: DEFAULT_QUIET_HOURS applied (possibly "off")


class SenderState(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"


class FrequencyCapPolicy(StrEnum):
    """What a campaign does with a message the per-user frequency caps hold back."""

    DEFER = "defer"  # send it when the caps allow (skipped if that is after the campaign's ends_at)
    SKIP = "skip"  # SKIPPED, status_reason "frequency_cap"
