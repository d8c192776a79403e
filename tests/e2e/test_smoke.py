"""`make smoke` against the local stack (through the front-end emulator, as against a deployment): every hop
passes, and each hop broken on purpose fails on its own line with its likely fix, the hops after it
skipped."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import pytest
import requests
from google.pubsub_v1 import PushConfig

from infra.deploy import smoke
from infra.local.emulator_clients import cloud_tasks, subscriber
from infra.local.pubsub_emulator import push_subscription
from infra.local.stack import LocalStack
from infra.local.tasks_queues import SCHEDULER_QUEUE

pytestmark = pytest.mark.e2e

HOPS = [
    "webhook signature",
    "operator API",
    "test recipient",
    "scheduler -> trigger_campaign",
    "Pub/Sub push -> fanout_recipients",
    "Cloud Tasks -> send_message",
    "status callback -> status_webhook",
]
# Long enough for a healthy hop on a loaded machine, short enough that a broken one fails quickly.
BROKEN_WAIT_SECONDS = 12.0


def verdicts(run: smoke.Run) -> dict[str, bool | None]:
    return {hop.name: hop.passed for hop in run.hops}


def test_every_hop_passes_on_the_local_stack(
    local_stack: LocalStack, clean_stack: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    status = smoke.main(["--local", "--state-dir", str(local_stack.state_dir), "--wait", "60"])

    output = capsys.readouterr().out
    assert status == 0, output
    assert [
        line.split()[0] for line in output.splitlines() if line.split()[:1] in (["PASS"], ["FAIL"], ["SKIP"])
    ] == ["PASS"] * len(HOPS)
    assert "all hops passed." in output


@contextmanager
def paused_queue(env: dict[str, str], queue: str) -> Iterator[None]:
    client = cloud_tasks(env["CLOUD_TASKS_EMULATOR_HOST"])
    name = client.queue_path(env["GCP_PROJECT"], env["GCP_REGION"], queue)
    client.pause_queue(name=name)
    try:
        yield
    finally:
        client.resume_queue(name=name)
        client.transport.close()  # type: ignore[no-untyped-call]


@contextmanager
def push_endpoint(env: dict[str, str], stack: LocalStack, endpoint: str) -> Iterator[None]:
    client = subscriber(env["PUBSUB_EMULATOR_HOST"])
    name = client.subscription_path(env["GCP_PROJECT"], push_subscription(env["PUBSUB_TOPIC"]))
    original = client.get_subscription(subscription=name).push_config.push_endpoint
    client.modify_push_config(subscription=name, push_config=PushConfig(push_endpoint=endpoint))
    try:
        yield
    finally:
        client.modify_push_config(subscription=name, push_config=PushConfig(push_endpoint=original))
        client.close()


@contextmanager
def slow_callbacks(env: dict[str, str]) -> Iterator[None]:
    # clean_stack restores the emulator's configuration (and drops pending callbacks) for the next test.
    requests.post(env["TWILIO_API_URL"] + "/_emulator/config", json={"callback_delay": 600}, timeout=10)
    yield


@contextmanager
def unchanged(env: dict[str, str], stack: LocalStack) -> Iterator[None]:
    yield


Breakage = Callable[[dict[str, str], LocalStack], AbstractContextManager[None]]
# hop broken: (its name, what breaks it, a Target field set wrong, what the fix line must name)
CASES: dict[str, tuple[str, Breakage, dict[str, Any], str]] = {
    "signature": ("webhook signature", unchanged, {"twilio_auth_token": "0" * 32}, "TWILIO_AUTH_TOKEN"),
    "api": ("operator API", unchanged, {"api_token": "x" * 43}, "ese-api-tokens"),
    "scheduler": (
        "scheduler -> trigger_campaign",
        lambda e, s: paused_queue(e, SCHEDULER_QUEUE),
        {},
        "ese-scheduler",
    ),
    "fanout": (
        "Pub/Sub push -> fanout_recipients",
        lambda e, s: push_endpoint(e, s, "http://127.0.0.1:9/projects/p/topics/t"),
        {},
        "ese-pubsub-push",
    ),
    "send": (
        "Cloud Tasks -> send_message",
        lambda e, s: paused_queue(e, e["TASKS_QUEUE"]),
        {},
        "ese-tasks-invoker",
    ),
    "callback": (
        "status callback -> status_webhook",
        lambda e, s: slow_callbacks(e),
        {},
        "STATUS_WEBHOOK_URL",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_broken_hop_fails_on_its_own_line_with_its_fix_and_later_hops_are_skipped(
    local_stack: LocalStack, clean_stack: dict[str, str], case: str
) -> None:
    broken, breakage, wrong, fix = CASES[case]
    target = dataclasses.replace(smoke.local_target(local_stack.state_dir, wait=BROKEN_WAIT_SECONDS), **wrong)
    lines: list[str] = []
    with breakage(clean_stack, local_stack):
        run = smoke.run_smoke(target, lines.append)

    result = verdicts(run)
    assert result[broken] is False
    assert not run.ok
    failed_line = next(line for line in lines if line.startswith("FAIL") and broken in line)
    assert "likely fix:" in failed_line and fix in failed_line
    # Hops that need the broken one are skipped, never reported as passing.
    after = HOPS[HOPS.index(broken) + 1 :]
    assert all(result[hop] is None for hop in after if _depends_on(hop, broken))


def _depends_on(hop: str, broken: str) -> bool:
    chain = {
        "test recipient": "operator API",
        "scheduler -> trigger_campaign": "operator API",
        "Pub/Sub push -> fanout_recipients": "test recipient",
        "Cloud Tasks -> send_message": "Pub/Sub push -> fanout_recipients",
        "status callback -> status_webhook": "Cloud Tasks -> send_message",
    }
    needs = chain.get(hop)
    while needs is not None:
        if needs == broken:
            return True
        needs = chain.get(needs)
    return False
