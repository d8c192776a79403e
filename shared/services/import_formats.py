"""Reading an import body as a stream of numbered records, whatever its format, without holding it.

- CSV (`text/csv`): a header row naming a `phone` column; the others are attributes (plus the optional
  `consent_state`, `default_region` and `topics`). UTF-8, with or without a BOM; quoted fields may hold
  commas and newlines. `row` numbers count data records from 1 (the header is not a row).
- JSON (`application/json`): an array of objects, parsed element by element; `row` is the element's
  position from 1. A syntax error anywhere refuses the whole file (nothing after it can be trusted).
- NDJSON (`application/x-ndjson`, or a JSON body not starting with `[`): one object per line; `row` is
  the line number, and a bad line rejects only that row.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any, Protocol

from shared.boundary import Refused, decoded_json
from shared.services.user_import import InvalidImport, NumberedRecord, UnreadableRow

READ_SIZE = 64 * 1024
CSV_TYPES = frozenset({"text/csv", "application/csv", "text/plain"})
JSON_TYPES = frozenset({"application/json"})
NDJSON_TYPES = frozenset({"application/x-ndjson", "application/ndjson", "application/jsonl"})
MEDIA_TYPES = CSV_TYPES | JSON_TYPES | NDJSON_TYPES
# Reserved column names are matched case-insensitively in a CSV header ("Phone" works).
RESERVED = ("phone", "consent_state", "default_region", "topics")


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class _Raw(io.RawIOBase):
    """Any `.read()`-able body (werkzeug's request stream, an uploaded part) as a raw stream."""

    def __init__(self, source: Readable) -> None:
        self._source = source

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._source.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class _Counted(io.BufferedReader):
    """Counts the bytes handed to the text decoder, so a decoding error can say where in the file it is
    (the decoder only knows its place in the chunk it was given)."""

    handed = 0

    def read(self, size: int | None = -1, /) -> bytes:
        data = super().read(size)
        self.handed += len(data)
        return data

    def read1(self, size: int = -1, /) -> bytes:
        data = super().read1(size)
        self.handed += len(data)
        return data


def records(source: Readable, media_type: str) -> Iterator[NumberedRecord]:
    binary = _Counted(_Raw(source), READ_SIZE)
    text = io.TextIOWrapper(binary, encoding="utf-8-sig", newline="")
    try:
        if media_type in CSV_TYPES:
            yield from _csv_records(text)
        elif binary.peek(READ_SIZE).lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"["):
            yield from _json_array_records(text)
        else:
            yield from _ndjson_records(text, empty_ok=False)
    except UnicodeDecodeError as exc:
        # The decoder was given the bytes it held back from the last chunk and this chunk: `object`.
        at = binary.handed - len(exc.object) + exc.start
        raise InvalidImport(f"the file is not UTF-8 text: {exc.reason} at byte {at}", byte=at) from None


def _csv_records(text: io.TextIOWrapper) -> Iterator[NumberedRecord]:
    reader = csv.reader(text)
    try:
        header = next(reader)
        columns = _columns(header)
        for row_no, fields in enumerate((f for f in reader if f), start=1):
            if len(fields) > len(columns):
                yield (
                    row_no,
                    UnreadableRow(
                        ",".join(fields)[:200], f"has {len(fields)} fields but the header has {len(columns)}"
                    ),
                )
            else:
                yield row_no, dict(zip(columns, fields, strict=False))
    except StopIteration:
        raise InvalidImport("the file is empty: expected a header row with a phone column") from None
    except csv.Error as exc:
        raise InvalidImport(
            f"unreadable CSV at line {reader.line_num}: {exc}", line=reader.line_num
        ) from None


def _columns(header: list[str]) -> list[str]:
    columns = [name.strip() for name in header]
    columns = [name.lower() if name.lower() in RESERVED else name for name in columns]
    if "phone" not in columns:
        raise InvalidImport("the header has no phone column", columns=columns)
    if "" in columns:
        raise InvalidImport(f"column {columns.index('') + 1} of the header has no name", columns=columns)
    duplicates = sorted({name for name in columns if columns.count(name) > 1})
    if duplicates:
        raise InvalidImport(f"the header repeats {', '.join(duplicates)}", columns=columns)
    return columns


def _ndjson_records(text: io.TextIOWrapper, *, empty_ok: bool) -> Iterator[NumberedRecord]:
    seen_any = empty_ok
    for line_no, line in enumerate(text, start=1):
        if not line.strip():
            continue
        seen_any = True
        try:
            value = decoded_json(f"line {line_no}", json.loads, line)
        except json.JSONDecodeError as exc:
            yield (
                line_no,
                UnreadableRow(line.strip()[:200], f"not valid JSON: {exc.msg} at column {exc.colno}"),
            )
            continue
        except Refused as refused:
            yield line_no, UnreadableRow(line.strip()[:200], refused.reason)
            continue
        yield line_no, _record(value)
    if not seen_any:
        raise InvalidImport("the file is empty: expected a JSON array or one JSON object per line")


def _json_array_records(text: io.TextIOWrapper) -> Iterator[NumberedRecord]:
    stream = _JsonStream(text)
    stream.consume("[")
    element = 0
    if stream.next_char() == "]":
        stream.consume("]")
        return stream.expect_end()
    while True:
        element += 1
        yield element, _record(stream.value(element))
        if stream.next_char() == "]":
            stream.consume("]")
            return stream.expect_end()
        if stream.next_char() != ",":
            raise InvalidImport(f"expected ',' or ']' after element {element}", element=element)
        stream.consume(",")


class _JsonStream:
    """Values decoded one at a time from a sliding buffer (`raw_decode`), so memory is a chunk and a row."""

    def __init__(self, text: io.TextIOWrapper) -> None:
        self._text = text
        self._decoder = json.JSONDecoder()
        self._buffer = ""
        self._position = 0
        self._eof = False

    def _fill(self) -> None:
        more = self._text.read(READ_SIZE)
        self._buffer, self._position = self._buffer[self._position :] + more, 0
        self._eof = not more

    def next_char(self) -> str:
        """The next non-whitespace character, without consuming it; "" at the end of the file."""
        while True:
            while self._position < len(self._buffer) and self._buffer[self._position] in " \t\r\n":
                self._position += 1
            if self._position < len(self._buffer) or self._eof:
                return self._buffer[self._position : self._position + 1]
            self._fill()

    def consume(self, char: str) -> None:
        if self.next_char() != char:
            raise InvalidImport(f"expected {char!r} in the JSON array")
        self._position += 1

    def expect_end(self) -> None:
        if self.next_char():
            raise InvalidImport("unexpected content after the JSON array")

    def value(self, element: int) -> Any:
        self.next_char()
        while True:
            try:
                value, end = decoded_json(
                    f"element {element}", self._decoder.raw_decode, self._buffer, self._position
                )
                # A value ending exactly at the buffer's end may be a number cut in two: read on first.
                if end < len(self._buffer) or self._eof:
                    self._position = end
                    return value
            except json.JSONDecodeError as exc:
                if self._eof:
                    raise InvalidImport(
                        f"invalid JSON in element {element}: {exc.msg}", element=element
                    ) from None
            except Refused as refused:
                # Past the parser's limits nothing after it can be found reliably: the file is refused.
                raise InvalidImport(refused.message, element=element) from None
            self._fill()


def _record(value: Any) -> dict[str, Any] | UnreadableRow:
    if isinstance(value, dict):
        return value
    return UnreadableRow(json.dumps(value)[:200], "expected a JSON object with a phone field")
