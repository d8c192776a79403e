"""Bulk user import: rows stream from the parsed file through validation into PostgreSQL `COPY`, then one
set-based merge. The file is never held in memory; only rejected rows are (up to a cap).

Rules (docs/architecture.md, "Import never raises consent"):
- phones are normalized to E.164 (a row's `default_region`, else the request's, for national numbers);
  an invalid number rejects its row with the reason, and every good row still imports;
- rows repeating a phone (in any format) merge: attributes per key in file order, so the last row's value
  wins; the last consent_state given wins; topics add up;
- a new user gets the file's consent_state (the operator asserts they collected it), else OPT_OUT;
- an existing user's consent can only be lowered by a file (OPT_IN -> OPT_OUT -> STOP), never raised:
  a STOP or OPT_OUT user stays so whatever the file says; each change is audited with source "import";
- empty cells and JSON nulls are "no value": they never erase an attribute;
- topics subscribe the user; an import never unsubscribes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from operator import itemgetter
from typing import Any, NamedTuple

from shared.boundary import displayable, storage_problem, text_problem
from shared.db.queries import users as queries
from shared.db.unit_of_work import UnitOfWork
from shared.domain.enums import ConsentState
from shared.domain.errors import DomainError
from shared.domain.phones import fast_e164, is_supported_region, try_normalize_phone
from shared.services.users import TIMEZONE_ATTRIBUTE, check_attributes

# Detailed rejects kept for the report; past this only the count grows, so a garbage file of a million
# rows cannot exhaust memory. 10k rows is more than anyone reads; the first ones show the pattern.
MAX_REJECTS_LISTED = 10_000
# pg8000 sends one CopyData message per item: batching rows into ~64 KiB keeps the per-message cost low.
COPY_CHUNK_BYTES = 64 * 1024
RESERVED_COLUMNS = frozenset({"phone", "consent_state", "default_region", "topics"})
MAX_TOPIC_LENGTH = 100
# What a cell written into JSON as it is must not contain: what JSON escapes (a quote, a backslash,
# control characters), which also covers COPY's own escapes and NUL, which PostgreSQL cannot store.
_UNSAFE_IN_CELLS = re.compile(r'["\\\x00-\x1f]')
# A consent cell exactly as the full rules would store it; anything else (lower case, spaces) goes there.
_CONSENT_CELLS = {"": "\\N", **{state.value: state.value for state in ConsentState}}

Record = Mapping[str, Any]


class InvalidImport(DomainError):
    """The file as a whole cannot be read (no phone column, not UTF-8, broken JSON): nothing is imported."""

    code = "invalid_import"


@dataclass(frozen=True)
class RejectedRow:
    row: int
    value: str | None
    reason: str


@dataclass
class ImportReport:
    rows_read: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    duplicates_merged: int = 0
    consent_changes: int = 0
    rejected: int = 0
    rejected_rows: list[RejectedRow] = field(default_factory=list)

    @property
    def rejected_rows_truncated(self) -> bool:
        return self.rejected > len(self.rejected_rows)

    def reject(self, row: int, value: object, reason: str) -> None:
        self.rejected += 1
        if len(self.rejected_rows) < MAX_REJECTS_LISTED:
            # Echoed in the response and the dashboard's CSV: a lone surrogate from the file (a JSON key
            # or value) is written as an escape, so the report always serializes.
            shown = None if value is None else displayable(str(value))
            self.rejected_rows.append(RejectedRow(row, shown, displayable(reason)))


class UnreadableRow(NamedTuple):
    """A row the parser could read no record from (a bad NDJSON line, too many CSV fields)."""

    value: str | None
    reason: str


NumberedRecord = tuple[int, Record | UnreadableRow]


class _RowRejected(Exception):
    def __init__(self, value: object, reason: str) -> None:
        self.value = value
        self.reason = reason


def import_users(
    uow: UnitOfWork, records: Iterable[NumberedRecord], *, default_region: str, at: datetime
) -> ImportReport:
    """Import numbered records (from `shared.services.import_formats`) in one transaction; the report says
    what happened to every row. `InvalidImport` from the parser aborts it with nothing written."""
    report = ImportReport()
    staging = _Staging(default_region, report)
    session = uow.session
    queries.create_import_staging(session)
    queries.copy_into_staging(session, staging.chunks(records))
    if staging.failure is not None:
        raise staging.failure
    totals = queries.merge_staged_users(session, at)
    queries.subscribe_staged_users(session)
    good_rows = report.rows_read - report.rejected
    report.inserted, report.updated = int(totals.inserted), int(totals.updated)
    report.unchanged = int(totals.distinct_phones) - report.inserted - report.updated
    report.duplicates_merged = good_rows - int(totals.distinct_phones)
    report.consent_changes = int(totals.consent_changes)
    # Last: once the rows are committed, the answer that says so must not be able to fail.
    uow.commit()
    return report


class _Staging:
    """Rows to COPY text format. A row shaped like the first one (a CSV row: the same keys in the same
    order, all text) whose cells need no escaping, and that passes the checks in `_plain_line`, has its
    JSON written straight from a template; any other row goes through `_copy_line`, the full rules, which
    also say why a row is rejected. Both store the same thing (tests/integration/test_user_import.py)."""

    def __init__(self, default_region: str, report: ImportReport) -> None:
        self.report = report
        self.default_region = default_region
        self.region_supported = is_supported_region(default_region)
        self.failure: Exception | None = None
        self.valid_timezones: set[str] = set()
        # Set from the first record by `_take_shape`; no field names means no row takes the plain way.
        self.field_names: tuple[str, ...] | None = None
        self._attribute_keys: tuple[str, ...] = ()
        self._attribute_cells: Callable[[Record], tuple[str, ...]] = lambda _: ()
        self._attributes_template = "{}"

    def chunks(self, records: Iterable[NumberedRecord]) -> Iterator[bytes]:
        # A parse error must not escape mid-COPY: pg8000 would leave the connection inside the COPY
        # protocol. It is kept, the COPY ends cleanly, and the caller raises it (rolling everything back).
        buffer: list[str] = []
        size = 0
        rows_read = 0
        try:
            for row_no, record in records:
                rows_read += 1
                if self.field_names is None and type(record) is dict:
                    self._take_shape(record)
                line = self._plain_line(row_no, record) or self._checked_line(row_no, record)
                if line is None:
                    continue
                buffer.append(line)
                size += len(line)
                if size >= COPY_CHUNK_BYTES:
                    yield "".join(buffer).encode()
                    buffer, size = [], 0
        except Exception as exc:
            self.failure = exc
            return
        finally:
            self.report.rows_read += rows_read
        if buffer:
            yield "".join(buffer).encode()

    def _plain_line(self, row_no: int, record: Record | UnreadableRow) -> str | None:
        """The row's COPY line, or None when it needs the full rules: every check here that fails is one
        that could reject the row, or change or escape a value."""
        if type(record) is not dict or not self.field_names or tuple(record) != self.field_names:
            return None
        try:
            text = "".join(record.values())
        except TypeError:  # a JSON row with a number, a list...
            return None
        if _UNSAFE_IN_CELLS.search(text) or text_problem(text) is not None:
            return None
        if not self.region_supported or record.get("default_region"):
            return None
        phone = fast_e164(record["phone"])
        consent = _CONSENT_CELLS.get(record.get("consent_state", ""))
        if phone is None or consent is None or record.get("topics"):
            return None
        timezone = record.get(TIMEZONE_ATTRIBUTE)
        if timezone and not self._valid_timezone(timezone):
            return None
        cells = self._attribute_cells(record)
        if "" in cells:  # empty cells are "no value": left out
            pairs = (f'{key}:"{cell}"' for key, cell in zip(self._attribute_keys, cells, strict=True) if cell)
            attributes = "{" + ",".join(pairs) + "}"
        else:
            attributes = self._attributes_template % cells
        return f"{row_no}\t{phone}\t{attributes}\t{consent}\t\\N\n"

    def _take_shape(self, record: Record) -> None:
        self.field_names = _field_names(record)
        names = tuple(name for name in self.field_names if name not in RESERVED_COLUMNS)
        # Keys as JSON, escaped for COPY once here rather than on every row.
        self._attribute_keys = tuple(_copy_text(json.dumps(name, ensure_ascii=False)) for name in names)
        self._attributes_template = (
            "{" + ",".join(f'{key.replace("%", "%%")}:"%s"' for key in self._attribute_keys) + "}"
        )
        if len(names) > 1:
            self._attribute_cells = itemgetter(*names)
        elif names:
            self._attribute_cells = lambda record: (record[names[0]],)

    def _checked_line(self, row_no: int, record: Record | UnreadableRow) -> str | None:
        if isinstance(record, UnreadableRow):
            self.report.reject(row_no, record.value, record.reason)
            return None
        try:
            return _copy_line(row_no, record, self.default_region)
        except _RowRejected as rejected:
            self.report.reject(row_no, rejected.value, rejected.reason)
            return None

    def _valid_timezone(self, name: str) -> bool:
        # The rows of a file name a few zones over and over: each is checked once.
        if name not in self.valid_timezones:
            try:
                check_attributes({TIMEZONE_ATTRIBUTE: name})
            except DomainError:
                return False
            self.valid_timezones.add(name)
        return True


def _field_names(record: Record) -> tuple[str, ...]:
    """The first row's keys, if rows shaped like it may take the plain way (see `_Staging`)."""
    names = tuple(record)
    usable = "phone" in names and all(isinstance(name, str) and text_problem(name) is None for name in names)
    return names if usable else ()


