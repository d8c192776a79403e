from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError

from infra.local.postgres import free_port
from shared.db.engine import make_engine
from shared.db.errors import UNIQUE_VIOLATION, is_transient, sqlstate
from tests.conftest import make_settings
from tests.resetting_server import resetting_server


def test_a_refused_connection_is_transient() -> None:
    engine = create_engine(f"postgresql+pg8000://postgres@127.0.0.1:{free_port()}/nowhere")
    with pytest.raises(DBAPIError) as caught, engine.connect():
        pass
    assert is_transient(caught.value)


def test_a_constraint_violation_is_not_transient_and_names_its_sqlstate(engine: object) -> None:
    from sqlalchemy import Engine

    assert isinstance(engine, Engine)
    insert = text("INSERT INTO users (phone_e164) VALUES ('+14155550100')")
    with engine.begin() as conn:
        conn.execute(insert)
    with pytest.raises(DBAPIError) as caught, engine.begin() as conn:
        conn.execute(insert)
    assert sqlstate(caught.value) == UNIQUE_VIOLATION
    assert not is_transient(caught.value)


def test_a_connection_reset_while_opening_is_transient() -> None:
    with resetting_server() as port:
        engine = make_engine(make_settings(f"postgresql+pg8000://postgres@127.0.0.1:{port}/x"))
        with pytest.raises(DBAPIError) as caught, engine.connect():
            pass
        engine.dispose()
    assert is_transient(caught.value)
