"""What the send path needs from the settings, as one value (tests build it directly)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from shared.config import Settings

# Beyond the Twilio timeout, a claim whose sender never came back may have reached Twilio: allow this much
# more for the sender to commit what it got before judging the message ambiguous.
COMMIT_GRACE = timedelta(seconds=5)
# A slot is reserved this far past the moment it is reserved, so the commit of the claim (a round trip,
# several milliseconds on a loaded machine) lands before the slot instead of making every send on an
# idle key start late, and then miss its slot and retake one.
SLOT_LEAD = timedelta(milliseconds=20)
# The claim (the send guard's locks, the checks again, SENDING committed: a handful of round trips) starts
# this long before the slot, so the Twilio call still starts on the slot.
CLAIM_LEAD = timedelta(milliseconds=10)


@dataclass(frozen=True)
class SendConfig:
    # The WhatsApp sender's rate-limit key: TWILIO_FROM, or the Messaging Service SID.
    sender_id: str
    sender_rate: int
    rate_margin: float
    max_wait: timedelta
    retry_delays: tuple[timedelta, ...]
    throughput_defer: timedelta
    ambiguous_after: timedelta
    status_callback_base: str
    slot_lead: timedelta = SLOT_LEAD
    claim_lead: timedelta = CLAIM_LEAD

    @property
    def late_tolerance(self) -> timedelta:
        """How late after its slot a send may still start: sends are spaced by (1 + margin) / rate, so a
        1-second window absorbs `margin` seconds of lateness in all; each send may use half of it."""
        return timedelta(seconds=self.rate_margin / 2)

    @classmethod
    def from_settings(cls, settings: Settings) -> SendConfig:
        sender = settings.twilio_messaging_service_sid or settings.twilio_from
        if not sender or not settings.status_webhook_url:
            raise RuntimeError(
                "sending needs TWILIO_FROM (or TWILIO_MESSAGING_SERVICE_SID) and STATUS_WEBHOOK_URL"
            )
        return cls(
            sender_id=sender,
            sender_rate=settings.sender_rate_limit_per_second,
            rate_margin=settings.rate_safety_margin,
            max_wait=timedelta(seconds=settings.send_max_wait_seconds),
            retry_delays=settings.retry_delays,
            throughput_defer=timedelta(seconds=settings.throughput_defer_seconds),
            ambiguous_after=timedelta(seconds=settings.twilio_timeout_seconds) + COMMIT_GRACE,
            status_callback_base=settings.status_webhook_url,
        )
