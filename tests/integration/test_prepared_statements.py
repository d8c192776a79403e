"""Prepared statements on pooled pg8000 connections, on a real PostgreSQL database."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import DBAPIError

from shared.db.errors import is_transient
from shared.db.queries.prepared import run_prepared

INSERT_USER = "INSERT INTO users (phone_e164) VALUES (:phone) RETURNING phone_e164"


def terminate(database_url: str, backend_pid: int) -> None:
    """End one server connection, as a restart or an idle timeout on the server would."""
    admin = create_engine(database_url)
    try:
        with admin.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": backend_pid})
    finally:
        admin.dispose()


def _users(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(text("SELECT phone_e164 FROM users ORDER BY 1")).scalars())


def test_a_statement_is_prepared_once_per_connection_and_reused(engine: Engine) -> None:
    with engine.connect() as conn:
        for phone in ("+14155550100", "+14155550101", "+14155550102"):
            run_prepared(conn, INSERT_USER, {"phone": phone}, autocommit=True)
        prepared = conn.execute(
            text("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE 'INSERT INTO users%'")
        ).scalar_one()
    assert prepared == 1
    assert len(_users(engine)) == 3


def test_an_autocommit_statement_commits_although_a_pre_ping_left_a_transaction_open(
    database_url: str, engine: Engine
) -> None:
    pinging = create_engine(database_url, pool_size=1, pool_pre_ping=True)
    try:
        with pinging.connect():
            pass  # the next checkout is no longer fresh, so it is pinged
        with pinging.connect() as conn:
            run_prepared(conn, INSERT_USER, {"phone": "+14155550100"}, autocommit=True)
        assert _users(engine) == ["+14155550100"]
    finally:
        pinging.dispose()


def test_inside_a_transaction_the_statement_commits_or_rolls_back_with_it(engine: Engine) -> None:
    with engine.connect() as conn:
        with conn.begin():
            run_prepared(conn, INSERT_USER, {"phone": "+14155550100"}, autocommit=False)
        with pytest.raises(ZeroDivisionError), conn.begin():
            run_prepared(conn, INSERT_USER, {"phone": "+14155550101"}, autocommit=False)
            raise ZeroDivisionError
    assert _users(engine) == ["+14155550100"]


def test_a_constraint_violation_is_raised_as_sqlalchemy_raises_it_and_is_not_transient(
    engine: Engine,
) -> None:
    with engine.connect() as conn:
        run_prepared(conn, INSERT_USER, {"phone": "+14155550100"}, autocommit=True)
        with pytest.raises(DBAPIError) as caught:
            run_prepared(conn, INSERT_USER, {"phone": "+14155550100"}, autocommit=True)
    assert not is_transient(caught.value)


def test_a_connection_the_server_dropped_fails_as_transient_and_is_not_pooled_again(
    database_url: str, engine: Engine
) -> None:
    with engine.connect() as conn:
        dropped = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        conn.rollback()
    terminate(database_url, dropped)
    with pytest.raises(DBAPIError) as caught, engine.connect() as conn:
        run_prepared(conn, INSERT_USER, {"phone": "+14155550100"}, autocommit=True)
    assert is_transient(caught.value)
    assert caught.value.connection_invalidated
    with engine.connect() as conn:
        run_prepared(conn, INSERT_USER, {"phone": "+14155550100"}, autocommit=True)
        assert conn.execute(text("SELECT pg_backend_pid()")).scalar_one() != dropped
