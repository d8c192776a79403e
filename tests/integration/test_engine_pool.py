"""The process-wide engine's pool: sized to the threads that share it, idle connections checked, and a
connection left mid-statement never handed out again."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any
from unittest import mock

import pytest
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from shared.config import Settings
from shared.db import engine as engine_module
from shared.db.engine import make_engine
from shared.db.errors import is_transient
from shared.db.queries.prepared import run_prepared
from shared.db.queries.users import copy_into_staging, create_import_staging
from shared.db.unit_of_work import UnitOfWork
from tests.conftest import make_settings
from tests.integration.test_prepared_statements import terminate

CLOUD_SQL = "proj:region:inst"


@pytest.mark.parametrize(
    ("threads", "pool_size", "overflow"),
    [(1, 5, 2), (6, 6, 1), (7, 7, 0), (20, 7, 0)],
)
def test_the_pool_keeps_one_connection_per_thread_within_the_connection_budget(
    threads: int, pool_size: int, overflow: int
) -> None:
    settings = Settings(
        instance_connection_name=CLOUD_SQL, db_pool_size=5, db_max_overflow=2, threads=threads
    )
    pool = make_engine(settings).pool
    assert pool.size() == pool_size  # type: ignore[attr-defined]
    assert pool._max_overflow == overflow  # type: ignore[attr-defined]


def _backend_pid(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


def test_an_idle_connection_the_server_dropped_is_replaced_before_use(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = make_engine(make_settings(database_url, db_pool_size=1, db_max_overflow=0))
    try:
        dropped = _backend_pid(engine)
        terminate(database_url, dropped)
        # Every pooled connection now counts as having sat idle.
        monkeypatch.setattr(engine_module, "PING_AFTER_IDLE_SECONDS", 0.0)
        assert _backend_pid(engine) != dropped
    finally:
        engine.dispose()


def test_a_connection_used_moments_ago_is_not_pinged_so_a_drop_meanwhile_fails_one_request_as_transient(
    database_url: str,
) -> None:
    # The trade for one round trip less per request: the caller answers "retry later" once.
    engine = make_engine(make_settings(database_url, db_pool_size=1, db_max_overflow=0))
    try:
        dropped = _backend_pid(engine)
        terminate(database_url, dropped)
        with pytest.raises(DBAPIError) as caught, engine.connect() as conn:
            run_prepared(conn, "SELECT pg_backend_pid()", {}, autocommit=True)
        assert is_transient(caught.value)
        assert _backend_pid(engine) != dropped
    finally:
        engine.dispose()


class _InterruptedOnce:
    """pg8000's socket file, raising KeyboardInterrupt at the first read of a reply: what a signal arriving
    while the driver waits for the server does (the statement was sent; its reply is left unread)."""

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self._fired = False

    def read(self, size: int) -> bytes:
        if not self._fired:
            self._fired = True
            raise KeyboardInterrupt
        return bytes(self._sock.read(size))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def _lone_surrogate(conn: Connection, statement: Runner) -> None:
    statement(
        conn, "SELECT CAST(:padding AS text), CAST(:value AS text)", {"padding": "x", "value": "\ud800"}
    )


def _interrupt(conn: Connection, statement: Runner) -> None:
    driver = conn.connection.driver_connection
    driver._sock = _InterruptedOnce(driver._sock)  # type: ignore[union-attr]
    statement(conn, "SELECT CAST(:value AS text)", {"value": "sent"})


def _core(conn: Connection, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in conn.execute(text(sql), params)]


def _prepared(conn: Connection, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in run_prepared(conn, sql, params, autocommit=True)]


Runner = Callable[[Connection, str, dict[str, Any]], list[tuple[Any, ...]]]


@pytest.mark.parametrize("statement", [_core, _prepared], ids=["core", "prepared"])
@pytest.mark.parametrize(
    ("failure", "raised"),
    [(_lone_surrogate, UnicodeEncodeError), (_interrupt, KeyboardInterrupt)],
    ids=["lone surrogate", "interrupt"],
)
def test_a_statement_failing_mid_flight_takes_its_connection_out_of_the_pool_and_the_next_gets_its_own_rows(
    database_url: str, statement: Runner, failure: Callable[[Connection, Runner], None], raised: type
) -> None:
    # One pooled connection: if the failed one came back, the next checkout would be it, and would read the
    # reply left on its socket as its own.
    engine = make_engine(make_settings(database_url, db_pool_size=1, db_max_overflow=0))
    try:
        failed_on = _backend_pid(engine)
        with pytest.raises(raised), engine.connect() as conn:
            failure(conn, statement)
        for value in ("first", "second"):
            with engine.connect() as conn:
                assert statement(conn, "SELECT CAST(:value AS text), pg_backend_pid()", {"value": value}) == [
                    (value, mock.ANY)
                ]
        assert _backend_pid(engine) != failed_on
    finally:
        engine.dispose()


def test_an_error_the_server_reported_keeps_the_connection(database_url: str) -> None:
    # pg8000 read the error through to ReadyForQuery: the connection is in step and worth keeping.
    engine = make_engine(make_settings(database_url, db_pool_size=1, db_max_overflow=0))
    try:
        kept = _backend_pid(engine)
        with pytest.raises(DBAPIError) as caught, engine.connect() as conn:
            conn.execute(text("SELECT CAST(:value AS integer)"), {"value": "not a number"})
        assert not caught.value.connection_invalidated
        assert _backend_pid(engine) == kept
    finally:
        engine.dispose()


# Division by zero: an error whose server message does not quote the parameter.
_FAILS_WITH_BODY = "SELECT CAST(:body AS text), 1 / 0"


def test_a_database_error_never_shows_the_statement_parameters(database_url: str) -> None:
    engine = make_engine(make_settings(database_url, db_pool_size=1, db_max_overflow=0))
    try:
        with pytest.raises(DBAPIError) as core, engine.connect() as conn:
            conn.execute(text(_FAILS_WITH_BODY), {"body": "STOP +14155550101"})
        with pytest.raises(DBAPIError) as prepared, engine.connect() as conn:
            run_prepared(conn, _FAILS_WITH_BODY, {"body": "STOP +14155550101"}, autocommit=True)
        for error in (core.value, prepared.value):
            assert "14155550101" not in str(error)
    finally:
        engine.dispose()


def test_a_copy_interrupted_mid_stream_takes_its_connection_out_of_the_pool(database_url: str) -> None:
    engine = make_engine(make_settings(database_url, db_pool_size=1, db_max_overflow=0))

    def chunks() -> Iterator[bytes]:
        yield b"1\t+14155550100\t{}\t\\N\t\\N\n"
        raise KeyboardInterrupt

    try:
        failed_on = _backend_pid(engine)
        with pytest.raises(KeyboardInterrupt), UnitOfWork(engine) as uow:
            create_import_staging(uow.session)
            copy_into_staging(uow.session, chunks())
        with engine.connect() as conn:
            assert _core(conn, "SELECT CAST(:value AS text)", {"value": "next"}) == [("next",)]
        assert _backend_pid(engine) != failed_on
    finally:
        engine.dispose()
