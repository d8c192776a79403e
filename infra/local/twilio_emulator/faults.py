"""Injected failures of the create call: errors for a fraction of sends or for one number, and slow answers.

A slow answer with `accept` records the message (and sends its callbacks) but answers after the client
gave up: the "did Twilio get it?" case a sender must reconcile rather than resend.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

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

    @classmethod
    def parse(cls, spec: Mapping[str, Any]) -> Fault:
        rate, delay = spec.get("rate", 1.0), spec.get("delay", 0.0)
        if not isinstance(rate, (int, float)) or not 0 < rate <= 1:
            raise ValueError("rate: expected a fraction between 0 (clears) and 1")
        if not isinstance(delay, (int, float)) or not 0 <= delay <= 600:
            raise ValueError("delay: expected seconds between 0 and 600")
        accept = bool(spec.get("accept", False))
        status = spec.get("http_status")
        if status is None:
            if not (accept and delay > 0):
                raise ValueError("http_status: required unless the fault is a slow accept (accept + delay)")
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

    def configure(self, spec: Mapping[str, Any]) -> None:
        """Add or replace a fault; {"rate": 0} clears all of them, {"to": n, "rate": 0} that number's."""
        number = spec.get("to")
        if number is not None and not E164.fullmatch(str(number)):
            raise ValueError("to: expected a +E164 number")
        clearing = spec.get("rate", 1.0) == 0
        fault = None if clearing else Fault.parse(spec)
        with self._lock:
            if "seed" in spec:
                self._rng.seed(spec["seed"])
            if number is None:
                self._everyone = fault
                if clearing:
                    self._by_number = {}
            elif fault is None:
                self._by_number.pop(number, None)
            else:
                self._by_number[number] = fault

    def clear(self) -> None:
        with self._lock:
            self._everyone, self._by_number = None, {}

    def pick(self, number: str) -> Fault | None:
        """The fault this create call suffers, if any: the number's own first, then the general one."""
        with self._lock:
            for fault in (self._by_number.get(number), self._everyone):
                if fault is not None and self._rng.random() < fault.rate:
                    return fault
        return None
