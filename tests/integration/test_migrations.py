from __future__ import annotations

from alembic import command
from sqlalchemy import create_engine, inspect
from sqlalchemy.engine import Engine

from shared.db.models import Base
from tests.conftest import alembic_config

SEED_TABLES = {
    "users",
    "subscriptions",
    "templates",
    "segments",
    "campaigns",
    "messages",
    "delivery_receipts",
    "events_inbound",
}


def _tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names()) - {"alembic_version"}


def test_upgrade_head_then_downgrade_base_on_an_empty_database(empty_database_url: str) -> None:
    engine = create_engine(empty_database_url)
    try:
        with engine.begin() as conn:
            command.upgrade(alembic_config(conn), "head")
        assert SEED_TABLES | {"audit_events"} <= _tables(engine)

        with engine.begin() as conn:
            command.downgrade(alembic_config(conn), "base")
        assert _tables(engine) == set()

        # And up again: downgrade left nothing behind (functions, triggers) that blocks a re-run.
        with engine.begin() as conn:
            command.upgrade(alembic_config(conn), "head")
        assert _tables(engine) >= SEED_TABLES
    finally:
        engine.dispose()


def test_migrated_schema_has_every_table_and_column_of_the_models(engine: Engine) -> None:
    inspector = inspect(engine)
    for table in Base.metadata.sorted_tables:
        columns = {c["name"] for c in inspector.get_columns(table.name)}
        assert columns == {c.name for c in table.columns}, table.name


def test_migrations_match_the_models_exactly(engine: Engine) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
