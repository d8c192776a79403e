"""Campaigns driven the way an operator drives them, through the API, and the probes the pipeline figures
read their results from: message rows in PostgreSQL, tasks in the Cloud Tasks emulator, accepted messages
in the Twilio emulator.

Every template carries a WhatsApp Content template (content_sid), so a send never depends on the 24-hour
session window, as a business-initiated campaign never does.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import grpc
import requests
from google.cloud import tasks_v2
from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcTransport

from infra.bench.context import BenchContext
from infra.bench.db import connect
from infra.bench.errors import NotMeasurable
from shared.adapters.tasks import send_queue_names

CONTENT_SID = "HX" + "b" * 32
# Statuses a message waits in before Twilio has answered for it.
IN_FLIGHT = ("QUEUED", "SENDING", "AMBIGUOUS")


def create_campaign(ctx: BenchContext, name: str, rate: int, **fields: Any) -> int:
    """A DRAFT campaign to every opted-in user (an empty AND), sending a content template at `rate`/s."""
    template = create_resource(
        ctx,
        "/v1/templates",
        {
            "name": name,
            "content": "Hi {first_name}",
            "content_sid": CONTENT_SID,
            "content_variables": {"1": "first_name"},
        },
    )
    segment = create_resource(
        ctx, "/v1/segments", {"name": name, "definition": {"operator": "AND", "conditions": []}}
    )
    body = {
        "name": name,
        "template_id": template,
        "segment_id": segment,
        "rate_limit_per_second": rate,
        # Measured now, at any hour: no quiet hours rather than DEFAULT_QUIET_HOURS (a field may set some).
        "quiet_hours_start": None,
        "quiet_hours_end": None,
        **fields,
    }
    return create_resource(ctx, "/v1/campaigns", body)


def trigger(ctx: BenchContext, campaign_id: int) -> None:
    response = ctx.api("POST", f"/v1/campaigns/{campaign_id}/trigger")
    if not response.ok:
        raise RuntimeError(
            f"trigger of campaign {campaign_id} answered {response.status_code}: {response.text[:300]}"
        )


def create_resource(ctx: BenchContext, path: str, body: Mapping[str, Any]) -> int:
    """POST a resource; its id. A route that is not there (404, 501) makes the figure "not measured"."""
    return int(call(ctx, "POST", path, body, expect=201)["id"])


def call(ctx: BenchContext, method: str, path: str, body: object = None, expect: int = 200) -> Any:
    """One API call that must answer `expect`; its JSON body (None if it has none). A route that is not there yet (404, 501)
    makes the figure "not measured" rather than an error."""
    response = ctx.api(method, path, json=body)
    if response.status_code in (404, 501):
        raise NotMeasurable(f"{method} {path} answered {response.status_code}: not built yet")
    if response.status_code != expect:
        raise RuntimeError(f"{method} {path} answered {response.status_code}: {response.text[:300]}")
    return response.json() if response.content else None


def message_counts(ctx: BenchContext, campaign_id: int) -> dict[str, int]:
    conn = connect(ctx.database_url)
    try:
        rows = conn.run(
            "SELECT status, count(*) FROM messages WHERE campaign_id = :c GROUP BY status", c=campaign_id
        )
    finally:
        conn.close()
    return {str(status): int(count) for status, count in rows}


def rate_waits(ctx: BenchContext, campaign_id: int) -> dict[str, float]:
    """How often the campaign's messages went back to the queue to wait for a rate slot, and how long."""
    conn = connect(ctx.database_url)
    try:
        ((messages, deferrals, wait, generations),) = conn.run(
            "SELECT count(*) FILTER (WHERE rate_limit_deferrals > 0), coalesce(sum(rate_limit_deferrals), 0), "
            "coalesce(sum(rate_limit_wait_seconds), 0), coalesce(max(generation), 0) "
            "FROM messages WHERE campaign_id = :c",
            c=campaign_id,
        )
    finally:
        conn.close()
    return {
        "messages that waited for a slot": int(messages),
        "rate-slot deferrals": int(deferrals),
        "summed wait for slots (s)": round(float(wait), 1),
        "most generations of one message": int(generations),
    }


