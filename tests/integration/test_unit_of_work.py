"""The unit of work's three ways to the database, on real PostgreSQL: a transaction that rolls back unless
committed, a prepared statement that joins the open transaction or is its own, and a pinned connection
that is discarded when its block fails."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text

from shared.db.unit_of_work import UnitOfWork

INSERT_USER = "INSERT INTO users (phone_e164) VALUES (:phone) RETURNING phone_e164"
BACKEND = "SELECT pg_backend_pid()"


def _users(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(text("SELECT phone_e164 FROM users ORDER BY 1")).scalars())


def test_a_transaction_rolls_back_unless_the_service_commits(engine: Engine) -> None:
    uow = UnitOfWork(engine)
    with uow:
        uow.session.execute(text("INSERT INTO users (phone_e164) VALUES ('+14155550100')"))
    with uow:
        uow.session.execute(text("INSERT INTO users (phone_e164) VALUES ('+14155550101')"))
        uow.commit()
    assert _users(engine) == ["+14155550101"]


def test_a_prepared_statement_outside_a_transaction_commits_on_its_own(engine: Engine) -> None:
    assert [tuple(row) for row in UnitOfWork(engine).prepared(INSERT_USER, {"phone": "+14155550100"})] == [
        ("+14155550100",)
    ]
    assert _users(engine) == ["+14155550100"]


def test_a_prepared_statement_inside_a_transaction_is_part_of_it(engine: Engine) -> None:
    uow = UnitOfWork(engine)
    with uow:
        uow.prepared(INSERT_USER, {"phone": "+14155550100"})
        uow.session.execute(text("INSERT INTO users (phone_e164) VALUES ('+14155550101')"))
    assert _users(engine) == []  # both rolled back together
    with uow:
        uow.prepared(INSERT_USER, {"phone": "+14155550100"})
        uow.session.execute(text("INSERT INTO users (phone_e164) VALUES ('+14155550101')"))
        uow.commit()
    assert _users(engine) == ["+14155550100", "+14155550101"]


def test_the_session_exists_only_inside_a_transaction(engine: Engine) -> None:
    uow = UnitOfWork(engine)
    with pytest.raises(RuntimeError, match="no open transaction"):
        uow.session.execute(text("SELECT 1"))
    with uow, pytest.raises(RuntimeError, match="already has an open transaction"):
        uow.__enter__()


def test_a_pinned_unit_of_work_runs_every_transaction_and_statement_on_one_connection(engine: Engine) -> None:
    uow = UnitOfWork(engine)
    backends = set()
    with uow.pinned():
        ((pid,),) = uow.prepared(BACKEND, {})
        backends.add(pid)
        # A session-level advisory lock outlives the transactions that follow, as the send's locks must.
        uow.prepared("SELECT pg_advisory_lock(7, 7)", {})
        for _ in range(3):
            with uow:
                backends.add(uow.session.execute(text(BACKEND)).scalar_one())
                uow.commit()
        ((held,),) = uow.prepared(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()", {}
        )
        uow.prepared("SELECT pg_advisory_unlock(7, 7)", {})
    assert len(backends) == 1
    assert held == 1
    with pytest.raises(RuntimeError, match="only once"), uow.pinned(), uow.pinned():
        pass


def test_a_pinned_connection_whose_block_fails_is_discarded_with_its_session_state(engine: Engine) -> None:
    uow = UnitOfWork(engine)

    class Crash(Exception):
        pass

    with pytest.raises(Crash), uow.pinned():
        ((pid,),) = uow.prepared(BACKEND, {})
        uow.prepared("SELECT pg_advisory_lock(7, 7)", {})
        raise Crash
    # The connection was closed, not pooled: its backend is gone, and the lock with it.
    with engine.connect() as conn:
        alive = conn.execute(text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid})
        assert alive.scalar_one() == 0
        free = conn.execute(text("SELECT pg_try_advisory_lock(7, 7)")).scalar_one()
        conn.execute(text("SELECT pg_advisory_unlock(7, 7)"))
    assert free is True
