"""What to do when Twilio refuses a send (or a callback reports an error code), per
docs/architecture.md, "Retries and Twilio errors".

- RETRY: transient; try again after 1, 5, then 15 minutes, then give up (FAILED).
- DEFER: a throughput limit; send later without using up a retry.
- PERMANENT: this message can never succeed; FAILED at once.
- OPT_OUT: the recipient opted out at the channel; record STOP for the user, fail the message.
- PAUSE_CAMPAIGN: our account cannot send at all (credentials, suspension); retrying would fail every
  recipient, so the campaign stops until an operator acts.
- PAUSE_SENDER: this sender (one `From` of a pool), not the account and not the recipient, is
  rate-limited or cannot send; the sender is paused and the message goes out later, from it or another
  sender, without using up a retry. Until a caller knows senders, it treats this as DEFER.
- MARKETING_LIMIT: Meta's per-user marketing limit withheld this message; final for this message (FAILED,
  never retried) but recorded as its own reason, since it says nothing about the number or the sender.
  Until a caller knows it, it treats this as PERMANENT.

A known error code decides. Without one: no response at all (a timeout before Twilio accepted) and 429/5xx
retry, 401 pauses, any other 4xx is permanent, and an unknown code that Twilio did report is permanent
(failing one message is recoverable; retrying a hopeless one forever is not).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from enum import StrEnum


class ErrorClass(StrEnum):
    RETRY = "retry"
    DEFER = "defer"
    PERMANENT = "permanent"
    OPT_OUT = "opt_out"
    PAUSE_CAMPAIGN = "pause_campaign"
    PAUSE_SENDER = "pause_sender"
    MARKETING_LIMIT = "marketing_limit"


# Seconds to wait after the 1st, 2nd and 3rd failed attempt; a 4th failure is final.
RETRY_DELAYS = (60, 300, 900)

_R, _D, _P, _O, _X, _S, _M = (
    ErrorClass.RETRY,
    ErrorClass.DEFER,
    ErrorClass.PERMANENT,
    ErrorClass.OPT_OUT,
    ErrorClass.PAUSE_CAMPAIGN,
    ErrorClass.PAUSE_SENDER,
    ErrorClass.MARKETING_LIMIT,
)
# The limit and sender codes below cite their Twilio page: the account-level ones (every sender at once)
# DEFER, the ones about one From PAUSE_SENDER.
_KNOWN: dict[int, tuple[ErrorClass, str]] = {
    20003: (_X, "authentication failed: check the Twilio account SID and auth token"),
    20005: (_X, "the Twilio account is not active"),
    30002: (_X, "the Twilio account is suspended"),
    20429: (_R, "too many concurrent requests to Twilio"),
    20500: (_R, "Twilio internal error"),
    20503: (_R, "Twilio temporarily unavailable"),
    30001: (_R, "Twilio's sending queue overflowed"),
    30003: (_R, "the recipient's phone is unreachable (off or out of coverage)"),
    30008: (_R, "unknown error from the carrier or channel"),
    30500: (_R, "temporary Twilio processing error"),
    # https://www.twilio.com/docs/api/errors/63017: the account's combined rate, every sender at once.
    63017: (_D, "account-wide sending rate limit exceeded"),
    # https://www.twilio.com/docs/api/errors/63038: "Account exceeded the daily messages limit".
    63038: (_D, "the account reached its daily message limit"),
    # https://www.twilio.com/docs/api/errors/63018: "Rate limit exceeded for Channel": the WhatsApp sender
    # exceeded the messaging limit WhatsApp imposes on it (WhatsApp's 429/471/1015, per
    # https://www.twilio.com/docs/whatsapp/tutorial/error-codes).
    63018: (_S, "the WhatsApp sender exceeded its rate or messaging limit"),
    # https://www.twilio.com/docs/api/errors/63007: the From is not a Channel/WhatsApp sender of this
    # account, or its approval is still pending.
    63007: (_S, "the sender is not an active WhatsApp sender of this account"),
    # https://www.twilio.com/docs/api/errors/21611: this From has more than 10 hours of messages queued.
    21611: (_S, "the sender's queue is full (over 10 hours of messages waiting)"),
    # https://www.twilio.com/docs/api/errors/63049: Meta limits marketing templates to recipients less
    # likely to engage (and to U.S. recipients); Twilio advises not to resend it immediately.
    63049: (_M, "Meta withheld this marketing message (per-user marketing limit)"),
    21211: (_P, "the 'To' number is not a valid phone number"),
    21408: (_P, "sending to this country is not enabled on the account"),
    21612: (_P, "Twilio cannot route to this number"),
    21614: (_P, "the number is not a mobile number"),
    30005: (_P, "unknown destination: the number does not exist"),
    30006: (_P, "landline or unreachable carrier"),
    30007: (_P, "filtered by the carrier as spam"),
    63003: (_P, "the number is not a WhatsApp user"),
    63016: (_P, "outside the 24-hour window: only an approved template (content_sid) may be sent"),
    63024: (_P, "invalid message recipient"),
    21610: (_O, "the recipient unsubscribed (replied STOP) from this sender"),
    63014: (_O, "the recipient blocked or opted out of messages from this sender"),
}


def classify(http_status: int | None, error_code: int | None) -> ErrorClass:
    """`http_status` None means no response arrived; `error_code` is Twilio's `code` (or ErrorCode)."""
    if error_code is not None and error_code in _KNOWN:
        return _KNOWN[error_code][0]
    if http_status is None:
        return ErrorClass.RETRY if error_code is None else ErrorClass.PERMANENT
    if http_status == 429 or http_status >= 500:
        return ErrorClass.RETRY
    if http_status == 401:
        return ErrorClass.PAUSE_CAMPAIGN
    return ErrorClass.PERMANENT


_DEFAULT_DELAYS = tuple(timedelta(seconds=seconds) for seconds in RETRY_DELAYS)


def retry_delay(failed_attempts: int, delays: Sequence[timedelta] = _DEFAULT_DELAYS) -> timedelta | None:
    """How long to wait after the n-th failed attempt (1-based); None means give up.

    `delays` is the deployment's schedule (settings.retry_delays); RETRY_DELAYS is the default.
    """
    if failed_attempts < 1:
        raise ValueError("failed_attempts counts failures so far and starts at 1")
    if failed_attempts > len(delays):
        return None
    return delays[failed_attempts - 1]


def describe(error_code: int) -> str:
    """A short meaning an operator can act on, with the Twilio reference for the rest."""
    known = _KNOWN.get(error_code)
    meaning = known[1] if known else "Twilio error"
    return f"{meaning} ({error_code}; https://www.twilio.com/docs/api/errors/{error_code})"
