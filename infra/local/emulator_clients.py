"""The real Google clients, pointed at a local emulator by address rather than through the environment.

The clients would also honour PUBSUB_EMULATOR_HOST, but setting it in the runner's (or pytest's) own
environment would redirect every other client in that process too. Passing an insecure channel is
exactly what the clients do themselves when they see the variable.

Each channel keeps its own subchannels (`grpc.use_local_subchannel_pool`): gRPC otherwise shares them per
address across the process, and a channel made right after an emulator restarted would inherit the dead
one's connection failure and its reconnect backoff.
"""

from __future__ import annotations

import google.cloud.pubsub_v1 as pubsub_v1
import grpc
from google.cloud import tasks_v2
from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcTransport
from google.pubsub_v1.services.publisher.transports import PublisherGrpcTransport
from google.pubsub_v1.services.subscriber.transports import SubscriberGrpcTransport


def _channel(address: str) -> grpc.Channel:
    return grpc.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)])


def publisher(address: str) -> pubsub_v1.PublisherClient:
    return pubsub_v1.PublisherClient(transport=PublisherGrpcTransport(channel=_channel(address)))


def subscriber(address: str) -> pubsub_v1.SubscriberClient:
    return pubsub_v1.SubscriberClient(transport=SubscriberGrpcTransport(channel=_channel(address)))


def cloud_tasks(address: str) -> tasks_v2.CloudTasksClient:
    return tasks_v2.CloudTasksClient(transport=CloudTasksGrpcTransport(channel=_channel(address)))
