"""Dead-lettered pages drained into `dead_letters` from Google's Pub/Sub emulator with the real client,
and the health report's dead-letter check reading them (docs/architecture.md, "Health checks").

Pages reach the dead-letter topic here by being published to it, as Pub/Sub's dead-lettering does (the
emulator stores a subscription's dead-letter policy but does not promise to enforce it)."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, text

from infra.local import processes, pubsub_emulator
from infra.local.emulator_clients import publisher, subscriber
from shared.adapters.pubsub import PubSubDeadLetterSource, PulledMessage
from shared.clock import FixedClock
from shared.db.queries import health as queries
from shared.db.queries import heartbeats
from shared.db.unit_of_work import UnitOfWork
from shared.services.dead_letters import drain_dead_letters
from shared.services.health import DEAD_LETTER_DRAIN, Level, Thresholds, dead_letter_check

PROJECT, TOPIC = "test-project", "campaign-recipients"
pytestmark = pytest.mark.skipif(not pubsub_emulator.LAUNCHER.exists(), reason="no Pub/Sub emulator")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def pubsub_address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = _free_port()
    _, record = processes.spawn(
        "pubsub-emulator",
        pubsub_emulator.command(port),
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path_factory.mktemp("pubsub-home"))},
        log_path=tmp_path_factory.mktemp("pubsub") / "emulator.log",
        port=port,
        marker=pubsub_emulator.marker(port),
    )
    try:
        deadline = time.monotonic() + 60
        while not processes.port_accepts(port):
            assert time.monotonic() < deadline, "the Pub/Sub emulator did not start"
            time.sleep(0.2)
        address = f"127.0.0.1:{port}"
        # The topology terraform creates; the push endpoint answers nothing (pages never reach it here).
        pubsub_emulator.create_topology(address, PROJECT, TOPIC, "http://127.0.0.1:9")
        yield address
    finally:
        processes.stop_processes([record])


@pytest.fixture
def source(pubsub_address: str) -> Iterator[PubSubDeadLetterSource]:
    client = subscriber(pubsub_address)
    path = client.subscription_path(PROJECT, pubsub_emulator.dead_letter_subscription(TOPIC))
    drained = PubSubDeadLetterSource(client, path)
    # Each test starts from an empty hold subscription.
    while messages := drained.pull(100):
        drained.ack([m.ack_id for m in messages])
    yield drained
    client.close()


def dead_letter(pubsub_address: str, *payloads: bytes) -> None:
    client = publisher(pubsub_address)
    topic = client.topic_path(PROJECT, pubsub_emulator.dead_letter_topic(TOPIC))
    for payload in payloads:
        client.publish(topic, payload, campaign="7").result(timeout=10)


def drain_all(engine: Engine, source: PubSubDeadLetterSource, clock: FixedClock, expected: int) -> int:
    """Drain until `expected` were pulled: a pull may return fewer messages than are waiting."""
    pulled = 0
    for _ in range(20):
        report = drain_dead_letters(UnitOfWork(engine), lambda: source, clock, limit=2)
        assert report.error is None
        pulled += report.pulled
        if pulled >= expected:
            break
    return pulled


def stored(engine: Engine) -> list[tuple[bytes, dict[str, str]]]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT data, attributes FROM dead_letters ORDER BY data")).all()
    return [(bytes(r[0]), r[1]) for r in rows]


def check_now(engine: Engine, now: datetime) -> tuple[Level, str]:
    with UnitOfWork(engine) as uow:
        dead = queries.dead_letters_since(uow.session, now - timedelta(hours=24))
        drain = heartbeats.last_beat(uow.session, DEAD_LETTER_DRAIN)
    check = dead_letter_check(dead, drain, Thresholds(dead_letter_window=timedelta(hours=24)))
    return check.level, check.value


def test_dead_letters_become_rows_and_leave_the_subscription(
    engine: Engine, pubsub_address: str, source: PubSubDeadLetterSource
) -> None:
    clock = FixedClock(datetime(2030, 1, 1, 12, 0, tzinfo=UTC))
    assert check_now(engine, clock.now())[0] is Level.OK
    dead_letter(pubsub_address, b'{"page": 1}', b'{"page": 2}', b'{"page": 3}')

    assert drain_all(engine, source, clock, expected=3) == 3

    assert stored(engine) == [(b'{"page": %d}' % n, {"campaign": "7"}) for n in (1, 2, 3)]
    assert source.pull(10) == []  # acknowledged: nothing is delivered again
    level, value = check_now(engine, clock.now())
    assert (level, value) == (Level.WARNING, "3 dead-lettered pages in the last 24 h")
    # Outside the window they no longer warn.
    assert check_now(engine, clock.now() + timedelta(hours=24, seconds=1))[0] is Level.OK


class LosingAcks:
    """The real source, whose acknowledgement is lost once (a crash after the rows were committed)."""

    def __init__(self, real: PubSubDeadLetterSource) -> None:
        self.real = real
        self.subscription = real.subscription

    def pull(self, max_messages: int) -> list[PulledMessage]:
        return self.real.pull(max_messages)

    def ack(self, ack_ids: Sequence[str]) -> None:
        # Released instead: Pub/Sub delivers them again, as it would once the ack deadline passed.
        self.real._client.modify_ack_deadline(
            request={"subscription": self.subscription, "ack_ids": list(ack_ids), "ack_deadline_seconds": 0}
        )
        raise ConnectionError("ack lost")


def test_a_redelivered_dead_letter_is_stored_once_and_a_lost_ack_fails_the_check_until_the_next_drain(
    engine: Engine, pubsub_address: str, source: PubSubDeadLetterSource
) -> None:
    clock = FixedClock(datetime(2030, 1, 1, 12, 0, tzinfo=UTC))
    dead_letter(pubsub_address, b'{"page": 9}')
    report = None
    for _ in range(20):
        report = drain_dead_letters(UnitOfWork(engine), lambda: LosingAcks(source), clock, limit=10)
        if report.pulled:
            break
    assert report is not None and (report.stored, report.error) == (1, "ack failed: ConnectionError")
    level, value = check_now(engine, clock.now())
    assert level is Level.FAILING and "last drain failed: ack failed" in value

    assert drain_all(engine, source, clock, expected=1) == 1  # delivered again, stored once

    assert stored(engine) == [(b'{"page": 9}', {"campaign": "7"})]
    assert check_now(engine, clock.now())[0] is Level.WARNING
    assert source.pull(10) == []


def test_a_drain_that_cannot_reach_pubsub_is_recorded_and_fails_the_check(engine: Engine) -> None:
    clock = FixedClock(datetime(2030, 1, 1, 12, 0, tzinfo=UTC))

    def unreachable() -> PubSubDeadLetterSource:
        raise PermissionError("403 the subscriber role is missing on the hold subscription")

    report = drain_dead_letters(UnitOfWork(engine), unreachable, clock, limit=10)

    assert report.error is not None and report.error.startswith("PermissionError: 403")
    level, value = check_now(engine, clock.now())
    assert level is Level.FAILING
    assert "last drain failed: PermissionError" in value


def test_before_any_drain_the_check_says_so(engine: Engine) -> None:
    level, value = check_now(engine, datetime(2030, 1, 1, tzinfo=UTC))
    assert level is Level.OK
    assert value.endswith("never drained yet (the scheduler tick drains them)")
