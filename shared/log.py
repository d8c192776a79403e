"""JSON-lines logging that Cloud Logging understands, with phone numbers masked.

Cloud Logging parses one JSON object per stdout line and lifts `severity`, `message` and
`logging.googleapis.com/trace` into the entry, so no client library is needed. Phone numbers are masked
in the message and in every extra field, because logs are kept longer and read more widely than the
database.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

_trace: contextvars.ContextVar[str | None] = contextvars.ContextVar("trace", default=None)

# A phone number however it is written: international (+, or %2B URL-encoded as in a webhook's form, which
# also writes spaces as + or %20) with 7 to 15 digits, or national with 10 to 15; digits may be grouped by
# spaces, dots, dashes and parentheses. The last four digits stay, so an operator can tell two apart.
_SEPARATOR = r"(?:[\s\-.()+]|%20)"
_PHONE = re.compile(
    rf"(?P<plus>\+|%2[Bb])\(?\d(?:{_SEPARATOR}{{0,2}}\d){{6,14}}(?!\w)"
    rf"|(?<![\w+%])\(?\d(?:{_SEPARATOR}{{0,2}}\d){{9,14}}(?!\w)"
)

_STANDARD_ATTRS = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


def mask_phone(text: str) -> str:
    """Mask every phone number in `text`, keeping the last four digits."""
    return _PHONE.sub(_masked, text)


def _masked(match: re.Match[str]) -> str:
    written, plus = match.group(), match.group("plus")
    groups = re.findall(r"\d+", written.replace("%20", " ").removeprefix(plus or ""))
    if plus is None and not _grouped_like_a_phone(groups):
        return written
    return (plus or "") + "***" + "".join(groups)[-4:]


def _grouped_like_a_phone(groups: list[str]) -> bool:
    """A national number is one run of digits, groups of three or more after the first (415 555 0101,
    (020) 7946 0958), or pairs (01 23 45 67 89). Dates and times are none of these (2026-11-22 02:59)."""
    return all(len(group) >= 3 for group in groups[1:]) or all(len(group) == 2 for group in groups)


def _mask(value: Any) -> Any:
    if isinstance(value, str):
        return mask_phone(value)
    if isinstance(value, dict):
        return {k: _mask(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mask(v) for v in value]
    return value


def set_trace(header_value: str | None, project: str) -> None:
    """Bind the request's trace (from X-Cloud-Trace-Context: TRACE_ID/SPAN;o=1) to the log context."""
    trace_id = (header_value or "").split("/", 1)[0]
    _trace.set(f"projects/{project}/traces/{trace_id}" if trace_id else None)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "severity": record.levelname,
            "message": mask_phone(record.getMessage()),
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "logger": record.name,
        }
        trace = _trace.get()
        if trace:
            entry["logging.googleapis.com/trace"] = trace
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = _mask(value)
        if record.exc_info:
            entry["exception"] = mask_phone(self.formatException(record.exc_info))
        return json.dumps(entry, default=str)


def configure_logging(level: str = "INFO") -> None:
    root = logging.getLogger()
    if any(isinstance(h.formatter, JsonFormatter) for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    root.handlers = [handler]
    root.setLevel(level)
