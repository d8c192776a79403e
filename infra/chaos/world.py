"""What a chaos run drives and reads: recipients seeded in SQL, a campaign through the API, the Twilio
emulator's record of what it accepted (kept across its own restarts by its journal), the ledger, and the
verdict of one fault: duplicates, drops, stuck messages and sends accepted after a STOP, pause or cancel
was acknowledged."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import requests

from infra.bench.datasets import phone, seed_users
from infra.local.postgres import connect
from infra.local.stack import LocalStack

# A message in these states has been decided without reaching Twilio for a reason the fault allows.
JUSTIFIED = {"WITHHELD", "SKIPPED"}
UNSETTLED = {"QUEUED", "SENDING", "AMBIGUOUS"}


@dataclass
class Acks:
    """When the harness got each acknowledgement: after it, Twilio must accept nothing it stops."""

    stops: dict[str, datetime] = field(default_factory=dict)
    pauses: list[tuple[datetime, datetime | None]] = field(default_factory=list)  # (paused, resumed)
    cancelled: datetime | None = None


@dataclass(frozen=True)
class Verdict:
    fault: str
    recipients: int
    sent: int
    duplicates: int
    drops: int
    stuck: int
    violations: int
    recovered_seconds: float | None
    note: str = ""
    # A pool's promises broken: a recipient reached from two senders, a sender in the wrong state after.
    pool_broken: int = 0

    @property
    def clean(self) -> bool:
        return (
            not (self.duplicates or self.drops or self.stuck or self.violations or self.pool_broken)
            and self.recovered_seconds is not None
        )


class World:
    def __init__(self, stack: LocalStack) -> None:
        self.stack = stack
        self.env = stack.env
        self.api = requests.Session()
        self.api.headers["Authorization"] = f"Bearer {self.env['API_TOKEN']}"
        self.next_user = 0

    # --- setting up ---

    def recipients(self, count: int) -> list[str]:
        first = self.next_user
        self.next_user += count
        seed_users(self.env["DATABASE_URL"], first, count)
        self.sql("UPDATE users SET last_inbound_at = now()")  # inside WhatsApp's 24-hour window
        return [phone(i) for i in range(first, first + count)]

    def campaign(self, rate: int, sender_pool: str | None = None) -> int:
        tag = time.time_ns()
        # A pool's senders have no 24-hour window open with these users (the window belongs to a business
        # number and a user), so a pool campaign needs the approved template to send anything.
        approved = {"content_sid": "HX" + "c4" * 16, "content_variables": {"1": "first_name"}}
        template = self._post(
            "/v1/templates",
            {"name": f"chaos-{tag}", "content": "Hello {first_name}", **(approved if sender_pool else {})},
        )
        segment = self._post(
            "/v1/segments", {"name": f"chaos-{tag}", "definition": {"operator": "AND", "conditions": []}}
        )
        return self._post(
            "/v1/campaigns",
            {
                "name": f"chaos-{tag}",
                "template_id": template,
                "segment_id": segment,
                "rate_limit_per_second": rate,
                # Faults are injected now, at any hour: no quiet hours rather than DEFAULT_QUIET_HOURS.
                "quiet_hours_start": None,
                "quiet_hours_end": None,
                **({"sender_pool": sender_pool} if sender_pool else {}),
            },
        )

    def senders(self, pool: str, count: int, rate: int) -> list[str]:
        """A pool of `count` senders, `rate` msg/s each, registered through the API."""
        addresses = [f"whatsapp:+1415556{i:04d}" for i in range(count)]
        for address in addresses:
            self._post("/v1/senders", {"address": address, "pool": pool, "rate_limit_per_second": rate})
        return addresses

    def trigger(self, campaign_id: int) -> None:
        self.action(campaign_id, "trigger")

    def action(self, campaign_id: int, action: str) -> datetime:
        """An operator's action through the API; returns when it was acknowledged."""
        response = self.api.post(f"{self.env['API_URL']}/v1/campaigns/{campaign_id}/{action}", timeout=120)
        acknowledged = datetime.now(UTC)
        response.raise_for_status()
        return acknowledged

    def stop_from(self, number: str) -> datetime:
        """The user texts STOP (a signed inbound webhook through the front end); returns the 200's time."""
        response = requests.post(
            self.env["TWILIO_API_URL"] + "/_emulator/inbound",
            json={"from": number, "body": "STOP"},
            timeout=60,
        )
        acknowledged = datetime.now(UTC)
        response.raise_for_status()
        if response.json()["status"] != 200:
            raise RuntimeError(f"the STOP was not acknowledged: {response.json()}")
        return acknowledged

    def twilio(self, path: str, spec: Mapping[str, Any]) -> None:
        requests.post(self.env["TWILIO_API_URL"] + path, json=dict(spec), timeout=10).raise_for_status()

    # --- reading ---

    def accepted(self) -> list[dict[str, Any]]:
        response = requests.get(self.env["TWILIO_API_URL"] + "/_emulator/messages", timeout=60)
        response.raise_for_status()
        found: list[dict[str, Any]] = response.json()
        return found

    def sent_count(self, campaign_id: int) -> int:
        ((count,),) = self.sql(
            "SELECT count(*) FROM messages WHERE campaign_id = :c AND provider_sid IS NOT NULL", c=campaign_id
        )
        return int(count)

    def settled(self, campaign_id: int) -> bool:
        """Nothing left waiting and the campaign no longer RUNNING (COMPLETED, or as the fault left it)."""
        ((status, unsettled, pages),) = self.sql(
            """SELECT c.status,
                      (SELECT count(*) FROM messages m WHERE m.campaign_id = c.id
                        AND m.status IN ('QUEUED', 'SENDING', 'AMBIGUOUS')),
                      (SELECT count(*) FROM campaign_pages p WHERE p.campaign_id = c.id
                        AND p.fanned_out_at IS NULL AND p.dropped_at IS NULL)
               FROM campaigns c WHERE c.id = :c""",
            c=campaign_id,
        )
        if unsettled:
            return False
        # A cancelled campaign's pages still unfanned are written as withheld whenever they arrive.
        return status == "CANCELLED" or (status == "COMPLETED" and not pages)

    def wait_settled(self, campaign_id: int, timeout: float) -> float | None:
        """Seconds until settled, or None if it never was within `timeout`."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.settled(campaign_id):
                return time.monotonic() - started
            time.sleep(0.5)
        return None

    def wait_sent(self, campaign_id: int, count: int, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while self.sent_count(campaign_id) < count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"campaign {campaign_id}: fewer than {count} sent after {timeout:.0f} s")
            time.sleep(0.05)

    def verdict(
        self,
        fault: str,
        campaign_id: int,
        audience: list[str],
        acks: Acks,
        recovered: float | None,
        note: str = "",
    ) -> Verdict:
        to_us = set(audience)
        accepted = [m for m in self.accepted() if m["to"].removeprefix("whatsapp:") in to_us]
        per_recipient = Counter(m["to"].removeprefix("whatsapp:") for m in accepted)
        ledger = {
            str(p): str(s)
            for p, s in self.sql(
                "SELECT recipient_phone, status FROM messages WHERE campaign_id = :c", c=campaign_id
            )
        }
        # Not sent, and neither decided against for a reason (a STOP, a cancel) nor still waiting: lost.
        justified = JUSTIFIED | UNSETTLED | ({None} if acks.cancelled is not None else set())
        drops = sum(
            1 for number in audience if per_recipient[number] == 0 and ledger.get(number) not in justified
        )
        stuck = sum(1 for status in ledger.values() if status in UNSETTLED)
        return Verdict(
            fault=fault,
            recipients=len(audience),
            sent=sum(per_recipient.values()),
            duplicates=sum(1 for n in per_recipient.values() if n > 1),
            drops=drops,
            stuck=stuck,
            violations=_violations(accepted, acks),
            recovered_seconds=recovered,
            note=note,
        )

    # --- plumbing ---

    def _post(self, path: str, body: Mapping[str, Any]) -> int:
        response = self.api.post(self.env["API_URL"] + path, json=dict(body), timeout=60)
        if response.status_code != 201:
            raise RuntimeError(f"POST {path}: {response.status_code} {response.text[:300]}")
        return int(response.json()["id"])

    def sql(self, sql: str, **params: Any) -> list[list[Any]]:
        conn = connect(self.env["DATABASE_URL"])
        try:
            rows: list[list[Any]] = conn.run(sql, **params) or []
            return rows
        finally:
            conn.close()


def _violations(accepted: list[dict[str, Any]], acks: Acks) -> int:
    """Messages Twilio accepted after an acknowledgement that should have stopped them."""
    count = 0
    for message in accepted:
        at = datetime.fromisoformat(message["created_at"])
        number = message["to"].removeprefix("whatsapp:")
        stopped = acks.stops.get(number)
        if (
            (stopped is not None and at > stopped)
            or (acks.cancelled is not None and at > acks.cancelled)
            or any(paused < at and (resumed is None or at < resumed) for paused, resumed in acks.pauses)
        ):
            count += 1
    return count


def retry(action: Callable[[], Any], attempts: int = 30, delay: float = 1.0) -> Any:
    """An operator's call during an outage: tried again until the stack answers."""
    for attempt in range(attempts):
        try:
            return action()
        except (requests.RequestException, RuntimeError):
            if attempt == attempts - 1:
                raise
            time.sleep(delay)
    return None
