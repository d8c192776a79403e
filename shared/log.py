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

# Phone numbers as this system writes them: E.164 (+ and 7-15 digits, possibly spaced or dashed as a
# person typed it) or a bare 10-15 digit run. Dates and times (2026-11-22 02:59) are left alone. The
# last four digits stay so an operator can still tell two numbers apart in a log.
_PHONE = re.compile(r"\+\d(?:[\-\s().]?\d){6,14}(?!\d)|(?<![\w+])\d{10,15}(?![\w])")

_STANDARD_ATTRS = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


def mask_phone(text: str) -> str:
    """Mask every phone-like number in `text`, keeping the last four digits."""

    def _masked(match: re.Match[str]) -> str:
        digits = re.sub(r"\D", "", match.group())
        return ("+" if match.group().startswith("+") else "") + "***" + digits[-4:]

    return _PHONE.sub(_masked, text)


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
