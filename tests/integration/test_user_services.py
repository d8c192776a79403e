"""The users, import and ledger-reading services on real PostgreSQL: a change to a user who does not
exist is `NotFound` with nothing written, a search finds a phone in any format, an import refuses an
unknown region before reading a row, and reads of missing rows are `NotFound`."""

from __future__ import annotations

import io
from collections.abc import Callable

import pytest
from sqlalchemy import Engine, text

from shared.db.unit_of_work import UnitOfWork
from shared.domain.enums import ConsentState
from shared.domain.errors import InvalidRegion, InvalidTimezone, NotFound
from shared.services import import_upload, messages, reports, users
from shared.services.users import ConsentChange, Operator
from tests.seeding import T0, add_campaign, add_users

OPERATOR = Operator("api", "token:0123456789ab")

MISSING = "+14155559999"


def _audit_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM audit_events")).scalar_one())


@pytest.mark.parametrize(
    "change",
    [
        lambda uow: users.patch_user(uow, MISSING, {"city": "Lima"}, T0),
        lambda uow: users.set_consent(
            uow, MISSING, ConsentChange(consent_state=ConsentState.OPT_IN, reason="asked"), T0, OPERATOR
        ),
        lambda uow: users.subscribe(uow, MISSING, "news"),
        lambda uow: users.unsubscribe(uow, MISSING, "news"),
        lambda uow: users.get_user(uow, MISSING),
    ],
    ids=["patch", "consent", "subscribe", "unsubscribe", "get"],
)
def test_a_user_who_does_not_exist_is_not_found_and_nothing_is_written(
    engine: Engine, change: Callable[[UnitOfWork], object]
) -> None:
    with pytest.raises(NotFound) as missing:
        change(UnitOfWork(engine))

    assert missing.value.details == {"resource": "user", "key": MISSING}
    assert _audit_count(engine) == 0


def test_a_consent_change_returns_the_user_as_it_now_is_and_is_audited(engine: Engine) -> None:
    (phone,) = add_users(engine, 1)

    user = users.set_consent(
        UnitOfWork(engine),
        phone,
        ConsentChange(consent_state=ConsentState.OPT_OUT, reason="asked"),
        T0,
        OPERATOR,
    )

    assert (user.phone_e164, user.consent_state) == (phone, "OPT_OUT")
    with engine.connect() as conn:
        audit = conn.execute(text("SELECT source, detail FROM audit_events")).one()
    assert (audit.source, audit.detail["reason"], audit.detail["operator"]) == ("api", "asked", OPERATOR.id)


def test_saving_tells_a_new_user_from_a_merge_and_refuses_a_bad_timezone(engine: Engine) -> None:
    _, created = users.save_user(UnitOfWork(engine), "+14155550100", {"city": "Lima"}, T0)
    user, created_again = users.save_user(UnitOfWork(engine), "+14155550100", {"vip": True}, T0)

    assert (created, created_again) == (True, False)
    assert user.attributes == {"city": "Lima", "vip": True}
    with pytest.raises(InvalidTimezone):
        users.save_user(UnitOfWork(engine), "+14155550100", {"timezone": "Mars/Base"}, T0)


@pytest.mark.parametrize(
    ("typed", "found"), [("(415) 555-0100", True), ("+1 415 555 0100", True), ("(415) 555-0101", False)]
)
def test_a_search_finds_an_existing_user_by_phone_in_any_format(
    engine: Engine, typed: str, found: bool
) -> None:
    users.save_user(UnitOfWork(engine), "+14155550100", {}, T0)

    phone = users.existing_phone(UnitOfWork(engine), typed, "US")

    assert phone == ("+14155550100" if found else None)
    assert users.existing_phone(UnitOfWork(engine), "Lima", "US") is None


def test_an_import_with_an_unknown_region_is_refused_before_reading_a_row(engine: Engine) -> None:
    with pytest.raises(InvalidRegion) as refused:
        import_upload.import_upload(
            UnitOfWork(engine), io.BytesIO(b"phone\n4155550100\n"), "text/csv", region="xx", at=T0
        )

    assert refused.value.details == {"field": "default_region"}
    assert users.existing_phone(UnitOfWork(engine), "+14155550100", "US") is None


def test_an_import_reads_national_numbers_in_its_region(engine: Engine) -> None:
    report = import_upload.import_upload(
        UnitOfWork(engine), io.BytesIO(b"phone\n030 901820\n"), "text/csv", region="de", at=T0
    )

    assert report.inserted == 1
    assert users.get_user(UnitOfWork(engine), "+4930901820").consent_state == "OPT_OUT"


def test_reading_a_missing_message_or_campaign_summary_is_not_found(engine: Engine) -> None:
    with pytest.raises(NotFound, match="message 5 does not exist"):
        messages.get_message(UnitOfWork(engine), 5)
    with pytest.raises(NotFound, match="campaign 5 does not exist"):
        reports.campaign_summary(UnitOfWork(engine), 5)


def test_a_campaign_summary_counts_every_status_even_with_no_messages(engine: Engine) -> None:
    campaign_id = add_campaign(engine, status="DRAFT")

    summary = reports.campaign_summary(UnitOfWork(engine), campaign_id)

    assert (summary.messages, summary.delivery_rate, summary.send_rate_per_second) == (0, None, None)
    assert set(summary.counts.values()) == {0} and len(summary.counts) > 1


def test_recent_inbound_masks_phones_in_the_sender_and_the_text(engine: Engine) -> None:
    with engine.begin() as conn:
        for n in range(3):
            conn.execute(
                text(
                    "INSERT INTO events_inbound (message_sid, from_phone, body, raw_payload)"
                    " VALUES (:sid, '+14155550100', 'call +14155550199', '{}'::jsonb)"
                ),
                {"sid": f"SM{n}"},
            )

    first = reports.recent_inbound(UnitOfWork(engine), limit=2, cursor=None)
    rest = reports.recent_inbound(UnitOfWork(engine), limit=2, cursor=first.next_cursor)

    assert [m.id for m in first.items + rest.items] == sorted(
        (m.id for m in first.items + rest.items), reverse=True
    )
    assert len(first.items + rest.items) == 3 and rest.next_cursor is None
    assert {(m.from_phone, m.body) for m in first.items} == {("+***0100", "call +***0199")}
