"""Hostile input at the pipeline's machine doors, each answered as its transport needs (docs/architecture.md,
"Transport outcomes", shared/transport.py): a malformed Cloud Tasks task is acknowledged (2xx) and logged as
poison naming the field, since any other answer retries it for days; a malformed Pub/Sub push is
acknowledged and logged; trigger_campaign answers 4xx naming the field. Nothing is written, nothing sent
or published, and afterwards the same process (one pooled connection) serves a real request correctly."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine, text

from infra.local.cloud_tasks_emulator import CloudTasksEmulator
from infra.local.twilio_emulator import TwilioEmulator
from shared import bootstrap
from shared.bootstrap import Runtime
from shared.config import Settings, override_settings
from tests.functions.api_client import ApiClient
from tests.functions.apps import function_client
from tests.functions.hostile import (
    DEEP,
    PHONE_A,
    LogLines,
    answers_normally,
    log_lines,
    one_connection,
    seed_users,
)
from tests.functions.test_pipeline_functions import (
    PUSHER,
    SCHEDULER,
    as_caller,
    emulated,
    mint_oidc_token,
    tasks_emulator,
    twilio,
)
from tests.functions.twilio_webhook_client import fetch_one
from tests.integration.pipeline_support import RecordingPublisher, RecordingTasks, messages_of
from tests.seeding import add_campaign

__all__ = ["log_lines", "tasks_emulator", "twilio"]

# JSON no door of ours reads: each is refused, naming where.
_JSON = {
    "nested 100,000 deep": ("body", DEEP),
    "nested 5,000 deep": ("body", "[" * 5000 + "]" * 5000),
    "5000-digit number": ("body", '{"a": ' + "9" * 5000 + "}"),
    "lone surrogate escape": ("body.a", '{"a": "\\ud800"}'),
    "NUL escape": ("body.a", '{"a": "\\u0000"}'),
    "NaN": ("body.a", '{"a": NaN}'),
    "over 16 KiB": ("body", '{"a": "' + "x" * 16 * 1024 + '"}'),
    "not UTF-8": ("body", '{"a": "\xff"}'),
    "array": ("body", "[]"),
}


@pytest.fixture
def pipeline(
    database_url: str,
    engine: Engine,
    twilio: TwilioEmulator,
    tasks_emulator: CloudTasksEmulator,
) -> Iterator[tuple[Settings, RecordingPublisher, RecordingTasks]]:
    seed_users(engine)
    settings = one_connection(database_url, **emulated(twilio, tasks_emulator))
    publisher, tasks = RecordingPublisher(), RecordingTasks()
    bootstrap.install(Runtime(publisher=publisher, task_scheduler=tasks))
    yield settings, publisher, tasks
    bootstrap.reset()
    override_settings(None)


@pytest.fixture
def api(pipeline: Any) -> ApiClient:
    return ApiClient(function_client("api"))


def _client(target: str, signature: str = "http") -> FlaskClient:
    return function_client(target, signature)


def _encoded(body: str) -> bytes:
    return body.encode("latin-1") if "\xff" in body else body.encode()


def _poison(log_lines: LogLines, message: str) -> list[str]:
    return [entry["reason"] for entry in log_lines.entries() if entry["message"] == message]


def _queued_message(engine: Engine) -> tuple[int, int]:
    campaign_id = add_campaign(engine, status="RUNNING")
    with engine.begin() as conn:
        message_id = conn.execute(
            text(
                "INSERT INTO messages (campaign_id, recipient_phone, body) VALUES (:c, :p, 'Hi') RETURNING id"
            ),
            {"c": campaign_id, "p": PHONE_A},
        ).scalar_one()
    return campaign_id, int(message_id)


_TASKS = {
    **{case: (body, field) for case, (field, body) in _JSON.items()},
    "23-digit message_id": ('{"message_id": ' + "9" * 23 + ', "generation": 0}', "message_id"),
    "message_id as text": ('{"message_id": "1", "generation": 0}', "message_id"),
    "message_id true": ('{"message_id": true, "generation": 0}', "message_id"),
    "message_id 1.0": ('{"message_id": 1.0, "generation": 0}', "message_id"),
    "generation beyond INTEGER": ('{"message_id": 1, "generation": 2147483648}', "generation"),
    "negative generation": ('{"message_id": 1, "generation": -1}', "generation"),
}


def test_a_malformed_task_is_acknowledged_as_poison_naming_the_field_and_sends_nothing(
    pipeline: Any,
    api: ApiClient,
    engine: Engine,
    twilio: TwilioEmulator,
    tasks_emulator: CloudTasksEmulator,
    log_lines: LogLines,
) -> None:
    settings, _, _ = pipeline
    token = mint_oidc_token(tasks_emulator, settings.send_message_url)
    send = _client("send_message")
    for case, (body, field) in _TASKS.items():
        log_lines.lines.clear()
        sent = len(twilio.messages())
        response = send.post(
            "/", data=_encoded(body), content_type="application/json", headers={"Authorization": token}
        )
        assert response.status_code == 200, f"{case}: {response.get_data(as_text=True)}"
        (reason,) = _poison(log_lines, "malformed task acknowledged")
        assert reason.startswith(f"{field}:"), f"{case}: {reason}"
        assert len(twilio.messages()) == sent, case
        answers_normally(api, case)
        # The same process still handles a real task: sent, or (on a machine too busy to meet its rate
        # slot) handed back to the queue for later, as the sender does.
        _, message_id = _queued_message(engine)
        real = send.post(
            "/", json={"message_id": message_id, "generation": 0}, headers={"Authorization": token}
        )
        assert real.status_code == 200, f"{case}: {real.get_data(as_text=True)}"
        (status,) = fetch_one(engine, "SELECT status FROM messages WHERE id = :i", i=message_id)
        assert status in ("ACCEPTED", "QUEUED"), f"{case}: {status}"
    assert twilio.messages(), "no real task was sent at all"


_TRIGGERS = {
    **{case: (body, 413 if len(body) > 16 * 1024 else 400, field) for case, (field, body) in _JSON.items()},
    "campaign_id beyond BIGINT": ('{"campaign_id": ' + str(10**30) + "}", 400, "campaign_id"),
    "campaign_id as text": ('{"campaign_id": "1"}', 400, "campaign_id"),
    "campaign_id false": ('{"campaign_id": false}', 400, "campaign_id"),
    "campaign_id 0": ('{"campaign_id": 0}', 400, "campaign_id"),
}


def test_a_malformed_trigger_is_a_4xx_naming_the_field_and_starts_nothing(
    pipeline: Any, api: ApiClient, engine: Engine, tasks_emulator: CloudTasksEmulator
) -> None:
    settings, publisher, _ = pipeline
    trigger = _client("trigger_campaign")
    scheduler = as_caller(tasks_emulator, SCHEDULER, settings.trigger_campaign_url)
    for case, (body, status, field) in _TRIGGERS.items():
        published = len(publisher.payloads)
        response = trigger.post("/", data=_encoded(body), content_type="application/json", headers=scheduler)
        assert response.status_code == status, f"{case}: {response.get_data(as_text=True)}"
        assert response.get_json()["field"] == field, case
        assert len(publisher.payloads) == published, case
        answers_normally(api, case)
        started = trigger.post("/", json={"campaign_id": add_campaign(engine)}, headers=scheduler)
        assert (started.status_code, started.get_json()["started"]) == (200, True), case


def _push(data: bytes) -> dict[str, Any]:
    """A push subscription's request body, which functions-framework turns into a CloudEvent."""
    return {
        "message": {
            "data": base64.b64encode(data).decode(),
            "messageId": "1",
            "publishTime": "2026-01-01T00:00:00Z",
        },
        "subscription": "projects/local-project/subscriptions/campaign-recipients-fanout",
    }


