"""What the emulator does after it accepts a message, changeable while it runs (POST /_emulator/config)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# The callbacks Twilio sends on the way to each final status of an outbound WhatsApp message: one per
# status change, read included where the channel reports read receipts, as WhatsApp does
# (https://www.twilio.com/docs/messaging/guides/outbound-message-status-in-status-callbacks).
STATUS_SEQUENCES: dict[str, tuple[str, ...]] = {
    "sent": ("sent",),
    "delivered": ("sent", "delivered"),
    "read": ("sent", "delivered", "read"),
    "undelivered": ("sent", "undelivered"),
    "failed": ("failed",),
}
# 30008 is Twilio's "Unknown error", the code it reports when it has nothing more specific.
DEFAULT_FAILURE_CODE = 30008


@dataclass(frozen=True)
class Outcome:
    status: str = "read"
    error_code: int | None = None

    @classmethod
    def parse(cls, spec: object, where: str) -> Outcome:
        if isinstance(spec, str):
            spec = {"status": spec}
        if not isinstance(spec, Mapping) or spec.get("status") not in STATUS_SEQUENCES:
            raise ValueError(f"{where}: expected {{'status': one of {sorted(STATUS_SEQUENCES)}}}")
        status = str(spec["status"])
        error_code = spec.get("error_code", DEFAULT_FAILURE_CODE)
        if status not in ("failed", "undelivered"):
            return cls(status)
        if not isinstance(error_code, int):
            raise ValueError(f"{where}.error_code: expected an integer Twilio error code")
        return cls(status, error_code)

    def as_json(self) -> dict[str, Any]:
        return {"status": self.status, "error_code": self.error_code}


@dataclass
class EmulatorConfig:
    callback_delay: float = 0.05
    out_of_order: bool = False
    duplicate: bool = False
    final_status: Outcome = field(default_factory=Outcome)
    # Final outcome per recipient (bare +E164), for numbers that must fail or stop early.
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    inbound_url: str | None = None

    def outcome_for(self, number: str) -> Outcome:
        return self.outcomes.get(number, self.final_status)

    def update(self, spec: Mapping[str, Any]) -> None:
        """Apply a JSON patch, all or nothing; ValueError names the offending field."""
        unknown = set(spec) - set(self.as_json())
        if unknown:
            raise ValueError(f"unknown config fields: {sorted(unknown)}")
        delay = spec.get("callback_delay", self.callback_delay)
        if not isinstance(delay, (int, float)) or not 0 <= delay <= 600:
            raise ValueError("callback_delay: expected seconds between 0 and 600")
        final = Outcome.parse(spec["final_status"], "final_status") if "final_status" in spec else None
        outcomes = spec.get("outcomes")
        if outcomes is not None and not isinstance(outcomes, Mapping):
            raise ValueError("outcomes: expected an object of +E164 -> outcome")
        parsed = {n: Outcome.parse(o, f"outcomes[{n}]") for n, o in (outcomes or {}).items()}
        inbound_url = spec.get("inbound_url", self.inbound_url)
        if inbound_url is not None and not str(inbound_url).startswith(("http://", "https://")):
            raise ValueError("inbound_url: expected an http(s) URL or null")
        self.callback_delay = float(delay)
        self.out_of_order = bool(spec.get("out_of_order", self.out_of_order))
        self.duplicate = bool(spec.get("duplicate", self.duplicate))
        self.final_status = final or self.final_status
        if outcomes is not None:
            self.outcomes = parsed
        self.inbound_url = inbound_url

    def as_json(self) -> dict[str, Any]:
        return {
            "callback_delay": self.callback_delay,
            "out_of_order": self.out_of_order,
            "duplicate": self.duplicate,
            "final_status": self.final_status.as_json(),
            "outcomes": {n: o.as_json() for n, o in self.outcomes.items()},
            "inbound_url": self.inbound_url,
        }
