"""Alembic to head on a given database, in-process (the runner already has the application importable)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine


def alembic_config(root: Path) -> Config:
    config = Config(str(root / "alembic.ini"))
    config.set_main_option("script_location", str(root / "migrations"))
    return config


def migrate(root: Path, database_url: str) -> None:
    config = alembic_config(root)
    engine = create_engine(database_url)
    try:
        with engine.begin() as connection:
            # migrations/env.py uses a connection handed over this way instead of building its own
            # engine from the process-wide settings, which the runner does not have.
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    finally:
        engine.dispose()
