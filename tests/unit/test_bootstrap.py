"""The process's runtime (shared/bootstrap.py): nothing is built before it is needed, each dependency is
built once however many threads ask, `install` replaces what the entry points get, and `reset` closes what
was built (and only that)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from shared import bootstrap
from shared.bootstrap import Runtime
from shared.config import Settings
from shared.db import engine as engine_module

ROOT = Path(__file__).resolve().parents[2]
# Nothing listens there, and nothing here connects: an engine opens its first connection on first use.
UNUSED_URL = "postgresql+pg8000://ese@127.0.0.1:9/never"


@pytest.fixture(autouse=True)
def no_process_runtime() -> Iterator[None]:
    bootstrap.reset()
    yield
    bootstrap.reset()


def settings() -> Settings:
    return Settings(database_url=UNUSED_URL)


class ClosablePublisher:
    def __init__(self) -> None:
        self.closed = 0

    def publish(self, payloads: Sequence[bytes]) -> None:
        pass

    def close(self) -> None:
        self.closed += 1


def test_nothing_is_built_at_import_or_when_the_runtime_is_made() -> None:
    # A fresh interpreter: this one has long since imported (and built) everything for other tests.
    script = f"""
import gc, importlib.util, sys
from sqlalchemy import Engine

spec = importlib.util.spec_from_file_location("main", {str(ROOT / "functions" / "main.py")!r})
main = importlib.util.module_from_spec(spec)
spec.loader.exec_module(main)
from shared import bootstrap

def engines():
    return sum(isinstance(o, Engine) for o in gc.get_objects())

def clients():
    heavy = ("google.cloud.pubsub_v1", "google.cloud.tasks_v2", "google.cloud.sql.connector")
    return sorted(name for name in sys.modules if name in heavy)

runtimes = sum(isinstance(o, bootstrap.Runtime) for o in gc.get_objects())
print("import", runtimes, engines(), clients())
rt = bootstrap.runtime()
print("runtime()", engines(), clients())
rt.uow()
print("uow()", engines(), clients())
"""
    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": UNUSED_URL}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["import 0 0 []", "runtime() 0 []", "uow() 1 []"]


def test_each_dependency_waits_for_its_first_use(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[str] = []
    publisher = ClosablePublisher()

    def make_publisher(_: Settings) -> ClosablePublisher:
        built.append("publisher")
        return publisher

    monkeypatch.setattr(bootstrap, "make_publisher", make_publisher)
    monkeypatch.setattr(bootstrap, "make_engine", _recording(built, "engine"))
    rt = Runtime(settings=settings())
    assert built == []
    assert rt.publisher is publisher and rt.publisher is publisher
    assert built == ["publisher"]
    rt.uow()
    rt.uow()
    assert built == ["publisher", "engine"]


def test_the_engine_is_built_once_when_many_threads_ask_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[str] = []
    # Slow, so that every thread arrives while the first is still building.
    monkeypatch.setattr(bootstrap, "make_engine", _recording(built, "engine", delay=0.05))
    rt = Runtime(settings=settings())
    start = threading.Barrier(8)
    seen: list[Engine] = []

    def ask() -> None:
        start.wait()
        seen.append(rt.engine)

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert built == ["engine"]
    assert len(seen) == 8 and len({id(engine) for engine in seen}) == 1


def test_install_replaces_the_process_runtime_and_closes_the_one_it_replaces() -> None:
    first = Runtime(settings=settings())
    bootstrap.install(first)
    assert bootstrap.runtime() is first
    first_engine = bootstrap.runtime().engine
    first_pool = first_engine.pool
    replacement = Runtime(settings=settings())

    bootstrap.install(replacement)

    assert bootstrap.runtime() is replacement
    assert first_engine.pool is not first_pool  # disposed: Engine.dispose() replaces the pool


def test_reset_closes_what_the_runtime_built_and_the_next_runtime_starts_afresh(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    built = ClosablePublisher()
    monkeypatch.setattr(bootstrap, "make_publisher", lambda _: built)
    bootstrap.install(Runtime(settings=settings()))
    rt = bootstrap.runtime()
    engine = rt.engine
    pool = engine.pool
    assert rt.publisher is built

    bootstrap.reset()

    assert engine.pool is not pool and built.closed == 1
    assert bootstrap.runtime() is not rt


def test_reset_leaves_what_the_runtime_was_given_to_its_owner() -> None:
    given_engine = engine_module.make_engine(settings())
    pool = given_engine.pool
    given = ClosablePublisher()
    bootstrap.install(Runtime(settings=settings(), engine=given_engine, publisher=given))
    assert bootstrap.runtime().engine is given_engine

    bootstrap.reset()

    assert given_engine.pool is pool and given.closed == 0
    given_engine.dispose()


def test_a_runtime_without_settings_reads_the_process_settings_on_each_use(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first, second = settings(), settings()
    current = [first]
    monkeypatch.setattr(bootstrap, "get_settings", lambda: current[0])
    rt = Runtime()
    assert rt.settings is first
    current[0] = second
    assert rt.settings is second
    assert Runtime(settings=first).settings is first


def _recording(built: list[str], name: str, delay: float = 0.0) -> Any:
    def make_engine(settings: Settings) -> Engine:
        built.append(name)
        time.sleep(delay)
        return engine_module.make_engine(settings)

    return make_engine
