"""change_consent on real PostgreSQL: every change audited with its source, and concurrent changes
serialized on the user's row so each audit names the state it really replaced."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from shared.db.queries import send_guard
from shared.domain.enums import ConsentState
from shared.services.consent import change_consent

PHONE = "+14155550100"
AT = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    with Session(engine) as s:
        yield s


def seed_user(engine: Engine, consent: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO users (phone_e164, consent_state) VALUES (:p, :c)"), {"p": PHONE, "c": consent}
        )


def audits(engine: Engine) -> list[tuple[str, str, dict[str, object], datetime]]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT user_phone, source, detail, occurred_at FROM audit_events ORDER BY id")
        )
        return [(r.user_phone, r.source, r.detail, r.occurred_at) for r in rows]


def test_a_change_sets_the_state_and_its_time_and_is_audited_with_its_source(
    engine: Engine, session: Session
) -> None:
    seed_user(engine, "OPT_IN")
    changed = change_consent(
        session, PHONE, ConsentState.STOP, source="inbound_keyword", at=AT, detail={"k": 1}
    )
    session.commit()
    assert changed is True
    with engine.connect() as conn:
        user = conn.execute(text("SELECT consent_state, consent_updated_at FROM users")).one()
    assert (user.consent_state, user.consent_updated_at) == ("STOP", AT)
    assert audits(engine) == [(PHONE, "inbound_keyword", {"from": "OPT_IN", "to": "STOP", "k": 1}, AT)]


def test_an_unknown_user_is_created_with_the_new_state(engine: Engine, session: Session) -> None:
    assert change_consent(session, PHONE, ConsentState.OPT_IN, source="api", at=AT)
    session.commit()
    with engine.connect() as conn:
        assert conn.execute(
            text("SELECT consent_state FROM users WHERE phone_e164 = :p"), {"p": PHONE}
        ).scalar() == ("OPT_IN")
    [(_, _, detail, _)] = audits(engine)
    assert detail == {"from": "OPT_OUT", "to": "OPT_IN"}


def test_setting_the_state_a_user_already_has_changes_and_audits_nothing(
    engine: Engine, session: Session
) -> None:
    seed_user(engine, "STOP")
    assert change_consent(session, PHONE, ConsentState.STOP, source="send_error:21610", at=AT) is False
    session.commit()
    with engine.connect() as conn:
        assert conn.execute(text("SELECT consent_updated_at FROM users")).scalar() is None
    assert audits(engine) == []


def test_nothing_is_kept_when_the_callers_transaction_rolls_back(engine: Engine, session: Session) -> None:
    seed_user(engine, "OPT_IN")
    change_consent(session, PHONE, ConsentState.STOP, source="inbound_keyword", at=AT)
    session.rollback()
    with engine.connect() as conn:
        assert conn.execute(text("SELECT consent_state FROM users")).scalar() == "OPT_IN"
    assert audits(engine) == []


def _wait_until_blocked_on_a_lock(engine: Engine, application_name: str) -> None:
    deadline = time.monotonic() + 10
    query = text("SELECT wait_event_type FROM pg_stat_activity WHERE application_name = :n")
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            if conn.execute(query, {"n": application_name}).scalar() == "Lock":
                return
        time.sleep(0.01)
    raise AssertionError(f"{application_name} never waited on a lock")


def test_a_start_racing_a_stop_in_progress_waits_for_it_and_audits_the_state_it_replaced(
    engine: Engine,
) -> None:
    """The STOP has read the row (OPT_IN) and not yet written it. Without the row lock the START would
    also read OPT_IN, find nothing to change, and the user would end in STOP against their last word."""
    seed_user(engine, "OPT_IN")
    later = datetime(2025, 3, 1, 12, 1, tzinfo=UTC)
    results: dict[str, object] = {}

    def start_in_another_transaction() -> None:
        with Session(engine) as other:
            other.execute(text("SET application_name = 'racing_start'"))
            try:
                results["changed"] = change_consent(
                    other, PHONE, ConsentState.OPT_IN, source="inbound_keyword", at=later
                )
                other.commit()
            except Exception as exc:  # surfaced by the assertions below
                results["error"] = exc

    with Session(engine) as stop:
        # Where change_consent stands between its locking read and its write (it takes the user's send
        # lock first, as every consent change does).
        send_guard.wait_out_sends_to_user(stop, PHONE)
        stop.execute(text("SELECT consent_state FROM users WHERE phone_e164 = :p FOR UPDATE"), {"p": PHONE})
        racer = threading.Thread(target=start_in_another_transaction)
        racer.start()
        try:
            _wait_until_blocked_on_a_lock(engine, "racing_start")
            assert change_consent(stop, PHONE, ConsentState.STOP, source="inbound_keyword", at=AT)
            stop.commit()
        finally:
            stop.rollback()
            racer.join(timeout=10)
    assert "error" not in results, results
    assert results["changed"] is True
    with engine.connect() as conn:
        assert conn.execute(text("SELECT consent_state FROM users")).scalar() == "OPT_IN"
    assert [(d["from"], d["to"]) for _, _, d, _ in audits(engine)] == [("OPT_IN", "STOP"), ("STOP", "OPT_IN")]
