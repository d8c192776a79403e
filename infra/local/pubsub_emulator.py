"""Google's Pub/Sub emulator, and the topics and subscriptions infra/terraform/pubsub.tf creates, made
through the real client.

The shape is production's: the `campaign-recipients` topic; a push subscription `<topic>-fanout` that
delivers to `fanout_recipients` with a retry policy and a dead-letter topic; a `-dead-letter-hold` pull
subscription that keeps dead-lettered pages for inspection. The push endpoint carries the topic in its
path, where functions-framework reads it when it turns the push envelope into a CloudEvent.

Differences, on purpose: redelivery backs off 1 s to 60 s instead of 10 s to 600 s, so an end-to-end
test of a transient failure sees the redelivery without waiting minutes; and the push carries no OIDC
token (in production Cloud Run's IAM checks it before the function runs, so the function never reads
it). The emulator stores the dead-letter policy but, as its documentation warns, may not enforce it.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

from google.pubsub_v1 import DeadLetterPolicy, PushConfig, RetryPolicy, Subscription, Topic

from infra.local.emulator_clients import publisher, subscriber

LAUNCHER = Path("/usr/lib/google-cloud-sdk/platform/pubsub-emulator/bin/cloud-pubsub-emulator")
# As terraform: the ack deadline is also the push request timeout, so it is fanout_recipients' timeout.
ACK_DEADLINE_SECONDS = 540
MAX_DELIVERY_ATTEMPTS = 10
RETENTION = timedelta(days=1)
LOCAL_MIN_BACKOFF = timedelta(seconds=1)
LOCAL_MAX_BACKOFF = timedelta(seconds=60)


def command(port: int) -> list[str]:
    """The SDK's own launcher, which ends in `exec java`: the PID we record is the Java process."""
    if not LAUNCHER.exists():
        raise SystemExit(f"{LAUNCHER} not found: install google-cloud-cli-pubsub-emulator and Java 17")
    return [str(LAUNCHER), "--host=127.0.0.1", f"--port={port}"]


def marker(port: int) -> str:
    """Part of both the launcher's command line and the Java process's that replaces it."""
    return f"--host=127.0.0.1 --port={port}"


def dead_letter_topic(topic: str) -> str:
    return f"{topic}-dead-letter"


def push_subscription(topic: str) -> str:
    return f"{topic}-fanout"


def dead_letter_subscription(topic: str) -> str:
    return f"{topic}-dead-letter-hold"


def push_endpoint(fanout_url: str, project: str, topic: str) -> str:
    origin = urlsplit(fanout_url)
    return f"{origin.scheme}://{origin.netloc}/projects/{project}/topics/{topic}"


def create_topology(address: str, project: str, topic: str, fanout_url: str) -> None:
    """Create the topics and subscriptions on a freshly started emulator."""
    pub, sub = publisher(address), subscriber(address)
    topic_path = pub.topic_path(project, topic)
    dlq_path = pub.topic_path(project, dead_letter_topic(topic))
    pub.create_topic(request=Topic(name=topic_path, message_retention_duration=RETENTION))
    pub.create_topic(name=dlq_path)
    sub.create_subscription(
        name=sub.subscription_path(project, dead_letter_subscription(topic)),
        topic=dlq_path,
        ack_deadline_seconds=60,
    )
    sub.create_subscription(
        request=Subscription(
            name=sub.subscription_path(project, push_subscription(topic)),
            topic=topic_path,
            push_config=PushConfig(push_endpoint=push_endpoint(fanout_url, project, topic)),
            ack_deadline_seconds=ACK_DEADLINE_SECONDS,
            message_retention_duration=RETENTION,
            retry_policy=RetryPolicy(minimum_backoff=LOCAL_MIN_BACKOFF, maximum_backoff=LOCAL_MAX_BACKOFF),
            dead_letter_policy=DeadLetterPolicy(
                dead_letter_topic=dlq_path, max_delivery_attempts=MAX_DELIVERY_ATTEMPTS
            ),
        )
    )
    pub.transport.close()
    sub.close()
