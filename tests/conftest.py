"""Shared fixtures: a real PostgreSQL cluster, and a fresh, fully migrated database for each test.

Each test gets its own database cloned from a migrated template (CREATE DATABASE ... TEMPLATE), which
costs tens of milliseconds and means no test can see another's rows.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from hypothesis import settings as hypothesis_settings
from sqlalchemy import Engine, create_engine

from infra.local.migrate import alembic_config as migration_config
from infra.local.postgres import LocalPostgres
from shared import bootstrap
from shared.config import Settings, override_settings

ROOT = Path(__file__).resolve().parents[1]

# Hypothesis's per-example deadline is a timed assertion: on a loaded machine (two cores shared with the
# stack's processes) it fails tests that are correct. Speed is measured by `make bench`, never here.
hypothesis_settings.register_profile("no-deadline", deadline=None)
hypothesis_settings.load_profile("no-deadline")
# The operator API token the test deployment configures (tokens must be at least 32 bytes).
API_TOKEN = "test-api-token-0123456789abcdef0123"


def alembic_config(connection: object | None = None) -> Config:
    config = migration_config(ROOT)
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@pytest.fixture(scope="session")
def pg() -> Iterator[LocalPostgres]:
    server = LocalPostgres()
    started_here = not server.is_running()
    server.start()
    yield server
    if started_here:
        server.stop()


@pytest.fixture(scope="session")
def template_database(pg: LocalPostgres) -> Iterator[str]:
    name = f"tmpl_{os.getpid()}"
    pg.admin_execute(f'DROP DATABASE IF EXISTS "{name}"')
    pg.admin_execute(f'CREATE DATABASE "{name}"')
    engine = create_engine(pg.url(name))
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), "head")
    engine.dispose()
    yield name
    pg.admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def database_url(pg: LocalPostgres, template_database: str) -> Iterator[str]:
    name = f"t_{uuid.uuid4().hex[:16]}"
    pg.admin_execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"')
    yield pg.url(name)
    pg.admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def empty_database_url(pg: LocalPostgres) -> Iterator[str]:
    """A database with no schema at all (for migration tests)."""
    name = f"e_{uuid.uuid4().hex[:16]}"
    pg.admin_execute(f'CREATE DATABASE "{name}"')
    yield pg.url(name)
    pg.admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    eng = create_engine(database_url)
    yield eng
    eng.dispose()


def make_settings(database_url: str, **overrides: object) -> Settings:
    """Settings as a test deployment would have them; tests pass what they need to differ."""
    values: dict[str, object] = {
        "database_url": database_url,
        "twilio_account_sid": "AC" + "0" * 32,
        "twilio_auth_token": "test-auth-token",
        "twilio_from": "whatsapp:+14155238886",
        "api_tokens": API_TOKEN,
        "inbound_webhook_url": "https://example.test/inbound_webhook",
        "status_webhook_url": "https://example.test/status_webhook",
        "send_message_url": "https://example.test/send_message",
        "trigger_campaign_url": "https://example.test/trigger_campaign",
        "api_url": "https://example.test/api",
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def settings(database_url: str) -> Iterator[Settings]:
    """Process-wide settings pointing at this test's database (for code that calls get_settings()), and a
    fresh process runtime (shared.bootstrap) that builds its engine and clients from them."""
    value = make_settings(database_url)
    override_settings(value)
    bootstrap.reset()
    yield value
    bootstrap.reset()
    override_settings(None)
