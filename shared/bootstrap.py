"""The one place the process's dependencies are built: its settings and clock, the database engine, and the
heavy clients (Pub/Sub publisher and dead-letter subscriber, Cloud Tasks, Twilio).

A `Runtime` builds each of them on first use, once, under a lock: never at import and never when the
runtime itself is made, because a Cloud Function's cold start pays for everything done before its first
answer, and most requests need only some of them (a status callback never talks to Twilio). Tests pass
fakes to the constructor instead of patching modules:

    bootstrap.install(Runtime(publisher=RecordingPublisher(), task_scheduler=RecordingTasks()))
    ...
    bootstrap.reset()  # closes what the runtime built; the next runtime() starts afresh

The entry points, the API's request context and the dashboard's views take what they need from
`runtime()` at request time; the services below them are handed it and never come here themselves.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar, cast

from sqlalchemy import Engine
from twilio.rest import Client

from shared.adapters.pubsub import DeadLetterSource, Publisher, make_dead_letter_source, make_publisher
from shared.adapters.tasks import (
    QueueInspector,
    TaskScheduler,
    make_queue_inspector,
    make_task_scheduler,
)
from shared.adapters.twilio_client import make_twilio_client
from shared.adapters.twilio_lookup import MessageLookup, TwilioMessageLookup
from shared.adapters.twilio_send import MessageSender, TwilioMessageSender
from shared.clock import Clock, SystemClock
from shared.config import Settings, get_settings
from shared.db.engine import make_engine
from shared.db.unit_of_work import UnitOfWork
from shared.services.webhook_errors import RefusalTally

log = logging.getLogger(__name__)

T = TypeVar("T")

_ENGINE = "engine"
_PUBLISHER = "publisher"
_TASK_SCHEDULER = "task_scheduler"
_QUEUE_INSPECTOR = "queue_inspector"
_DEAD_LETTER_SOURCE = "dead_letter_source"
_TWILIO = "twilio"
_TWILIO_SENDER = "twilio_sender"
_TWILIO_LOOKUP = "twilio_lookup"


class Runtime:
    """What one process's entry points share. Every argument is optional: what is given is used as is
    (and never closed here: its owner closes it), what is not is built from the settings on first use.

    `settings`, when not given, is the process's (`shared.config.get_settings()`), read on each use, so a
    test's `override_settings` reaches the entry points as it always did; the engine and clients are built
    from the settings as they are when first needed, and kept until `close()`.
    """

    def __init__(
        self,
        *,
        settings: Settings | None = None,
        clock: Clock | None = None,
        engine: Engine | None = None,
        publisher: Publisher | None = None,
        task_scheduler: TaskScheduler | None = None,
        twilio_sender: MessageSender | None = None,
        twilio_lookup: MessageLookup | None = None,
        queue_inspector: QueueInspector | None = None,
        dead_letter_source: DeadLetterSource | None = None,
        refusals: RefusalTally | None = None,
    ) -> None:
        self._settings = settings
        # The webhooks' refusals not yet written (shared.services.webhook_errors): one tally a process.
        self.refusals = refusals if refusals is not None else RefusalTally()
        self.clock: Clock = clock if clock is not None else SystemClock()
        given: dict[str, object | None] = {
            _ENGINE: engine,
            _PUBLISHER: publisher,
            _TASK_SCHEDULER: task_scheduler,
            _TWILIO_SENDER: twilio_sender,
            _TWILIO_LOOKUP: twilio_lookup,
            _QUEUE_INSPECTOR: queue_inspector,
            _DEAD_LETTER_SOURCE: dead_letter_source,
        }
        self._given = {name: value for name, value in given.items() if value is not None}
        # Reentrant: the Twilio sender and lookup are built on the one Twilio client, itself built lazily.
        self._lock = threading.RLock()
        self._built: dict[str, object] = {}
        # How to close each thing this runtime built, in the order it was built.
        self._closers: list[tuple[str, Callable[[], None]]] = []

    @property
    def settings(self) -> Settings:
        return self._settings if self._settings is not None else get_settings()

    @property
    def engine(self) -> Engine:
        return self._get(_ENGINE, self._make_engine)

    @property
    def publisher(self) -> Publisher:
        return self._get(_PUBLISHER, self._make_publisher)

    @property
    def task_scheduler(self) -> TaskScheduler:
        return self._get(_TASK_SCHEDULER, self._make_task_scheduler)

    @property
    def twilio_sender(self) -> MessageSender:
        return self._get(_TWILIO_SENDER, self._make_twilio_sender)

    @property
    def twilio_lookup(self) -> MessageLookup:
        return self._get(_TWILIO_LOOKUP, self._make_twilio_lookup)

    @property
    def queue_inspector(self) -> QueueInspector:
        """The send queue's state and statistics, for the health report."""
        return self._get(_QUEUE_INSPECTOR, lambda: make_queue_inspector(self.settings))

    @property
    def dead_letter_source(self) -> DeadLetterSource:
        """The dead-letter hold subscription the scheduler tick drains."""
        return self._get(_DEAD_LETTER_SOURCE, lambda: make_dead_letter_source(self.settings))

    def uow(self) -> UnitOfWork:
        """A new unit of work on this runtime's engine (one per service call, as before)."""
        return UnitOfWork(self.engine)

    def close(self) -> None:
        """Close what this runtime built (the engine's pool, the clients' connections and threads), newest
        first; what it was given is left to its owner. A later use builds afresh."""
        with self._lock:
            closers, self._closers, self._built = self._closers, [], {}
        for name, close in reversed(closers):
            try:
                close()
            except Exception:  # one failing close must not keep the others open
                log.warning("closing the runtime's %s failed", name, exc_info=True)

    def _get(self, name: str, build: Callable[[], T]) -> T:
        # The hot path (every request after the first) is two dictionary lookups and no lock.
        value = self._given.get(name)
        if value is None:
            value = self._built.get(name)
            if value is None:
                with self._lock:
                    value = self._built.get(name)
                    if value is None:
                        value = self._built[name] = build()
        return cast(T, value)

    def _make_engine(self) -> Engine:
        engine = make_engine(self.settings)
        self._closers.append((_ENGINE, engine.dispose))
        return engine

    def _make_publisher(self) -> Publisher:
        publisher = make_publisher(self.settings)
        self._closers.append((_PUBLISHER, publisher.close))
        return publisher

    def _make_task_scheduler(self) -> TaskScheduler:
        scheduler = make_task_scheduler(self.settings)
        self._closers.append((_TASK_SCHEDULER, scheduler.close))
        return scheduler

    def _twilio(self) -> Client:
        return self._get(_TWILIO, self._make_twilio)

    def _make_twilio(self) -> Client:
        settings = self.settings
        if not settings.twilio_account_sid or settings.twilio_auth_token is None:
            raise RuntimeError("TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN must be set to talk to Twilio")
        client = make_twilio_client(
            settings.twilio_account_sid,
            settings.twilio_auth_token.get_secret_value(),
            settings.twilio_api_url,
            settings.twilio_timeout_seconds,
        )
        session: Any = getattr(client.http_client, "session", None)
        if session is not None:
            self._closers.append((_TWILIO, session.close))
        return client

    def _make_twilio_sender(self) -> MessageSender:
        settings = self.settings
        return TwilioMessageSender(
            self._twilio(), settings.twilio_from, settings.twilio_messaging_service_sid
        )

    def _make_twilio_lookup(self) -> MessageLookup:
        settings = self.settings
        return TwilioMessageLookup(
            self._twilio(), settings.twilio_from, settings.twilio_messaging_service_sid
        )


_lock = threading.Lock()
_runtime: Runtime | None = None


def runtime() -> Runtime:
    """The process's runtime, made on first use (which builds nothing yet: each dependency waits for its
    own first use)."""
    global _runtime
    current = _runtime
    if current is None:
        with _lock:
            if _runtime is None:
                _runtime = Runtime()
            current = _runtime
    return current


def install(replacement: Runtime) -> None:
    """Make `replacement` the process's runtime (tests: fakes, another database); the one it replaces is
    closed."""
    global _runtime
    with _lock:
        previous, _runtime = _runtime, replacement
    if previous is not None and previous is not replacement:
        previous.close()


def reset() -> None:
    """Close and drop the process's runtime; the next `runtime()` makes a new one (tests switch databases
    and settings between tests)."""
    global _runtime
    with _lock:
        previous, _runtime = _runtime, None
    if previous is not None:
        previous.close()
