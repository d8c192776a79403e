"""GET on Twilio's Messages API: fetch one message by SID, and the list with Twilio's filters and paging
(https://www.twilio.com/docs/messaging/api/message-resource, "Read multiple Message resources").

- Filters: `To`, `From`, and the send date: `DateSent` (that day), `DateSent<` (on or before it),
  `DateSent>` (on or after it). Twilio documents dates as YYYY-MM-DD in GMT; the SDK sends a whole
  ISO 8601 time (`date_sent_after=...` becomes `DateSent>=2030-01-01T10:00:00Z`), of which Twilio reads
  only the date, and so does this. A message still queued has no `date_sent`, so any DateSent filter
  leaves it out, as Twilio's does.
- Order: newest first. Paging: `PageSize` (default 50, at most 1000), `Page` (from 0) and `PageToken`, with
  `next_page_uri` / `previous_page_uri` / `first_page_uri` relative to the API's host, as the SDK follows
  them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, datetime
from typing import Any
from urllib.parse import urlencode

from . import twilio_errors as errors
from .store import MessageRecord, MessageStore
from .twilio_errors import TwilioError

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
_DATE_FILTERS = ("DateSent", "DateSent<", "DateSent>")


def fetch(store: MessageStore, sid: str, path: str) -> dict[str, Any]:
    record = store.get(sid)
    if record is None:
        raise TwilioError.of(errors.NOT_FOUND, path=path)
    return record.twilio_resource()


def read_page(store: MessageStore, account_sid: str, query: Mapping[str, str]) -> dict[str, Any]:
    keep = _filter(query)
    page_size = _page_size(query.get("PageSize"))
    page = _whole(query.get("Page", "0"), "Page")
    records = store.matching(keep)
    start = page * page_size
    chunk = records[start : start + page_size]
    base = f"/2010-04-01/Accounts/{account_sid}/Messages.json"
    filters = {k: v for k, v in query.items() if k in ("To", "From", *_DATE_FILTERS)}

    def uri(number: int) -> str:
        return f"{base}?{urlencode({**filters, 'PageSize': page_size, 'Page': number})}"

    has_next = start + page_size < len(records)
    return {
        "messages": [r.twilio_resource() for r in chunk],
        "end": start + len(chunk) - 1 if chunk else start,
        "first_page_uri": uri(0),
        "next_page_uri": f"{uri(page + 1)}&PageToken=PA{chunk[-1].sid}" if has_next else None,
        "previous_page_uri": uri(page - 1) if page > 0 else None,
        "page": page,
        "page_size": page_size,
        "start": start,
        "uri": uri(page),
    }


def _filter(query: Mapping[str, str]) -> Callable[[MessageRecord], bool]:
    to, from_ = query.get("To"), query.get("From")
    on = _date(query.get("DateSent"), "DateSent")
    before = _date(query.get("DateSent<"), "DateSent<")
    after = _date(query.get("DateSent>"), "DateSent>")
    dated = on is not None or before is not None or after is not None

    def keep(record: MessageRecord) -> bool:
        request = record.request
        if to is not None and str(request.to) != to:
            return False
        if from_ is not None and str(request.from_) != from_:
            return False
        if not dated:
            return True
        if record.sent_at is None:
            return False
        sent = record.sent_at.date()
        return (
            (on is None or sent == on)
            and (before is None or sent <= before)
            and (after is None or sent >= after)
        )

    return keep


def _date(raw: str | None, name: str) -> date | None:
    if raw is None or raw == "":
        return None
    try:
        return (
            datetime.fromisoformat(raw.replace("Z", "+00:00")).date()
            if "T" in raw
            else date.fromisoformat(raw)
        )
    except ValueError:
        raise TwilioError(400, 20001, f"Invalid value for {name}: {raw!r} (expected YYYY-MM-DD)") from None


def _page_size(raw: str | None) -> int:
    size = _whole(raw, "PageSize") if raw else DEFAULT_PAGE_SIZE
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise TwilioError(400, 20001, f"PageSize must be between 1 and {MAX_PAGE_SIZE}")
    return size


def _whole(raw: str, name: str) -> int:
    if not raw.isdigit():
        raise TwilioError(400, 20001, f"Invalid value for {name}: {raw!r}")
    return int(raw)
