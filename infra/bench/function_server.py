"""A functions-framework server started by the harness (the no-op baseline), launched with the command
and the gunicorn settings (WORKERS, THREADS) the local stack gives one of its functions, so the two are
served the same way."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from infra.bench.paths import BENCH_DIR, ROOT
from infra.local.functions_runner import EntryPoint, command, marker, process_env
from infra.local.postgres import free_port
from infra.local.processes import http_answers, spawn, stop_processes, tail

LOG_DIR = BENCH_DIR / "logs"


@contextmanager
def function_server(source: Path, target: str, served_like: str, timeout: float = 30.0) -> Iterator[str]:
    """Serve `target` from `source` on 127.0.0.1 as the stack serves its function `served_like`; yields
    its URL and stops it (by PID) on exit."""
    port = free_port()
    entry = EntryPoint(target, "http")
    log = LOG_DIR / f"{target}.log"
    runtime = LOG_DIR.parent / "run" / target
    env = {**os.environ, "PYTHONPATH": str(ROOT), **process_env(served_like, runtime)}
    _, record = spawn(
        target, command(source, entry, port), env=env, log_path=log, port=port, marker=marker(entry, port)
    )
    url = f"http://127.0.0.1:{port}/{target}"
    try:
        deadline = time.monotonic() + timeout
        while not http_answers(url):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{target} did not start on port {port}:\n{tail(log)}")
            time.sleep(0.1)
        yield url
    finally:
        stop_processes([record])
