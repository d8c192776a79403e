"""Publishing a campaign's pages to Pub/Sub: one small JSON message per page, confirmed before the page is
recorded as published. Fan-out reads the page's key range from the database, not from the message."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from shared.adapters.pubsub import Publisher
from shared.boundary import BIGINT_MAX, INTEGER_MAX, Refused, bounded_int, parse_json
from shared.db.queries import campaigns as campaign_sql
from shared.db.unit_of_work import UnitOfWork

# A page message is ~90 bytes of JSON; Pub/Sub would carry up to 10 MB.
MAX_MESSAGE_BYTES = 1024


@dataclass(frozen=True)
class PageMessage:
    campaign_id: int
    page_no: int
    published_at: datetime

    def encode(self) -> bytes:
        payload = {
            "campaign_id": self.campaign_id,
            "page_no": self.page_no,
            "published_at": self.published_at.isoformat(),
        }
        return json.dumps(payload).encode()

    @classmethod
    def decode(cls, data: bytes) -> PageMessage:
        """Raises ValueError (with what is wrong, and where) for anything but a page message."""
        try:
            if len(data) > MAX_MESSAGE_BYTES:
                raise Refused("message", f"is {len(data)} bytes; a page message is under {MAX_MESSAGE_BYTES}")
            payload = parse_json(data, "message")
            if not isinstance(payload, dict):
                raise Refused("message", "expected a JSON object")
            campaign_id = bounded_int(payload.get("campaign_id"), "campaign_id", 1, BIGINT_MAX)
            page_no = bounded_int(payload.get("page_no"), "page_no", 0, INTEGER_MAX)
            published_at = _aware_time(payload.get("published_at"))
        except Refused as refused:
            raise ValueError(f"not a page message: {refused.message}") from None
        return cls(campaign_id, page_no, published_at)


def _aware_time(value: object) -> datetime:
    try:
        published_at = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        published_at = None
    if published_at is None or published_at.tzinfo is None:
        raise Refused("published_at", "expected an ISO 8601 time with its UTC offset")
    return published_at


def publish_pages(
    uow: UnitOfWork, publisher: Publisher, campaign_id: int, page_nos: Sequence[int], now: datetime
) -> None:
    """Publish, wait for every confirmation, then record the pages as published (raises if any failed;
    the pages stay unpublished and the scheduler's next tick republishes them)."""
    if not page_nos:
        return
    publisher.publish([PageMessage(campaign_id, page_no, now).encode() for page_no in page_nos])
    with uow:
        campaign_sql.mark_pages_published(uow.session, campaign_id, page_nos, now)
        uow.commit()
