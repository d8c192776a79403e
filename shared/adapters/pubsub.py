"""The publisher for campaign pages: batched, and confirmed (every future waited on) before the caller
records a page as published. The client honours PUBSUB_EMULATOR_HOST by itself."""

from __future__ import annotations

from collections.abc import Sequence
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
