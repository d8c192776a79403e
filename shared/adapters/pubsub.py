"""The publisher for campaign pages: batched, and confirmed (every future waited on) before the caller
records a page as published. The client honours PUBSUB_EMULATOR_HOST by itself."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from shared.config import Settings

# Waiting longer than this for one batch means the publish failed; the scheduler republishes the page.
PUBLISH_TIMEOUT_SECONDS = 30.0


class Publisher(Protocol):
    def publish(self, payloads: Sequence[bytes]) -> None:
        """Publish every payload; raise if any was not confirmed."""


class PubSubPublisher:
    def __init__(self, client: Any, topic_path: str) -> None:
        self._client = client
        self._topic_path = topic_path

    def publish(self, payloads: Sequence[bytes]) -> None:
        futures = [self._client.publish(self._topic_path, payload) for payload in payloads]
        for future in futures:
            future.result(timeout=PUBLISH_TIMEOUT_SECONDS)

    def close(self) -> None:
        """Stop the client's batching (every publish above already waited for its messages)."""
        self._client.stop()


def make_publisher(settings: Settings) -> PubSubPublisher:
    import google.cloud.pubsub_v1 as pubsub_v1

    # Pages are small; batching many per request is what makes a 2,000-page start take well under a second.
    batching = pubsub_v1.types.BatchSettings(max_messages=1000, max_bytes=1_000_000, max_latency=0.01)
    client = pubsub_v1.PublisherClient(batch_settings=batching)
    return PubSubPublisher(client, client.topic_path(settings.gcp_project, settings.pubsub_topic))


@dataclass(frozen=True)
class PulledMessage:
    ack_id: str
    message_id: str
    data: bytes
    attributes: dict[str, str]
    published_at: datetime | None
    delivery_attempt: int | None


class DeadLetterSource(Protocol):
    subscription: str

    def pull(self, max_messages: int) -> list[PulledMessage]:
        """Up to `max_messages` waiting messages (fewer, or none, is normal); raises if it cannot pull."""

    def ack(self, ack_ids: Sequence[str]) -> None:
        """Acknowledge what was stored, so it is not delivered again."""


# A synchronous pull on an empty subscription is held open until its deadline (messages that are there come
# back at once): "the system may wait (for a bounded amount of time) until at least one message is
# available" (PullRequest.return_immediately, whose `true` Google discourages:
# https://cloud.google.com/python/docs/reference/pubsub/latest/google.cloud.pubsub_v1.types.PullRequest). The scheduler tick drains every minute, and a tick must not wait on an empty hold
# subscription for long: the local stack ticks every 2 s through a queue that dispatches one at a time, and
# a 5 s wait there piled the ticks up. A dead letter missed by one short pull is drained by the next tick.
PULL_TIMEOUT_SECONDS = 1.0


class PubSubDeadLetterSource:
    def __init__(self, client: Any, subscription_path: str) -> None:
        self._client = client
        self.subscription = subscription_path

    def pull(self, max_messages: int) -> list[PulledMessage]:
        from google.api_core.exceptions import DeadlineExceeded

        try:
            response = self._client.pull(
                request={"subscription": self.subscription, "max_messages": max_messages},
                retry=None,
                timeout=PULL_TIMEOUT_SECONDS,
            )
        except DeadlineExceeded:
            return []
        return [
            PulledMessage(
                ack_id=received.ack_id,
                message_id=received.message.message_id,
                data=bytes(received.message.data),
                attributes=dict(received.message.attributes),
                published_at=received.message.publish_time or None,
                delivery_attempt=received.delivery_attempt or None,
            )
            for received in response.received_messages
        ]

    def ack(self, ack_ids: Sequence[str]) -> None:
        if ack_ids:
            self._client.acknowledge(
                request={"subscription": self.subscription, "ack_ids": list(ack_ids)}, timeout=10.0
            )


def make_dead_letter_source(settings: Settings) -> PubSubDeadLetterSource:
    import google.cloud.pubsub_v1 as pubsub_v1

    client = pubsub_v1.SubscriberClient()
    path = client.subscription_path(settings.gcp_project, settings.dead_letter_subscription)
    return PubSubDeadLetterSource(client, path)
