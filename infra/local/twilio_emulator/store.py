"""Every message the emulator accepted, in acceptance order, with its current status, and the reads of
Twilio's Messages API over them (fetch by SID, the filtered and paged list)."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from .messages_api import Address, NewMessage

# Status only moves forward, as on Twilio: an out-of-order "sent" callback leaves a message "read".
STATUS_RANK = {
    "accepted": 0,
    "queued": 0,
    "sent": 1,
    "delivered": 2,
    "read": 3,
    "undelivered": 4,
    "failed": 4,
}


def new_sid(prefix: str) -> str:
    return prefix + uuid.uuid4().hex


# Statuses after which a message has left Twilio for the carrier: `date_sent` is set from then on (Twilio
# leaves it null while a message is queued or accepted).
_SENT = frozenset({"sent", "delivered", "read", "undelivered", "failed"})


@dataclass
class MessageRecord:
    sid: str
    account_sid: str
    request: NewMessage
    created_at: datetime
    status: str
    error_code: int | None = None
    sent_at: datetime | None = None
    updated_at: datetime | None = None

    def twilio_resource(self) -> dict[str, Any]:
        """The Message resource as Twilio's API returns it (dates in RFC 2822, GMT)."""
        uri = f"/2010-04-01/Accounts/{self.account_sid}/Messages/{self.sid}"
        created = format_datetime(self.created_at)
        request = self.request
        return {
            "account_sid": self.account_sid,
            "api_version": "2010-04-01",
            "body": request.body,
            "date_created": created,
            "date_sent": format_datetime(self.sent_at) if self.sent_at else None,
            "date_updated": format_datetime(self.updated_at or self.created_at),
            "direction": "outbound-api",
            "error_code": self.error_code,
            "error_message": None,
            "from": str(request.from_) if request.from_ else None,
            "messaging_service_sid": request.messaging_service_sid,
            "num_media": "0",
            "num_segments": "1",
            "price": None,
            "price_unit": "USD",
            "sid": self.sid,
            "status": self.status,
            "subresource_uris": {"media": f"{uri}/Media.json"},
            "to": str(request.to),
            "uri": f"{uri}.json",
        }

    def emulator_view(self) -> dict[str, Any]:
        return {
            "sid": self.sid,
            **_request_json(self.request),
            "status": self.status,
            "error_code": self.error_code,
            "created_at": self.created_at.isoformat(timespec="microseconds"),
        }


class MessageStore:
    """With a `journal`, every accepted message and every status change is appended to that file and read
    back at start: Twilio does not forget what it accepted when something crashes, and neither does the
    emulator when it is killed and started again (callbacks still pending at the crash are lost)."""

    def __init__(self, account_sid: str, journal: Path | None = None) -> None:
        self._account_sid = account_sid
        self._lock = threading.Lock()
        self._records: dict[str, MessageRecord] = {}
        # Bumped by reset() so callback sequences of forgotten messages stop instead of posting on.
        self.generation = 0
        self._journal = journal
        if journal is not None and journal.exists():
            self._replay(journal)

    def accept(self, request: NewMessage, received: datetime | None = None) -> MessageRecord:
        """Record a created message, stamped `received` (when its request arrived), else now."""
        # A Messaging Service without a From answers "accepted" until it picks a sender.
        status = "queued" if request.from_ else "accepted"
        now = received or datetime.now(UTC)
        record = MessageRecord(new_sid("SM"), self._account_sid, request, now, status)
        with self._lock:
            self._records[record.sid] = record
            self._write(
                {"accept": record.sid, "at": now.isoformat(), "status": status, **_request_json(request)}
            )
        return record

    def advance(self, sid: str, status: str, error_code: int | None) -> None:
        with self._lock:
            record = self._records.get(sid)
            if record is not None and STATUS_RANK[status] > STATUS_RANK[record.status]:
                now = datetime.now(UTC)
                self._apply(record, status, error_code, now)
                self._write(
                    {"advance": sid, "at": now.isoformat(), "status": status, "error_code": error_code}
                )

    @staticmethod
    def _apply(record: MessageRecord, status: str, error_code: int | None, now: datetime) -> None:
        record.status, record.error_code, record.updated_at = status, error_code, now
        if status in _SENT and record.sent_at is None:
            record.sent_at = now

    def _write(self, entry: dict[str, Any]) -> None:
        if self._journal is not None:
            with self._journal.open("a") as journal:
                journal.write(json.dumps(entry) + "\n")

    def _replay(self, journal: Path) -> None:
        for line in journal.read_text().splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # the last line of a journal killed mid-write
            at = datetime.fromisoformat(entry["at"])
            if "accept" in entry:
                request = _request_from_json(entry)
                self._records[entry["accept"]] = MessageRecord(
                    entry["accept"], self._account_sid, request, at, entry["status"]
                )
            elif (record := self._records.get(entry["advance"])) is not None:
                self._apply(record, entry["status"], entry["error_code"], at)

    def get(self, sid: str) -> MessageRecord | None:
        with self._lock:
            return self._records.get(sid)

    def matching(self, keep: Callable[[MessageRecord], bool]) -> list[MessageRecord]:
        """Newest first, as Twilio lists messages."""
        with self._lock:
            found = [r for r in self._records.values() if keep(r)]
        return sorted(found, key=lambda r: (r.created_at, r.sid), reverse=True)

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return [record.emulator_view() for record in self._records.values()]

    def reset(self) -> None:
        with self._lock:
            self._records.clear()
            self.generation += 1
            if self._journal is not None:
                self._journal.write_text("")


def _request_json(request: NewMessage) -> dict[str, Any]:
    return {
        "to": str(request.to),
        "from": str(request.from_) if request.from_ else None,
        "messaging_service_sid": request.messaging_service_sid,
        "body": request.body,
        "content_sid": request.content_sid,
        "content_variables": request.content_variables,
        "status_callback": request.status_callback,
    }


def _request_from_json(entry: dict[str, Any]) -> NewMessage:
    to = Address.parse(entry["to"])
    assert to is not None
    return NewMessage(
        to=to,
        from_=Address.parse(entry["from"]) if entry["from"] else None,
        messaging_service_sid=entry["messaging_service_sid"],
        body=entry["body"],
        content_sid=entry["content_sid"],
        content_variables=entry["content_variables"],
        status_callback=entry["status_callback"],
    )
