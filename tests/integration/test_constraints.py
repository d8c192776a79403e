"""The database itself refuses bad rows, whatever code path writes them."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from tests.seeding import add_campaign, add_users


def _exec(engine: Engine, sql: str, **params: object) -> None:
    with engine.begin() as conn:
        conn.execute(text(sql), params)


def _seed_campaign(engine: Engine) -> int:
    """A campaign, and the user +14155550100 its message rows below go to."""
    add_users(engine, 1, start=55010)  # phone(55010) is +14155550100
    return add_campaign(engine)


@pytest.mark.parametrize(
    "phone", ["14155550100", "+0123456789", "+1 415 555 0100", "+1", "", "+1234567890123456"]
)
def test_users_reject_a_phone_that_is_not_e164(engine: Engine, phone: str) -> None:
    with pytest.raises(DBAPIError, match="ck_users_phone_e164"):
        _exec(engine, "INSERT INTO users (phone_e164) VALUES (:p)", p=phone)


def test_users_reject_an_unknown_consent_state(engine: Engine) -> None:
    with pytest.raises(DBAPIError, match="ck_users_consent_state"):
        _exec(engine, "INSERT INTO users (phone_e164, consent_state) VALUES ('+14155550100', 'MAYBE')")


def test_new_users_are_not_opted_in_by_default(engine: Engine) -> None:
    _exec(engine, "INSERT INTO users (phone_e164) VALUES ('+14155550100')")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT consent_state FROM users")).scalar() == "OPT_OUT"


def test_messages_reject_a_second_row_for_the_same_campaign_and_recipient(engine: Engine) -> None:
    campaign = _seed_campaign(engine)
    insert = "INSERT INTO messages (campaign_id, recipient_phone) VALUES (:c, '+14155550100')"
    _exec(engine, insert, c=campaign)
    with pytest.raises(DBAPIError, match="uq_messages_campaign_id_recipient_phone"):
        _exec(engine, insert, c=campaign)


def test_messages_reject_an_unknown_status(engine: Engine) -> None:
    campaign = _seed_campaign(engine)
    with pytest.raises(DBAPIError, match="ck_messages_status"):
        _exec(
            engine,
            "INSERT INTO messages (campaign_id, recipient_phone, status) VALUES (:c, '+14155550100', 'LOST')",
            c=campaign,
        )


def test_messages_reject_a_duplicate_provider_sid(engine: Engine) -> None:
    campaign = _seed_campaign(engine)
    _exec(engine, "INSERT INTO users (phone_e164) VALUES ('+14155550101')")
    insert = "INSERT INTO messages (campaign_id, recipient_phone, provider_sid) VALUES (:c, :p, 'SM1')"
    _exec(engine, insert, c=campaign, p="+14155550100")
    with pytest.raises(DBAPIError, match="uq_messages_provider_sid"):
        _exec(engine, insert, c=campaign, p="+14155550101")


def test_messages_reject_a_recipient_who_is_not_a_user(engine: Engine) -> None:
    campaign = _seed_campaign(engine)
    with pytest.raises(DBAPIError, match="fk_messages_recipient_phone_users"):
        _exec(
            engine,
            "INSERT INTO messages (campaign_id, recipient_phone) VALUES (:c, '+14155550199')",
            c=campaign,
        )


def test_campaigns_reject_an_unknown_status_and_a_rate_above_the_queue_ceiling(engine: Engine) -> None:
    campaign = _seed_campaign(engine)
    with pytest.raises(DBAPIError, match="ck_campaigns_status"):
        _exec(engine, "UPDATE campaigns SET status = 'ARCHIVED' WHERE id = :c", c=campaign)
    with pytest.raises(DBAPIError, match="ck_campaigns_rate_limit"):
        _exec(engine, "UPDATE campaigns SET rate_limit_per_second = 501 WHERE id = :c", c=campaign)


def test_campaigns_reject_half_a_quiet_hours_window(engine: Engine) -> None:
    campaign = _seed_campaign(engine)
    with pytest.raises(DBAPIError, match="ck_campaigns_quiet_hours_both_or_neither"):
        _exec(engine, "UPDATE campaigns SET quiet_hours_start = '22:00' WHERE id = :c", c=campaign)


def test_delivery_receipts_reject_the_same_status_twice_for_one_sid(engine: Engine) -> None:
    insert = "INSERT INTO delivery_receipts (message_sid, message_status, raw_payload) VALUES ('SM1', 'sent', '{}')"
    _exec(engine, insert)
    with pytest.raises(DBAPIError, match="uq_delivery_receipts_message_sid_message_status"):
        _exec(engine, insert)


def test_inbound_events_reject_a_repeated_message_sid(engine: Engine) -> None:
    insert = "INSERT INTO events_inbound (message_sid, raw_payload) VALUES ('SM1', '{}')"
    _exec(engine, insert)
    with pytest.raises(DBAPIError, match="uq_events_inbound_message_sid"):
        _exec(engine, insert)


def test_templates_reject_a_malformed_content_sid(engine: Engine) -> None:
    with pytest.raises(DBAPIError, match="ck_templates_content_sid"):
        _exec(engine, "INSERT INTO templates (name, content, content_sid) VALUES ('t', 'x', 'HXnope')")


def test_audit_trail_refuses_update_and_delete(engine: Engine) -> None:
    _exec(engine, "INSERT INTO audit_events (kind, user_phone) VALUES ('consent.changed', '+14155550100')")
    for statement in ("UPDATE audit_events SET kind = 'x'", "DELETE FROM audit_events"):
        with pytest.raises(DBAPIError, match="append-only"):
            _exec(engine, statement)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT kind FROM audit_events")).scalars().all() == ["consent.changed"]
