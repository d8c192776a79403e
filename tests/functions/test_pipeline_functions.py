"""trigger_campaign, fanout_recipients and send_message through functions-framework's test client, on
real PostgreSQL. send_message's OIDC tokens are real ones minted by the Cloud Tasks emulator; the Twilio
emulator answers sends; Pub/Sub and Cloud Tasks creation are recorded (what is published/scheduled)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest
from cloudevents.http import CloudEvent
from flask.testing import FlaskClient
from functions_framework import create_app
from google.cloud import tasks_v2
from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcTransport
from sqlalchemy import Engine, create_engine, text, update

from infra.local.cloud_tasks_emulator import CloudTasksEmulator
from infra.local.twilio_emulator import TwilioEmulator
from shared.adapters import clients
from shared.config import Settings, override_settings
from shared.db.engine import reset_engine
from shared.db.models import User
from shared.entrypoints import pipeline
from tests.conftest import ROOT, make_settings
from tests.emulators.conftest import LOCATION, RecordingTarget
from tests.integration.pipeline_support import (
    RecordingPublisher,
    RecordingTasks,
    add_campaign,
    add_users,
    messages_of,
)

MAIN = str(ROOT / "functions" / "main.py")
INVOKER = "ese-tasks-invoker@local-project.iam.gserviceaccount.com"


@pytest.fixture
def twilio() -> Iterator[TwilioEmulator]:
    with TwilioEmulator(callback_delay=0.01) as emulator:
        yield emulator


@pytest.fixture
def tasks_emulator() -> Iterator[CloudTasksEmulator]:
    with CloudTasksEmulator() as emulator:
        yield emulator


def emulated(twilio: TwilioEmulator, tasks_emulator: CloudTasksEmulator) -> dict[str, object]:
    """Settings that point the send path at the emulators (Twilio's API, Cloud Tasks' OIDC keys)."""
    return {
        "twilio_account_sid": twilio.account_sid,
        "twilio_auth_token": twilio.auth_token,
        "twilio_api_url": twilio.base_url,
        "oidc_certs_url": tasks_emulator.certs_url,
        "tasks_service_account_email": INVOKER,
    }


@pytest.fixture
def pipeline_settings(
    database_url: str, twilio: TwilioEmulator, tasks_emulator: CloudTasksEmulator
) -> Iterator[Settings]:
    settings = make_settings(database_url, **emulated(twilio, tasks_emulator), fanout_page_size=2)
    override_settings(settings)
    reset_engine()
    yield settings
    reset_engine()
    override_settings(None)
    clients.reset_clients()


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> tuple[RecordingPublisher, RecordingTasks]:
    publisher, tasks = RecordingPublisher(), RecordingTasks()
    monkeypatch.setattr(clients, "publisher", lambda: publisher)
    monkeypatch.setattr(clients, "task_scheduler", lambda: tasks)
    return publisher, tasks


@pytest.fixture
def db(pipeline_settings: Settings) -> Iterator[Engine]:
    assert pipeline_settings.database_url is not None
    engine = create_engine(pipeline_settings.database_url.get_secret_value())
    yield engine
    engine.dispose()


def client(target: str, signature: str = "http") -> FlaskClient:
    return create_app(target=target, source=MAIN, signature_type=signature).test_client()


def mint_oidc_token(emulator: CloudTasksEmulator, audience: str, email: str = INVOKER) -> str:
    """A token exactly as Cloud Tasks sends it: the emulator dispatches a task to a recording server."""
    target = RecordingTarget()
    try:
        tasks = tasks_v2.CloudTasksClient(
            transport=CloudTasksGrpcTransport(channel=grpc.insecure_channel(emulator.address))
        )
        queue = tasks.create_queue(parent=LOCATION, queue=tasks_v2.Queue(name=f"{LOCATION}/queues/mint"))
        http = tasks_v2.HttpRequest(
            url=target.url, oidc_token=tasks_v2.OidcToken(service_account_email=email, audience=audience)
        )
        tasks.create_task(parent=queue.name, task=tasks_v2.Task(http_request=http))
        deadline = time.monotonic() + 10
        while not target.arrivals and time.monotonic() < deadline:
            time.sleep(0.02)
        header = target.arrivals[0].header("Authorization")
        assert header is not None
        return header
    finally:
        target.stop()


def _queued_message(db: Engine) -> int:
    add_users(db, 1)
    campaign_id = add_campaign(db, status="RUNNING")
    with db.begin() as conn:
        conn.execute(update(User).values(last_inbound_at=datetime.now(UTC)))
        conn.execute(
            text(
                "INSERT INTO messages (campaign_id, recipient_phone, body) "
                "SELECT :c, phone_e164, 'Hi' FROM users"
            ),
            {"c": campaign_id},
        )
    (row,) = messages_of(db, campaign_id)
    return int(row.id)


def test_send_message_without_a_token_is_forbidden_and_sends_nothing(
    db: Engine, twilio: TwilioEmulator, recorded: Any
) -> None:
    message_id = _queued_message(db)

    response = client("send_message").post("/", json={"message_id": message_id, "generation": 0})

    assert response.status_code == 403
    assert twilio.messages() == []


def test_send_message_refuses_a_token_minted_for_another_audience(
    db: Engine, twilio: TwilioEmulator, tasks_emulator: CloudTasksEmulator, recorded: Any
) -> None:
    message_id = _queued_message(db)
    token = mint_oidc_token(tasks_emulator, "https://elsewhere.test/send_message")

    response = client("send_message").post(
        "/", json={"message_id": message_id, "generation": 0}, headers={"Authorization": token}
    )

    assert response.status_code == 403
    assert twilio.messages() == []


def test_send_message_refuses_another_service_account(
    db: Engine, pipeline_settings: Settings, tasks_emulator: CloudTasksEmulator, recorded: Any
) -> None:
    assert pipeline_settings.send_message_url is not None
    token = mint_oidc_token(
        tasks_emulator, pipeline_settings.send_message_url, email="intruder@x.iam.gserviceaccount.com"
    )

    response = client("send_message").post(
        "/", json={"message_id": 1, "generation": 0}, headers={"Authorization": token}
    )

    assert response.status_code == 403


def test_send_message_with_cloud_tasks_token_sends_and_a_malformed_task_is_acknowledged(
    db: Engine,
    pipeline_settings: Settings,
    twilio: TwilioEmulator,
    tasks_emulator: CloudTasksEmulator,
    recorded: Any,
) -> None:
    assert pipeline_settings.send_message_url is not None
    message_id = _queued_message(db)
    token = mint_oidc_token(tasks_emulator, pipeline_settings.send_message_url)
    send = client("send_message")

    sent = send.post("/", json={"message_id": message_id, "generation": 0}, headers={"Authorization": token})
    again = send.post("/", json={"message_id": message_id, "generation": 0}, headers={"Authorization": token})
    poison = send.post("/", data=b"not json", headers={"Authorization": token})

    assert (sent.status_code, again.status_code, poison.status_code) == (200, 200, 200)
    assert len(twilio.messages()) == 1


def test_trigger_campaign_starts_one_campaign_and_reports_why_another_cannot_start(
    db: Engine, recorded: tuple[RecordingPublisher, RecordingTasks]
) -> None:
    publisher, _ = recorded
    add_users(db, 3)
    ready = add_campaign(db)
    draft = add_campaign(db, status="DRAFT")
    trigger = client("trigger_campaign")

    started = trigger.post("/", json={"campaign_id": ready})
    refused = trigger.post("/", json={"campaign_id": draft})
    missing = trigger.post("/", json={"campaign_id": 999})
    malformed = trigger.post("/", json={"campaign_id": "one"})

    assert (started.status_code, started.get_json()["pages"]) == (200, 2)
    assert (refused.status_code, refused.get_json()["problem"]) == (409, "campaign is DRAFT, not READY")
    assert (missing.status_code, malformed.status_code) == (404, 400)
    assert len(publisher.payloads) == 2


def test_trigger_campaign_without_a_body_starts_due_campaigns(
    db: Engine, recorded: tuple[RecordingPublisher, RecordingTasks]
) -> None:
    add_users(db, 1)
    due = add_campaign(db, schedule_time=datetime(2020, 1, 1, tzinfo=UTC))

    response = client("trigger_campaign").post("/")

    assert response.status_code == 200
    assert [r["campaign_id"] for r in response.get_json()["started"]] == [due]


def _push(payload: bytes) -> CloudEvent:
    envelope = {
        "message": {"data": base64.b64encode(payload).decode(), "messageId": "1"},
        "subscription": "s",
    }
    return CloudEvent(
        {"type": "google.cloud.pubsub.topic.v1.messagePublished", "source": "//pubsub"}, envelope
    )


def test_fanout_recipients_fans_out_a_pushed_page_once_and_acknowledges_garbage(
    db: Engine, recorded: tuple[RecordingPublisher, RecordingTasks]
) -> None:
    publisher, tasks = recorded
    add_users(db, 2)
    campaign_id = add_campaign(db)
    client("trigger_campaign").post("/", json={"campaign_id": campaign_id})
    (payload,) = publisher.payloads

    pipeline.fanout_recipients(_push(payload))
    pipeline.fanout_recipients(_push(payload))
    pipeline.fanout_recipients(_push(b"{not json"))

    assert len(messages_of(db, campaign_id)) == 2
    assert len({(t.message_id, t.generation) for t in tasks.tasks}) == 2
    assert json.loads(payload)["campaign_id"] == campaign_id
