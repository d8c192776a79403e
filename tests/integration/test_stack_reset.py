"""The local stack's reset between tests and figures: a write still landing from before it must not make
it fail (CI once lost a test to a deadlock between the reset's TRUNCATE and such a write)."""

from __future__ import annotations

import threading
import time

from infra.local.postgres import connect
from infra.local.stack_reset import _truncate_all_tables, truncated_tables


def test_a_truncate_that_loses_a_deadlock_to_a_late_write_tries_again(database_url: str) -> None:
    writer = connect(database_url)
    watcher = connect(database_url)
    try:
        tables = truncated_tables(writer)
        first, last = tables[0], tables[-1]
        # The writer checks for deadlocks long after the TRUNCATE does, so the TRUNCATE is the one that
        # PostgreSQL aborts, as in the CI run that failed.
        writer.run("SET deadlock_timeout = '10s'")
        writer.run("BEGIN")
        writer.run(f'LOCK TABLE "{last}" IN ROW EXCLUSIVE MODE')
        failures: list[BaseException] = []

        def reset() -> None:
            try:
                _truncate_all_tables(database_url)
            except BaseException as error:  # the assertion below reports it
                failures.append(error)

        resetting = threading.Thread(target=reset)
        resetting.start()
        deadline = time.monotonic() + 10
        while not watcher.run("SELECT count(*) FROM pg_locks WHERE NOT granted")[0][0]:
            assert time.monotonic() < deadline, "the TRUNCATE never waited for the writer's lock"
            time.sleep(0.02)
        # The TRUNCATE holds `first` and waits for `last`; the writer now waits for `first`: a cycle.
        writer.run(f'LOCK TABLE "{first}" IN ROW EXCLUSIVE MODE')
        writer.run("COMMIT")
        resetting.join(timeout=30)
        assert not resetting.is_alive()
        assert failures == []
    finally:
        writer.close()
        watcher.close()
