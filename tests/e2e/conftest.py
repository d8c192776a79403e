"""The whole local stack for end-to-end tests: the same processes `make dev` runs, on ports and a state
directory of their own (so a developer's running `make dev` is untouched), against a fresh migrated
database cloned from the session's template (never the developer's `ese`).

    def test_something(clean_stack: dict[str, str]) -> None:   # settings as in .local/stack.env
        requests.post(clean_stack["API_URL"] + "/v1/...", headers=...)

`clean_stack` empties the tables, the Twilio emulator, the send queue and the push subscription's
backlog before each test; the stack itself starts once per session (a few seconds).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import requests
from sqlalchemy import Engine, create_engine

from infra.local.postgres import LocalPostgres
from infra.local.stack import LocalStack
from infra.local.stack_env import MANAGED_KEYS
from infra.local.stack_reset import reset_stack

# Short enough that a test of a scheduled campaign sees it start without waiting Cloud Scheduler's minute.
SCHEDULER_INTERVAL_SECONDS = 2.0


# What the end-to-end stack runs with: eight short retries make "every recipient gets exactly one
# message" hold at 20% faults (8 faults in a row: 0.2^9 per recipient); the default three retries
# then FAILED is proven in tests/integration/test_sender.py.
E2E_ENVIRON = {
    "RETRY_DELAYS_SECONDS": "1,1,2,2,3,3,3,3",
    "THROUGHPUT_DEFER_SECONDS": "1",
    "TWILIO_TIMEOUT_SECONDS": "3",
    "FANOUT_PAGE_SIZE": "250",
    # Send starts are spaced (1 + margin) / rate: a 1-second window can only overflow if one send is late by
    # more than `margin` seconds relative to another. Ten processes share this machine's two cores, where a
    # 20 ms stall (the 2% default) happens; production instances are not this crowded.
    "RATE_SAFETY_MARGIN": "0.08",
    # The sweeper (every scheduler tick, 2 s here) acts within seconds instead of minutes, so a test of a
    # lost answer or a lost task sees it repaired.
    "RECONCILE_AFTER_SECONDS": "2",
    "STALE_STATUS_AFTER_SECONDS": "15",
    "TASK_OVERDUE_AFTER_SECONDS": "10",
    "PAGE_OVERDUE_AFTER_SECONDS": "20",
    # Campaigns created without quiet hours (the dashboard's form in the browser tests) send at whatever
    # hour the suite runs; the default itself is tested in tests/functions/test_campaign_defaults.py.
    "DEFAULT_QUIET_HOURS": "off",
}


def stack_environ() -> dict[str, str]:
    """The test process's environment without anything that would point the stack elsewhere: a
    developer's real Twilio credentials or public URLs must never reach an end-to-end run."""
    inherited = {k: v for k, v in os.environ.items() if k not in MANAGED_KEYS and k != "PUBLIC_BASE_URL"}
    return inherited | E2E_ENVIRON


@contextmanager
def cloned_database(pg: LocalPostgres, template: str, prefix: str) -> Iterator[str]:
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    pg.admin_execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    yield pg.url(name)
    pg.admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def stack_database_url(pg: LocalPostgres, template_database: str) -> Iterator[str]:
    with cloned_database(pg, template_database, "e2e") as url:
        yield url


@pytest.fixture(scope="session")
def local_stack(stack_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    stack = LocalStack(
        state_dir=tmp_path_factory.mktemp("local-stack"),
        database_url=stack_database_url,
        scheduler_interval=SCHEDULER_INTERVAL_SECONDS,
        environ=stack_environ(),
    )
    with stack:
        yield stack


@pytest.fixture(scope="session")
def stack_env(local_stack: LocalStack) -> Iterator[dict[str, str]]:
    # Every public URL is the front-end emulator's https://; the tests' own clients trust its CA as the
    # stack's do (requests reads REQUESTS_CA_BUNDLE on every call).
    previous = os.environ.get("REQUESTS_CA_BUNDLE")
    os.environ["REQUESTS_CA_BUNDLE"] = local_stack.env["REQUESTS_CA_BUNDLE"]
    yield dict(local_stack.env)
    if previous is None:
        os.environ.pop("REQUESTS_CA_BUNDLE", None)
    else:
        os.environ["REQUESTS_CA_BUNDLE"] = previous


@pytest.fixture(scope="session")
def stack_engine(stack_database_url: str) -> Iterator[Engine]:
    engine = create_engine(stack_database_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def _twilio_emulator_config(stack_env: dict[str, str]) -> dict[str, Any]:
    response = requests.get(stack_env["TWILIO_API_URL"] + "/_emulator/config", timeout=5)
    response.raise_for_status()
    config: dict[str, Any] = response.json()
    return config


# The first failed step of a `scenario` module: the steps after it are skipped, since each builds on it.
_FAILED_STEP = pytest.StashKey[str]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed and item.get_closest_marker("scenario") and item.parent is not None:
        item.parent.stash.setdefault(_FAILED_STEP, item.name)
    return report


@pytest.fixture(autouse=True)
def _skip_steps_after_a_failed_one(request: pytest.FixtureRequest) -> None:
    parent = request.node.parent
    if request.node.get_closest_marker("scenario") and parent is not None and _FAILED_STEP in parent.stash:
        pytest.skip(f"an earlier step failed: {parent.stash[_FAILED_STEP]}")


@pytest.fixture
def clean_stack(stack_env: dict[str, str], _twilio_emulator_config: dict[str, Any]) -> dict[str, str]:
    """The stack as just started: no rows, no Twilio messages or faults, no tasks, no pending pushes."""
    reset_stack(stack_env, _twilio_emulator_config)
    return stack_env
