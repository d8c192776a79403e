"""The bulk import on real PostgreSQL: phone formats, duplicates, consent that never rises, CSV quoting,
a BOM, an empty file, and throughput on 100k rows."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, text

from shared.db.unit_of_work import UnitOfWork
from shared.domain.enums import ConsentState
from shared.services.consent import change_consent
from shared.services.import_formats import records
from shared.services.user_import import ImportReport, InvalidImport, import_users

AT = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
EARLIER = datetime(2026, 1, 1, tzinfo=UTC)

MIXED_CSV = (
    "\ufeffphone,name,city,consent_state,topics\n"
    '+1 415 555 2671,Ana,"San Francisco, CA",OPT_IN,news\n'
    '(415) 555-2672,Bo,"first line\nsecond line",,\n'
    "004915123456789,Carl,Berlin,,\n"
    '"  +14155552673  ",Dee,,,\n'
    "415.555.2671,Ana Maria,,,deals\n"
    "12345,Bad,,,\n"
    "not-a-number,Bad too,,,\n"
    "+14155552674,Stopper,,OPT_IN,\n"
    "+14155552675,Optin,,OPT_OUT,\n"
)


def run_import(engine: Engine, body: bytes, media_type: str = "text/csv", region: str = "US") -> ImportReport:
    with UnitOfWork(engine) as uow:
        return import_users(uow, records(io.BytesIO(body), media_type), default_region=region, at=AT)


def user(engine: Engine, phone: str) -> dict[str, object] | None:
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT phone_e164, attributes, consent_state, consent_updated_at,"
                " ARRAY(SELECT topic FROM subscriptions WHERE user_phone = phone_e164 ORDER BY topic) AS topics"
                " FROM users WHERE phone_e164 = :p"
            ),
            {"p": phone},
        ).one_or_none()
    return None if row is None else dict(row._mapping)


def import_audits(engine: Engine) -> dict[str, dict[str, object]]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT user_phone, detail FROM audit_events WHERE source = 'import' AND kind = 'consent.changed'"
            )
        ).all()
    return {phone: detail for phone, detail in rows}


@pytest.fixture
def existing_users(engine: Engine) -> None:
    """+14155552674 said STOP; +14155552675 is opted in. Both existed before the import."""
    with UnitOfWork(engine) as uow:
        change_consent(uow.session, "+14155552674", ConsentState.STOP, source="inbound_keyword", at=EARLIER)
        change_consent(uow.session, "+14155552675", ConsentState.OPT_IN, source="api", at=EARLIER)
        uow.commit()


def test_mixed_file_imports_every_good_row_and_reports_every_bad_one(
    engine: Engine, existing_users: None
) -> None:
    report = run_import(engine, MIXED_CSV.encode())

    assert report.rows_read == 9
    assert [(r.row, r.value) for r in report.rejected_rows] == [(6, "12345"), (7, "not-a-number")]
    assert all(r.reason for r in report.rejected_rows)
    assert report.rejected == 2
    # Ana appears twice (+1 415 555 2671 and 415.555.2671): one user, one merged duplicate.
    assert report.duplicates_merged == 1
    assert (report.inserted, report.updated, report.unchanged) == (4, 2, 0)


def test_formats_normalize_to_one_e164_user_each(engine: Engine, existing_users: None) -> None:
    run_import(engine, MIXED_CSV.encode())

    assert user(engine, "+4915123456789") is not None  # 00 international prefix
    assert user(engine, "+14155552673") is not None  # surrounding whitespace
    assert user(engine, "+14155552672") is not None  # national format, default region US


def test_duplicate_rows_merge_with_the_last_value_winning_per_attribute(engine: Engine) -> None:
    run_import(engine, MIXED_CSV.encode())

    ana = user(engine, "+14155552671")
    assert ana is not None
    assert ana["attributes"] == {"name": "Ana Maria", "city": "San Francisco, CA"}
    assert ana["consent_state"] == "OPT_IN"  # given once, by the first row; the later row gave none
    assert ana["topics"] == ["deals", "news"]


def test_quoted_fields_keep_their_commas_and_newlines(engine: Engine) -> None:
    run_import(engine, MIXED_CSV.encode())

    bo = user(engine, "+14155552672")
    assert bo is not None and bo["attributes"] == {"name": "Bo", "city": "first line\nsecond line"}


def test_stop_user_reimported_with_opt_in_stays_stop(engine: Engine, existing_users: None) -> None:
    run_import(engine, MIXED_CSV.encode())

    stopper = user(engine, "+14155552674")
    assert stopper is not None
    assert stopper["consent_state"] == "STOP"
    assert stopper["consent_updated_at"] == EARLIER
    assert stopper["attributes"] == {"name": "Stopper"}
    assert "+14155552674" not in import_audits(engine)


def test_import_may_lower_consent_and_audits_each_change(engine: Engine, existing_users: None) -> None:
    report = run_import(engine, MIXED_CSV.encode())

    lowered = user(engine, "+14155552675")
    assert lowered is not None and lowered["consent_state"] == "OPT_OUT"
    audits = import_audits(engine)
    assert audits["+14155552675"] == {"from": "OPT_IN", "to": "OPT_OUT"}
    # A new user given OPT_IN by the file is audited as set by the import.
    assert audits["+14155552671"] == {"from": None, "to": "OPT_IN"}
    assert report.consent_changes == len(audits) == 2


def test_new_user_without_consent_in_the_file_is_not_opted_in(engine: Engine) -> None:
    run_import(engine, MIXED_CSV.encode())

    carl = user(engine, "+4915123456789")
    assert carl is not None and carl["consent_state"] == "OPT_OUT" and carl["consent_updated_at"] is None


def test_reimporting_the_same_file_changes_nothing(engine: Engine, existing_users: None) -> None:
    run_import(engine, MIXED_CSV.encode())
    again = run_import(engine, MIXED_CSV.encode())

    assert (again.inserted, again.updated, again.unchanged, again.consent_changes) == (0, 0, 6, 0)


def test_empty_file_is_refused_and_writes_nothing(engine: Engine) -> None:
    with pytest.raises(InvalidImport, match="empty"):
        run_import(engine, b"")
    with pytest.raises(InvalidImport, match="empty"):
        run_import(engine, "\ufeff".encode())


def test_header_without_phone_column_is_refused(engine: Engine) -> None:
    with pytest.raises(InvalidImport, match="no phone column") as raised:
        run_import(engine, b"name,city\nAna,Lima\n")
    assert raised.value.details["columns"] == ["name", "city"]


def test_header_only_file_imports_nothing(engine: Engine) -> None:
    report = run_import(engine, b"phone,name\n")
    assert (report.rows_read, report.inserted) == (0, 0)


def test_row_with_more_fields_than_the_header_is_rejected_alone(engine: Engine) -> None:
    report = run_import(engine, b"phone,name\n+14155552671,Ana,extra\n+14155552672,Bo\n")

    assert [(r.row, r.reason) for r in report.rejected_rows] == [(1, "has 3 fields but the header has 2")]
    assert report.inserted == 1


def test_default_region_reads_national_numbers_and_a_row_column_overrides_it(engine: Engine) -> None:
    body = b"phone,default_region\n030 901820,\n020 7946 0958,GB\n"
    report = run_import(engine, body, region="DE")

    assert report.rejected == 0
    assert user(engine, "+4930901820") is not None
    assert user(engine, "+442079460958") is not None


def test_json_array_and_ndjson_keep_typed_attributes(engine: Engine) -> None:
    run_import(
        engine, b'[{"phone": "+14155552671", "age": 41, "vip": true, "tags": ["a"]}]', "application/json"
    )
    run_import(
        engine,
        b'{"phone": "+14155552672", "score": 1.5}\n\n{"phone": "+14155552673"}\n',
        "application/x-ndjson",
    )

    ana = user(engine, "+14155552671")
    assert ana is not None and ana["attributes"] == {"age": 41, "vip": True, "tags": ["a"]}
    bo = user(engine, "+14155552672")
    assert bo is not None and bo["attributes"] == {"score": 1.5}
    assert user(engine, "+14155552673") is not None


def test_bad_ndjson_line_rejects_only_that_row(engine: Engine) -> None:
    report = run_import(engine, b'{"phone": "+14155552671"}\n{"phone": \n[1]\n', "application/x-ndjson")

    assert [r.row for r in report.rejected_rows] == [2, 3]
    assert report.inserted == 1


def test_broken_json_array_is_refused_with_the_element_and_writes_nothing(engine: Engine) -> None:
    with pytest.raises(InvalidImport, match="element 2"):
        run_import(engine, b'[{"phone": "+14155552671"}, {"phone": ', "application/json")
    assert user(engine, "+14155552671") is None


def test_values_postgres_cannot_store_reject_their_row(engine: Engine) -> None:
    body = (
        b'[{"phone": "+14155552671", "x": "a\\u0000b"}, {"phone": "+14155552672", "y": "\\ud800"},'
        b' {"phone": "+14155552673", "z": 1e999}, {"phone": "+14155552674", "tz": "x", "timezone": "Mars/Base"}]'
    )
    report = run_import(engine, body, "application/json")

    assert [r.row for r in report.rejected_rows] == [1, 2, 3, 4]
    assert "NUL" in report.rejected_rows[0].reason
    assert "timezone" in report.rejected_rows[3].reason


def test_not_utf8_is_refused(engine: Engine) -> None:
    with pytest.raises(InvalidImport, match="UTF-8"):
        run_import(engine, b"phone,name\n+14155552671,Jos\xe9\n")


def _numbers(count: int) -> Iterator[str]:
    # Valid, distinct US numbers: area codes 201..989 with exchange 555 are all assigned patterns.
    for i in range(count):
        yield f"+1{212 + i // 10_000_000 * 100}{2_000_000 + i % 8_000_000:07d}"


# Rows that take the plain way (a template fills in the cells) and rows that need the full rules, mixed:
# escaping, empty cells, non-ASCII, a repeated phone, a header needing JSON and COPY escapes.
TRICKY_CSV = (
    'phone,consent_state,name,city,timezone,"di%s""co\\unt"\n'
    "+14155552671,OPT_IN,Ana,Lima,UTC,10%\n"
    "+14155552672,,,Lima,,\n"
    "+14155552673,OPT_OUT,José,São Paulo,America/Sao_Paulo,%s\n"
    '+14155552674,,"Ana ""the"" Ace",x,,\n'
    "+14155552675,,back\\slash,,,\n"
    '+14155552676,,"tab\there","line\nbreak",,\n'
    "+14155552677, opt_in ,Lower,,,\n"
    "+14155552678,,Bad zone,,Mars/Base,\n"
    "(415) 555-2679,STOP,National,,,\n"
    "+1 415 555 2671,OPT_OUT,Ana again,,Europe/Madrid,\n"
    "whatsapp:+14155552680,,Wa,,,\n"
    "+1415555268,,Short,,,\n"
)


def snapshot(engine: Engine) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    with engine.connect() as conn:
        users = conn.execute(
            text("SELECT phone_e164, attributes, consent_state, consent_updated_at FROM users ORDER BY 1")
        ).all()
        audits = conn.execute(
            text("SELECT user_phone, detail FROM audit_events WHERE source = 'import' ORDER BY 1")
        ).all()
    return [tuple(row) for row in users], [tuple(row) for row in audits]


def test_rows_written_from_the_template_store_what_the_full_rules_store(engine: Engine) -> None:
    csv_report = run_import(engine, TRICKY_CSV.encode())
    through_csv = snapshot(engine)
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE users, audit_events CASCADE"))
    # The same records as NDJSON, keys reversed after the first line: no later row has the first row's
    # shape, so every one of them goes through the full rules.
    rows = list(csv.DictReader(io.StringIO(TRICKY_CSV)))
    lines = [json.dumps(rows[0])] + [json.dumps(dict(reversed(row.items()))) for row in rows[1:]]
    ndjson_report = run_import(engine, "\n".join(lines).encode(), "application/x-ndjson")

    assert snapshot(engine) == through_csv
    assert csv_report == ndjson_report
    assert [r.row for r in csv_report.rejected_rows] == [8, 12]
    users = dict((phone, attributes) for phone, attributes, *_ in through_csv[0])
    assert users["+14155552671"] == {
        "name": "Ana again",
        "city": "Lima",
        "timezone": "Europe/Madrid",
        'di%s"co\\unt': "10%",
    }
    assert users["+14155552674"] == {"name": 'Ana "the" Ace', "city": "x"}
    assert users["+14155552676"] == {"name": "tab\there", "city": "line\nbreak"}
    assert users["+14155552672"] == {"city": "Lima"}


def test_a_file_of_plain_rows_imports_exactly_as_before(engine: Engine) -> None:
    """The bench's shape (all cells filled, E.164 phones): every row takes the plain way."""
    body = "phone,consent_state,first_name,age,timezone\n" + "".join(
        f"{phone},OPT_IN,Name{i},{20 + i % 50},UTC\n" for i, phone in enumerate(_numbers(1_000))
    )
    report = run_import(engine, body.encode())

    assert (report.rows_read, report.inserted, report.rejected, report.consent_changes) == (
        1_000,
        1_000,
        0,
        1_000,
    )
    first = user(engine, next(_numbers(1)))
    assert first is not None
    assert first["attributes"] == {"first_name": "Name0", "age": "20", "timezone": "UTC"}
    assert first["consent_state"] == "OPT_IN" and first["consent_updated_at"] == AT
