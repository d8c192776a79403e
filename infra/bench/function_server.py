"""A functions-framework server started by the harness (the no-op baseline), launched with the command
and the gunicorn settings (WORKERS, THREADS) the local stack gives one of its functions, and put behind a
front-end emulator of its own as the stack's functions are, so the two are served the same way."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

from infra.bench.paths import BENCH_DIR, ROOT
from infra.local.front_end.table import ALLOW_ALL
from infra.local.functions_runner import EntryPoint, command, marker, process_env
from infra.local.postgres import free_port, free_ports
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
        _await(url, lambda: tail(log), timeout)
        yield url
    finally:
        stop_processes([record])


@contextmanager
def behind_front_end(url: str, env: Mapping[str, str], timeout: float = 30.0) -> Iterator[str]:
    """`url`'s server behind a front-end emulator of its own, public like the webhooks, with the stack's CA
    (`env`: the stack's settings); yields the front end's https:// URL."""
    (listen,) = free_ports(1)
    route: dict[str, object] = {
        "name": "baseline",
        "upstream_port": urlsplit(url).port,
        "listen_port": listen,
        "ingress": ALLOW_ALL,
        "public": True,
        "invokers": [],
        "timeout_seconds": 60,
        "audiences": [],
    }
    config = LOG_DIR / "baseline-front-end.json"
    config.parent.mkdir(parents=True, exist_ok=True)
    tls_dir = str(Path(env["SSL_CERT_FILE"]).parent)
    config.write_text(json.dumps({"tls_dir": tls_dir, "certs_url": env["OIDC_CERTS_URL"], "routes": [route]}))
    argv = [sys.executable, "-m", "infra.local.front_end", str(config)]
    log = LOG_DIR / "baseline-front-end.log"
    _, record = spawn(
        "baseline-front-end",
        argv,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        log_path=log,
        port=listen,
        marker=" ".join(argv),
    )
    public = f"https://127.0.0.1:{listen}"
    try:
        _await(public + "/robots.txt", lambda: tail(log), timeout)
        yield public
    finally:
        stop_processes([record])


def _await(url: str, log_tail: Callable[[], str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not http_answers(url):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not start:\n{log_tail()}")
        time.sleep(0.1)
