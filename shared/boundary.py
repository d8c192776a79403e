"""What input may cross into the system: one rule, applied at every door (API bodies, query strings and
paths, cursors, dashboard forms, Twilio's webhook forms and JSON, import cells, segment DSL values, the
pipeline's task and page bodies). Each door maps a refusal to its transport's answer: a 400 naming the
field, a rejected row naming the column, a poison task logged with the field.

- Text is UTF-8 without NUL. PostgreSQL's text and jsonb cannot hold NUL, and a lone surrogate (from a
  JSON "\\ud800" escape, or from bytes that are not UTF-8) cannot be encoded at all: pg8000 fails halfway
  through writing the statement.
- Numbers are finite and within what their column holds: BIGINT and INTEGER for ids and codes, and for
  JSON values the range of a double, the range RFC 8259 section 6 says JSON readers agree on.
- JSON nests at most MAX_JSON_DEPTH levels, and a body is refused past its door's byte cap before any of
  it is parsed.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import IO, TYPE_CHECKING, Any, TypeVar
from urllib.parse import unquote_to_bytes

from shared.domain.errors import DomainError

if TYPE_CHECKING:
    from werkzeug.wrappers import Request

BIGINT_MAX = 2**63 - 1
INTEGER_MAX = 2**31 - 1
# Past this a JSON number means different things to different readers (Python's int, PostgreSQL's numeric,
# a browser's double), so it is refused rather than stored as something nobody else reads back the same.
MAX_JSON_NUMBER = sys.float_info.max
# Deep enough for any segment definition (its 20 levels of conditions take 41) and any sensible attribute;
# shallow enough that no walk over a value comes near the interpreter's recursion limit.
MAX_JSON_DEPTH = 64
READ_SIZE = 64 * 1024

T = TypeVar("T")


class Refused(DomainError):
    """Input that may not cross the boundary: `field` says where, `reason` what is wrong with it."""

    code = "invalid_input"

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}", field=field, reason=reason)
        self.field = field
        self.reason = reason


class NotJson(Refused):
    """The text is not JSON at all (a syntax error), as opposed to JSON we refuse to take."""


class TooLarge(Refused):
    code = "payload_too_large"


def text_problem(text: str) -> str | None:
    """Why PostgreSQL could not store this text, or None."""
    if "\x00" in text:
        return "contains a NUL character"
    if not text.isascii():
        try:
            text.encode()
        except UnicodeEncodeError:
            return "is not UTF-8 text (a lone surrogate, or bytes that are not UTF-8)"
    return None


def number_problem(number: float) -> str | None:
    if isinstance(number, float) and not math.isfinite(number):
        return "is a number that is not finite"
    if abs(number) > MAX_JSON_NUMBER:
        return "is a number beyond ±1.8e308, the range JSON readers agree on"
    return None


def storage_problem(value: object, path: str = "") -> tuple[str, str] | None:
    """Where and why this JSON-like value could not be stored and read back, or None: the first bad text
    (keys included), number or nesting, in document order. Values of other types (dates, enums) pass."""
    pending: list[tuple[str, object, int]] = [(path, value, 0)]
    while pending:
        where, item, depth = pending.pop()
        if isinstance(item, str):
            why = text_problem(item)
        elif isinstance(item, int | float) and not isinstance(item, bool):
            why = number_problem(item)
        elif isinstance(item, Mapping | list | tuple):
            if depth >= MAX_JSON_DEPTH:
                return where, f"is nested more than {MAX_JSON_DEPTH} levels deep"
            pending.extend(reversed(list(_children(where, item, depth + 1))))
            continue
        else:
            continue
        if why is not None:
            return where, why
    return None


def _children(
    path: str, value: Mapping[Any, Any] | list[Any] | tuple[Any, ...], depth: int
) -> Iterable[tuple[str, object, int]]:
    if isinstance(value, Mapping):
        for key, item in value.items():
            where = f"{path}.{displayable(str(key))}".lstrip(".")
            yield where, key, depth
            yield where, item, depth
    else:
        for index, item in enumerate(value):
            yield f"{path}[{index}]", item, depth


def check_value(value: object, field: str) -> None:
    """Raise `Refused` naming the first part of `value` that `storage_problem` finds."""
    problem = storage_problem(value, field)
    if problem is not None:
        raise Refused(*problem)


def bounded_int(value: object, field: str, low: int, high: int) -> int:
    """A JSON integer (true and false are not) from `low` to `high`, or `Refused` naming `field`."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise Refused(field, f"expected an integer from {low} to {high}")
    return value


def displayable(text: str) -> str:
    """`text` with any lone surrogate written as an escape (\\udc80), so it can be shown, logged and
    serialized: what a report or an error message echoes back must never fail to encode."""
    return text if text.isascii() else text.encode("utf-8", "backslashreplace").decode()


