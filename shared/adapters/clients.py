"""The instance's heavy clients (Pub/Sub publisher, Cloud Tasks, Twilio), built on first use, never at
import, and shared by every entry point in the process. `reset_clients` drops them (tests, settings
changes); tests that want fakes monkeypatch these functions."""

from __future__ import annotations

import functools

from twilio.rest import Client

from shared.adapters.pubsub import (
    PubSubDeadLetterSource,
    PubSubPublisher,
    make_dead_letter_source,
    make_publisher,
)
from shared.adapters.tasks import (
    CloudTasksQueueInspector,
    CloudTasksScheduler,
    make_queue_inspector,
    make_task_scheduler,
)
from shared.adapters.twilio_client import make_twilio_client
from shared.adapters.twilio_lookup import TwilioMessageLookup
from shared.adapters.twilio_send import TwilioMessageSender
from shared.config import get_settings


@functools.cache
def publisher() -> PubSubPublisher:
    return make_publisher(get_settings())


@functools.cache
def task_scheduler() -> CloudTasksScheduler:
    return make_task_scheduler(get_settings())


@functools.cache
def queue_inspector() -> CloudTasksQueueInspector:
    return make_queue_inspector(get_settings())


@functools.cache
def dead_letter_source() -> PubSubDeadLetterSource:
    return make_dead_letter_source(get_settings())


@functools.cache
def _twilio() -> Client:
    settings = get_settings()
    if not settings.twilio_account_sid or settings.twilio_auth_token is None:
        raise RuntimeError("TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN must be set to talk to Twilio")
    return make_twilio_client(
        settings.twilio_account_sid,
        settings.twilio_auth_token.get_secret_value(),
        settings.twilio_api_url,
        settings.twilio_timeout_seconds,
    )


@functools.cache
def twilio_sender() -> TwilioMessageSender:
    settings = get_settings()
    return TwilioMessageSender(_twilio(), settings.twilio_from, settings.twilio_messaging_service_sid)


@functools.cache
def twilio_lookup() -> TwilioMessageLookup:
    settings = get_settings()
    return TwilioMessageLookup(_twilio(), settings.twilio_from, settings.twilio_messaging_service_sid)


def reset_clients() -> None:
    for factory in (
        publisher,
        task_scheduler,
        queue_inspector,
        dead_letter_source,
        _twilio,
        twilio_sender,
        twilio_lookup,
    ):
        factory.cache_clear()
