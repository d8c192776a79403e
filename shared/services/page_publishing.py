"""Publishing a campaign's pages to Pub/Sub: one small JSON message per page, confirmed before the page is
recorded as published. Fan-out reads the page's key range from the database, not from the message."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.adapters.pubsub import Publisher
from shared.db.queries import campaigns as campaign_sql
from shared.db.unit_of_work import UnitOfWork


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
    def decode(cls, data: Any) -> PageMessage:
        """Raises ValueError (with what is wrong) for anything but a page message."""
        try:
            payload = json.loads(data)
            campaign_id, page_no = payload["campaign_id"], payload["page_no"]
            published_at = datetime.fromisoformat(payload["published_at"])
        except (TypeError, KeyError, json.JSONDecodeError) as error:
            raise ValueError(f"not a page message: {error!r}") from None
        if not isinstance(campaign_id, int) or not isinstance(page_no, int) or published_at.tzinfo is None:
            raise ValueError("page message needs integer campaign_id and page_no and an aware published_at")
        return cls(campaign_id, page_no, published_at)


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