def pages_left(ctx: BenchContext, campaign_id: int) -> int | None:
    """Pages not yet fanned out; None before the trigger has cut any."""
    conn = connect(ctx.database_url)
    try:
        total, left = conn.run(
            "SELECT count(*), count(*) FILTER (WHERE fanned_out_at IS NULL) FROM campaign_pages WHERE campaign_id = :c",
            c=campaign_id,
        )[0]
    finally:
        conn.close()
    return None if total == 0 else int(left)


def wait_until(done: Callable[[], bool], timeout: float, what: str, interval: float = 0.25) -> float:
    """Poll until `done()`; returns the monotonic time it was first seen true."""
    deadline = time.monotonic() + timeout
    while True:
        seen = time.monotonic()
        if done():
            return seen
        if seen > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


# --- the send queues in the Cloud Tasks emulator ---


def queue_paths(ctx: BenchContext) -> list[str]:
    """Every send queue of the stack (TASKS_QUEUE_COUNT of them; one unless the environment says more)."""
    env = ctx.env
    location = f"projects/{env['GCP_PROJECT']}/locations/{env['GCP_REGION']}"
    names = send_queue_names(env["TASKS_QUEUE"], int(env.get("TASKS_QUEUE_COUNT", "1")))
    return [f"{location}/queues/{name}" for name in names]


@contextmanager
def tasks_client(ctx: BenchContext) -> Iterator[tasks_v2.CloudTasksClient]:
    # A listing of 100k tasks is tens of MB, past gRPC's default 4 MB limit on a received message.
    channel = grpc.insecure_channel(
        ctx.env["CLOUD_TASKS_EMULATOR_HOST"], options=[("grpc.max_receive_message_length", -1)]
    )
    client = tasks_v2.CloudTasksClient(transport=CloudTasksGrpcTransport(channel=channel))
    try:
        yield client
    finally:
        client.transport.close()  # type: ignore[no-untyped-call]


def queued_tasks(ctx: BenchContext) -> int:
    """Tasks in the send queues: one listing call each (the emulator snapshots a queue when it answers)."""
    with tasks_client(ctx) as client:
        # The emulator answers the whole queue in one page; BASIC leaves out the request bodies.
        return sum(
            len(
                client.list_tasks(
                    request={
                        "parent": path,
                        "page_size": 10_000_000,
                        "response_view": tasks_v2.Task.View.BASIC,
                    }
                ).tasks
            )
            for path in queue_paths(ctx)
        )


def set_queue_paused(ctx: BenchContext, paused: bool) -> None:
    with tasks_client(ctx) as client:
        for path in queue_paths(ctx):
            if paused:
                client.pause_queue(name=path)
            else:
                client.resume_queue(name=path)


def purge_queues(ctx: BenchContext) -> None:
    with tasks_client(ctx) as client:
        for path in queue_paths(ctx):
            client.purge_queue(name=path)


# --- the Twilio emulator ---


def accepted_messages(ctx: BenchContext) -> list[dict[str, Any]]:
    response = requests.get(ctx.env["TWILIO_API_URL"] + "/_emulator/messages", timeout=120)
    response.raise_for_status()
    messages: list[dict[str, Any]] = response.json()
    return messages


def acceptance_times(messages: list[dict[str, Any]]) -> list[float]:
    """When Twilio accepted each message, as sorted POSIX seconds."""
    return sorted(datetime.fromisoformat(m["created_at"]).timestamp() for m in messages)


def set_twilio_faults(ctx: BenchContext, spec: Mapping[str, Any]) -> None:
    requests.post(ctx.env["TWILIO_API_URL"] + "/_emulator/faults", json=spec, timeout=10).raise_for_status()


def configure_twilio(ctx: BenchContext, spec: Mapping[str, Any]) -> None:
    requests.post(ctx.env["TWILIO_API_URL"] + "/_emulator/config", json=spec, timeout=10).raise_for_status()


def wait_until_all_sent(ctx: BenchContext, campaign_id: int, recipients: int, timeout: float) -> None:
    """Until the campaign has a message row per recipient and none of them is still in flight (rows first:
    before the fan-out writes any, "nothing in flight" would hold vacuously)."""
    wait_until(
        lambda: sum(message_counts(ctx, campaign_id).values()) == recipients,
        timeout,
        f"campaign {campaign_id}: a message row per recipient",
    )
    wait_until(
        lambda: not any(status in IN_FLIGHT for status in message_counts(ctx, campaign_id)),
        timeout,
        f"campaign {campaign_id}: every message sent",
        interval=1.0,
    )
