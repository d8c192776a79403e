"""The stack the smoke run measures: `LocalStack` with the bench's settings (infra/bench/stack.py), on a
fresh database cloned from the session's migrated template and a state directory of its own.

Not the e2e `local_stack`: the bench needs its own settings (sender cap, retry delays) and empties every
table between figures, which an e2e test sharing the stack must not see.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from infra.bench.context import BenchContext
from infra.bench.stack import bench_context, bench_environ
from infra.local.postgres import LocalPostgres
from infra.local.stack import LocalStack


@pytest.fixture(scope="session")
def bench_ctx(
    pg: LocalPostgres, template_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BenchContext]:
    name = f"bench_{uuid.uuid4().hex[:12]}"
    pg.admin_execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"')
    stack = LocalStack(
        state_dir=tmp_path_factory.mktemp("bench-stack"),
        database_url=pg.url(name),
        scheduler_interval=None,
        environ=bench_environ(),
    )
    try:
        with stack, bench_context(stack, smoke=True) as ctx:
            yield ctx
    finally:
        pg.admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
