"""Alembic environment: migrations run through the application's own engine factory, so the same
`alembic upgrade head` works against local PostgreSQL (DATABASE_URL) and Cloud SQL (the connector)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from shared.config import get_settings
from shared.db.engine import make_engine
from shared.db.models import Base

target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    # A caller (tests) may hand us a connection; otherwise build an engine from the settings.
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(get_settings())
    try:
        with engine.connect() as conn:
            _run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported: run against a database")
run_migrations_online()