def whole_number(text: str, maximum: int) -> int | None:
    """Text that is an integer from 0 to `maximum` in ASCII digits, or None. `int()` alone would also take
    '٣' and ' 3', and fail past 4300 digits instead of saying no."""
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(maximum)):
        return None
    number = int(text)
    return number if number <= maximum else None


def parse_json(raw: bytes | str, field: str) -> Any:
    """JSON that passes the boundary rule, or `Refused` naming where it does not (`NotJson` for a
    syntax error)."""
    try:
        text = raw.decode() if isinstance(raw, bytes) else raw
    except UnicodeDecodeError as exc:
        raise Refused(field, f"is not UTF-8 text (byte {exc.start})") from None
    try:
        value = decoded_json(field, json.loads, text)
    except json.JSONDecodeError as exc:
        raise NotJson(
            field, f"is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    check_value(value, field)
    return value


def decoded_json(field: str, decode: Callable[..., T], *args: Any) -> T:
    """Run a JSON decode, turning the parser's own limits into refusals: Python's parser stops deep
    nesting with a RecursionError and integers of more than 4300 digits with a ValueError. A syntax error
    (JSONDecodeError) is left to the caller, who knows where in its file it is."""
    try:
        return decode(*args)
    except json.JSONDecodeError:
        raise
    except RecursionError:
        raise Refused(field, f"is nested more than {MAX_JSON_DEPTH} levels deep") from None
    except ValueError:
        raise Refused(field, f"holds a number of more than {sys.get_int_max_str_digits()} digits") from None


def form_fields(raw: bytes) -> list[tuple[str, str]]:
    """An application/x-www-form-urlencoded body or query string as (name, value) pairs, in order, decoded
    without loss: bytes that are not UTF-8 come through as lone surrogates (surrogateescape), so a
    signature can still be checked over exactly what was sent, and `check_fields` refuses them by name."""
    pairs = []
    for part in raw.split(b"&"):
        if part:
            name, _, value = part.partition(b"=")
            pairs.append((_unquote(name), _unquote(value)))
    return pairs


def _unquote(raw: bytes) -> str:
    return unquote_to_bytes(raw.replace(b"+", b" ")).decode("utf-8", "surrogateescape")


def check_fields(fields: Iterable[tuple[str, str]], location: str = "") -> None:
    """Raise `Refused` naming the first form field whose name or value breaks the text rule."""
    for name, value in fields:
        for text in (name, value):
            why = text_problem(text)
            if why is not None:
                raise Refused(f"{location}.{displayable(name)}".lstrip("."), why)


def check_url(path_info: str, query_string: bytes) -> None:
    """The request's path (WSGI's PATH_INFO: the raw bytes, one character each) and query string."""
    path = path_info.encode("latin-1").decode("utf-8", "surrogateescape")
    why = text_problem(path)
    if why is not None:
        raise Refused("path", why)
    check_fields(form_fields(query_string), "query")


def read_body(request: Request, cap: int) -> bytes:
    """The whole body, or `TooLarge` past `cap` bytes, before any of it is parsed. A declared length over
    the cap is refused unread; a body without one (chunked) is read one byte past the cap at most."""
    declared = _within(cap, request.content_length)
    if declared is not None:
        return request.get_data()
    chunks: list[bytes] = []
    size = 0
    while size <= cap and (chunk := request.stream.read(min(READ_SIZE, cap + 1 - size))):
        chunks.append(chunk)
        size += len(chunk)
    _within(cap, size)
    return b"".join(chunks)


def capped_stream(request: Request, cap: int) -> CappedStream:
    """The body as a stream, for a door that reads it piece by piece (the import): refused unread when its
    declared length is over `cap`, else as soon as more than `cap` bytes have come."""
    _within(cap, request.content_length)
    return CappedStream(request.stream, cap)


def check_declared_length(request: Request, cap: int) -> None:
    """For a body a library parses to its end on its own (werkzeug's multipart parser): only one of declared
    length can be bounded, so one without is refused too."""
    if _within(cap, request.content_length) is None:
        raise Refused("body", "an upload must state its length (Content-Length)")


class CappedStream:
    def __init__(self, source: IO[bytes], cap: int) -> None:
        self._source = source
        self._cap = cap
        self._size = 0

    def read(self, size: int = -1, /) -> bytes:
        data = self._source.read(size)
        self._size += len(data)
        _within(self._cap, self._size)
        return data


def _within(cap: int, size: int | None) -> int | None:
    if size is not None and size > cap:
        raise TooLarge("body", f"is more than {cap} bytes, the most accepted here")
    return size
