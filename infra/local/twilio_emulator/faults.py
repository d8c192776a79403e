"""Injected failures of the create call: errors for a fraction of sends, for one recipient or for one
sender, slow answers, and accepted sends that fail later in their status callback.

A fault targets one recipient (`to`, a bare +E164), one sender (`from`, the number a create's `From`
carries, with or without `whatsapp:`), or every create. Precedence, per create: the recipient's fault,
then the sender's, then the general one; each is tried with its own `rate`, so a recipient's fault that
does not fire lets the sender's or the general one decide. A create sent through a Messaging Service
without a `From` has no sender here: only recipient and general faults reach it.

A fault refuses the create synchronously (`http_status`, optional `error_code`), or accepts it and fails it
afterwards (`callback_error_code`, no `http_status`): `201`, a SID, status `queued`, then one `failed`
status callback carrying that `ErrorCode`, as Twilio reports WhatsApp channel errors (63018, 63049, ...)
that arrive after it accepted the message.

A slow answer with `accept` records the message (and sends its callbacks) but answers after the client
gave up: the "did Twilio get it?" case a sender must reconcile rather than resend.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .config import Outcome
from .messages_api import E164
from .twilio_errors import TwilioError

# The code Twilio pairs with each HTTP status when no specific one applies.
DEFAULT_CODES = {429: 20429, 500: 20500, 503: 20503}


@dataclass(frozen=True)
class Fault:
    rate: float
    error: TwilioError | None
    delay: float
    accept: bool
    # Set when the create is accepted and its status callbacks end `failed` with this code instead.
    callback_error_code: int | None = None

    @property
    def callback_outcome(self) -> Outcome | None:
        if self.callback_error_code is None:
            return None
        return Outcome("failed", self.callback_error_code)

    @classmethod
    def parse(cls, spec: Mapping[str, Any]) -> Fault:
        rate, delay = spec.get("rate", 1.0), spec.get("delay", 0.0)
        if not isinstance(rate, (int, float)) or not 0 < rate <= 1:
            raise ValueError("rate: expected a fraction between 0 (clears) and 1")
        if not isinstance(delay, (int, float)) or not 0 <= delay <= 600:
            raise ValueError("delay: expected seconds between 0 and 600")
        accept = bool(spec.get("accept", False))
        status = spec.get("http_status")
        callback_code = spec.get("callback_error_code")
        if callback_code is not None:
            if status is not None:
                raise ValueError(
                    "callback_error_code: a fault refuses the create (http_status) or fails it in its "
                    "status callback (callback_error_code), not both"
                )
            if not isinstance(callback_code, int) or isinstance(callback_code, bool):
                raise ValueError("callback_error_code: expected an integer Twilio error code")
            return cls(float(rate), None, float(delay), True, callback_code)
        if status is None:
            if not (accept and delay > 0):
                raise ValueError(
                    "http_status: required unless the fault is a slow accept (accept + delay) "
                    "or fails in the callback (callback_error_code)"
                )
            return cls(float(rate), None, float(delay), accept)
        if not isinstance(status, int) or not 400 <= status <= 599:
            raise ValueError("http_status: expected an HTTP error status (400-599)")
        code = spec.get("error_code", DEFAULT_CODES.get(status, status))
        if not isinstance(code, int):
            raise ValueError("error_code: expected an integer Twilio error code")
        message = str(spec.get("message") or f"Injected fault (Twilio error {code})")
        return cls(float(rate), TwilioError(status, code, message), float(delay), accept)


class FaultInjector:
    def __init__(self, seed: int = 0) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._everyone: Fault | None = None
        self._by_number: dict[str, Fault] = {}
        self._by_sender: dict[str, Fault] = {}

    def configure(self, spec: Mapping[str, Any]) -> None:
        """Add or replace a fault. {"rate": 0} clears all of them (recipients' and senders' too),
        {"to": n, "rate": 0} that recipient's, {"from": s, "rate": 0} that sender's."""
        number, sender = spec.get("to"), spec.get("from")
        if number is not None and sender is not None:
            raise ValueError("to, from: a fault targets one recipient or one sender, not both")
        if number is not None and not E164.fullmatch(str(number)):
            raise ValueError("to: expected a +E164 number")
        if sender is not None:
            sender = _sender_number(sender)
        clearing = spec.get("rate", 1.0) == 0
        fault = None if clearing else Fault.parse(spec)
        with self._lock:
            if "seed" in spec:
                self._rng.seed(spec["seed"])
            if number is not None:
                _put(self._by_number, str(number), fault)
            elif sender is not None:
                _put(self._by_sender, sender, fault)
            else:
                self._everyone = fault
                if clearing:
                    self._by_number, self._by_sender = {}, {}

    def clear(self) -> None:
        with self._lock:
            self._everyone, self._by_number, self._by_sender = None, {}, {}

    def pick(self, number: str, sender: str | None = None) -> Fault | None:
        """The fault this create call suffers, if any: the recipient's first, then the sender's (`sender`
        is the From's bare number, None for a Messaging Service without From), then the general one."""
        with self._lock:
            candidates = (
                self._by_number.get(number),
                None if sender is None else self._by_sender.get(sender),
                self._everyone,
            )
            for fault in candidates:
                if fault is not None and self._rng.random() < fault.rate:
                    return fault
        return None


def _sender_number(raw: object) -> str:
    """A sender fault's `from`: "+E164" or "whatsapp:+E164"; faults are kept by the bare number."""
    text = str(raw)
    number = text.removeprefix("whatsapp:")
    if not E164.fullmatch(number):
        raise ValueError("from: expected a sender's +E164 number, optionally prefixed whatsapp:")
    return number


def _put(faults: dict[str, Fault], key: str, fault: Fault | None) -> None:
    if fault is None:
        faults.pop(key, None)
    else:
        faults[key] = fault
