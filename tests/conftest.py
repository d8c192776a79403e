"""Shared fixtures: a real PostgreSQL cluster, and a fresh, fully migrated database for each test.

Each test gets its own database cloned from a migrated template (CREATE DATABASE ... TEMPLATE), so no test
can see another's rows. A clone takes PostgreSQL 0.15-0.5 s (more on a loaded machine), so threads make
the next ones while a test runs and drop used ones after it (`DatabasePool`): PostgreSQL works on the
other core instead of the test waiting for it.
"""

from __future__ import annotations

import os
import queue
import threading
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


class DatabasePool:
    """Clones of the template made ahead of need, each handed out once, and used ones dropped, by threads
    of their own: a test takes a database no test has used, mostly without waiting for CREATE DATABASE, and
    never waits for DROP DATABASE. At most `ahead` clones wait unused. Two clones made at once finish in
    about a third of the time of two made one after the other (CREATE DATABASE mostly waits, for its WAL
    among others), so `creators` threads make them."""

    def __init__(self, pg: LocalPostgres, template: str, ahead: int = 4, creators: int = 2) -> None:
        self._pg = pg
        self._template = template
        self._ready: queue.Queue[str | BaseException] = queue.Queue(maxsize=ahead)
        self._used: queue.Queue[str | None] = queue.Queue()
        self._closing = threading.Event()
        self._errors: list[BaseException] = []
        self._failed: BaseException | None = None
        self._creating = [
            threading.Thread(target=self._create, name=f"db-pool-create-{i}", daemon=True)
            for i in range(creators)
        ]
        self._dropping = threading.Thread(target=self._drop, name="db-pool-drop", daemon=True)
        for thread in [*self._creating, self._dropping]:
            thread.start()

    def take(self) -> str:
        """The URL of a fresh clone of the template."""
        if self._failed is not None:
            raise RuntimeError("cloning the template database failed") from self._failed
        name = self._ready.get(timeout=120)
        if isinstance(name, BaseException):
            raise RuntimeError("cloning the template database failed") from name
        return self._pg.url(name)

    def give_back(self, url: str) -> None:
        """Drop the database (WITH (FORCE): connections a test left open are ended)."""
        self._used.put(url.rsplit("/", 1)[1])

    def close(self) -> None:
        self._closing.set()
        while any(thread.is_alive() for thread in self._creating):  # unblock those waiting for room
            self._drop_unused(timeout=0.05)
        self._drop_unused(timeout=0)
        self._used.put(None)
        self._dropping.join()
        if self._errors:
            raise RuntimeError("dropping a test database failed") from self._errors[0]

    def _drop_unused(self, timeout: float) -> None:
        while True:
            try:
                left = self._ready.get(timeout=timeout) if timeout else self._ready.get_nowait()
            except queue.Empty:
                return
            if isinstance(left, str):
                self._used.put(left)

    def _create(self) -> None:
        while not self._closing.is_set():
            name = f"t_{uuid.uuid4().hex[:16]}"
            try:
                self._pg.admin_execute(f'CREATE DATABASE "{name}" TEMPLATE "{self._template}"')
            except Exception as error:  # every test that takes one from now on fails with it
                self._failed = error
                self._ready.put(error)
                return
            self._ready.put(name)

    def _drop(self) -> None:
        while (name := self._used.get()) is not None:
            try:
                self._pg.admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            except Exception as error:  # reported when the session ends
                self._errors.append(error)


@pytest.fixture(scope="session")
def database_pool(pg: LocalPostgres, template_database: str) -> Iterator[DatabasePool]:
    pool = DatabasePool(pg, template_database)
    yield pool
    pool.close()


@pytest.fixture
def database_url(database_pool: DatabasePool) -> Iterator[str]:
    url = database_pool.take()
    yield url
    database_pool.give_back(url)


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
