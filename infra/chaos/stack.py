"""The stack `make chaos` breaks: the same processes as `make dev`, on a PostgreSQL cluster of its own
(stopped and started by the outage faults; a developer's cluster is never touched) and a state directory of
its own. The settings differ from the defaults only in how soon things happen, so a run takes minutes:
the sweeper acts within seconds, Twilio's timeout is 2 s, transient send errors are retried after 2 to
32 s, pages are small (more fan-out to interrupt). The send queue keeps production's retry policy."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from infra.local.postgres import LocalPostgres
from infra.local.stack import LocalStack
from infra.local.stack_env import MANAGED_KEYS

ROOT = Path(__file__).resolve().parents[2]
CHAOS_DIR = ROOT / ".local" / "chaos"
DATABASE = "chaos"
SETTINGS = {
    "RETRY_DELAYS_SECONDS": "2,4,8,16,32",
    "THROUGHPUT_DEFER_SECONDS": "1",
    "TWILIO_TIMEOUT_SECONDS": "2",
    "RECONCILE_AFTER_SECONDS": "3",
    "STALE_STATUS_AFTER_SECONDS": "10",
    "TASK_OVERDUE_AFTER_SECONDS": "10",
    "PAGE_OVERDUE_AFTER_SECONDS": "20",
    # Fourteen processes share two cores here; production instances are not this crowded (as e2e).
    "RATE_SAFETY_MARGIN": "0.08",
    "FANOUT_PAGE_SIZE": "100",
}
SCHEDULER_INTERVAL_SECONDS = 2.0


def chaos_environ(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    kept = {k: v for k, v in environ.items() if k not in MANAGED_KEYS and k != "PUBLIC_BASE_URL"}
    return kept | SETTINGS


@contextmanager
def chaos_stack(directory: Path = CHAOS_DIR) -> Iterator[tuple[LocalStack, LocalPostgres]]:
    pg = LocalPostgres(directory / "postgres")
    pg.start()
    try:
        pg.admin_execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        pg.admin_execute(f'CREATE DATABASE "{DATABASE}"')
        stack = LocalStack(
            state_dir=directory / "stack",
            database_url=pg.url(DATABASE),
            scheduler_interval=SCHEDULER_INTERVAL_SECONDS,
            environ=chaos_environ(),
        )
        with stack:
            yield stack, pg
    finally:
        pg.stop()