_PAGE = {"campaign_id": 1, "page_no": 0, "published_at": "2026-01-01T00:00:00+00:00"}
_PAGES = {
    **{
        case: (_encoded(body), field.replace("body", "message"))
        for case, (field, body) in _JSON.items()
        if case != "over 16 KiB"
    },
    "over 1 KiB": (json.dumps({**_PAGE, "x": "x" * 1024}).encode(), "message"),
    "campaign_id beyond BIGINT": (json.dumps({**_PAGE, "campaign_id": 10**30}).encode(), "campaign_id"),
    "page_no beyond INTEGER": (json.dumps({**_PAGE, "page_no": 2**31}).encode(), "page_no"),
    "negative page_no": (json.dumps({**_PAGE, "page_no": -1}).encode(), "page_no"),
    "published_at with NUL": (
        json.dumps({**_PAGE, "published_at": "2026\x00"}).encode(),
        "message.published_at",
    ),
    "published_at without offset": (
        json.dumps({**_PAGE, "published_at": "2026-01-01T00:00:00"}).encode(),
        "published_at",
    ),
}


def test_a_malformed_page_message_is_acknowledged_and_logged_naming_the_field_and_writes_nothing(
    pipeline: Any, api: ApiClient, engine: Engine, log_lines: LogLines, tasks_emulator: CloudTasksEmulator
) -> None:
    settings, publisher, tasks = pipeline
    fanout = _client("fanout_recipients", "cloudevent")
    pusher = as_caller(tasks_emulator, PUSHER, settings.fanout_recipients_url)
    scheduler = as_caller(tasks_emulator, SCHEDULER, settings.trigger_campaign_url)
    for case, (data, field) in _PAGES.items():
        log_lines.lines.clear()
        scheduled = len(tasks.tasks)
        response = fanout.post("/", json=_push(data), headers=pusher)
        assert response.status_code == 200, f"{case}: {response.get_data(as_text=True)}"
        (reason,) = _poison(log_lines, "pub/sub message acknowledged without effect")
        assert reason.startswith(f"not a page message: {field}:"), f"{case}: {reason}"
        assert len(tasks.tasks) == scheduled, case
        answers_normally(api, case)
        # The same process still fans out a real page.
        campaign_id = add_campaign(engine)
        started = _client("trigger_campaign").post("/", json={"campaign_id": campaign_id}, headers=scheduler)
        assert started.status_code == 200
        assert fanout.post("/", json=_push(publisher.payloads[-1]), headers=pusher).status_code == 200, case
        assert len(messages_of(engine, campaign_id)) == 2, case