def _copy_line(row_no: int, record: Record, default_region: str) -> str:
    """One row in COPY text format (tab-separated, \\N for NULL), or `_RowRejected` saying why not."""
    problem = storage_problem(record)
    if problem is not None:
        where, why = problem
        raise _RowRejected(where, f"{where or 'a value'} {why}, which cannot be stored")
    phone = _phone(record, default_region)
    consent = _consent(record.get("consent_state"))
    topics = _topics(record.get("topics"))
    attributes = {k: v for k, v in record.items() if k not in RESERVED_COLUMNS and v is not None and v != ""}
    try:
        check_attributes(attributes)
    except DomainError as exc:
        raise _RowRejected(attributes.get("timezone"), exc.message) from None
    attributes_json = json.dumps(attributes, ensure_ascii=False, separators=(",", ":"))
    topics_json = None if topics is None else json.dumps(topics, ensure_ascii=False)
    fields = (str(row_no), phone, _copy_text(attributes_json), _copy_text(consent), _copy_text(topics_json))
    return "\t".join(fields) + "\n"


def _copy_text(value: str | None) -> str:
    # NULL is \N; JSON escapes every control character, so a backslash is all that needs escaping.
    return "\\N" if value is None else value.replace("\\", "\\\\")


def _phone(record: Record, default_region: str) -> str:
    raw = record.get("phone")
    if isinstance(raw, int) and not isinstance(raw, bool):
        raw = str(raw)
    if not isinstance(raw, str) or not raw.strip():
        raise _RowRejected(raw, "missing phone")
    region = record.get("default_region") or default_region
    if not isinstance(region, str):
        raise _RowRejected(region, "default_region must be an ISO 3166 code such as US")
    e164, reason = try_normalize_phone(raw, region.strip())
    if e164 is None:
        raise _RowRejected(raw, reason or "invalid phone number")
    return e164


def _consent(raw: object) -> str | None:
    if raw is None or raw == "":
        return None
    if isinstance(raw, str) and raw.strip().upper() in ConsentState.__members__:
        return raw.strip().upper()
    raise _RowRejected(raw, "consent_state must be one of OPT_IN, OPT_OUT, STOP")


def _topics(raw: object) -> list[str] | None:
    """A JSON list of names, or text separated by ';' or ',' (a CSV cell)."""
    if raw is None or raw == "":
        return None
    if isinstance(raw, str):
        names = [name.strip() for name in raw.replace(";", ",").split(",")]
    elif isinstance(raw, list) and all(isinstance(name, str) for name in raw):
        names = [name.strip() for name in raw]
    else:
        raise _RowRejected(raw, "topics must be a list of names, or names separated by ';'")
    names = [name for name in names if name]
    if any(len(name) > MAX_TOPIC_LENGTH for name in names):
        raise _RowRejected(raw, f"a topic name is longer than {MAX_TOPIC_LENGTH} characters")
    return names or None
