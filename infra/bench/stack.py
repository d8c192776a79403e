"""The stack `make bench` measures: the same processes as `make dev`, on a PostgreSQL cluster and state
directory of its own (`.local/bench/`), so a developer's running `make dev` and its data are untouched.

Two settings differ from the defaults, both so a figure measures what the issue names:
- SENDER_RATE_LIMIT_PER_SECOND=500: the send figure is "queue unthrottled", so the sender-wide cap is
  raised to the queue's own ceiling; campaigns still carry their own rate (the fidelity figure uses 80/s).
- RETRY_DELAYS_SECONDS=10,20,40: the fidelity figure's transient faults are retried within the run instead
  of after 1, 5 and 15 minutes. The retries still take their own rate-limit slots, which is what it tests.
  Compressed as they are, the delays keep production's proportion to the faults: a message's last attempt
  comes at least 70 s after its first, after the 60 s fault burst has ended, as 21 minutes of production
  retries outlast any burst that short. (At 5/10/20 s a recipient could meet four faults in a row within
  the burst and end FAILED: a bench artefact, not what production would do.)
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from infra.bench.context import BenchContext
from infra.bench.paths import BENCH_DIR
from infra.local.postgres import LocalPostgres
from infra.local.stack import LocalStack
from infra.local.stack_env import MANAGED_KEYS

STATE_DIR = BENCH_DIR / "stack"
POSTGRES_DIR = BENCH_DIR / "postgres"
LOCK_FILE = BENCH_DIR / "run.lock"
DATABASE = "bench"
BENCH_SETTINGS = {"SENDER_RATE_LIMIT_PER_SECOND": "500", "RETRY_DELAYS_SECONDS": "10,20,40"}


def bench_environ(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The caller's environment minus anything pointing the stack at real Twilio or other URLs."""
    kept = {k: v for k, v in environ.items() if k not in MANAGED_KEYS and k != "PUBLIC_BASE_URL"}
    return kept | BENCH_SETTINGS


@contextmanager
def bench_stack() -> Iterator[LocalStack]:
    """A PostgreSQL cluster of the bench's own, a fresh `bench` database in it and a stack on it; all of it
    stopped afterwards. Not the developers' cluster: a test session elsewhere that stops that one when it
    ends would take a half-finished run down with it."""
    with _only_run(), _stack() as stack:
        yield stack


@contextmanager
def _stack() -> Iterator[LocalStack]:
    pg = LocalPostgres(POSTGRES_DIR)
    pg.start()
    try:
        pg.admin_execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        pg.admin_execute(f'CREATE DATABASE "{DATABASE}"')
        with LocalStack(
            state_dir=STATE_DIR,
            database_url=pg.url(DATABASE),
            scheduler_interval=None,
            environ=bench_environ(),
        ) as stack:
            yield stack
    finally:
        pg.stop()


@contextmanager
def bench_context(stack: LocalStack, *, smoke: bool) -> Iterator[BenchContext]:
    """What the figures get; meanwhile the harness's own clients (requests, http.client, the load
    generator) trust the front end's CA, as every client in the stack does: they reach the functions
    through its https:// URLs."""
    keys = ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")
    previous = {key: os.environ.get(key) for key in keys}
    os.environ.update({key: stack.env[key] for key in keys})
    try:
        yield BenchContext(
            env=stack.env,
            function_ports=stack.function_ports,
            smoke=smoke,
            front_end_port=stack.front_end_ports["api"],
        )
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextmanager
def _only_run() -> Iterator[None]:
    """One bench run at a time on this checkout: a second would stop the first's stack and drop its database."""
    LOCK_FILE.parent.mkdir(parents=True, exist_ok=True)
    with LOCK_FILE.open("a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            raise SystemExit(
                f"another bench run holds {LOCK_FILE} (pid {lock.read().strip() or '?'})"
            ) from None
        lock.truncate(0)
        lock.write(str(os.getpid()))
        lock.flush()
        yield
