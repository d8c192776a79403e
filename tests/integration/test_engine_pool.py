"""The process-wide engine's pool: sized to the threads that share it, and idle connections checked."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from shared.config import Settings
from shared.db import engine as engine_module
from shared.db.engine import make_engine
from shared.db.errors import is_transient
from shared.db.queries.prepared import run_prepared
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
