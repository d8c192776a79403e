"""trigger_campaign, fanout_recipients and send_message through functions-framework's test client, on
real PostgreSQL. ID tokens are real ones from the Cloud Tasks emulator's issuer (send_message's through a
real dispatch), presented as a direct caller would (signed) or as Google's front end forwards them (the
signature replaced by SIGNATURE_REMOVED_BY_GOOGLE); the Twilio emulator answers sends; Pub/Sub and Cloud
Tasks creation are recorded (what is published/scheduled)."""

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
from google.cloud import tasks_v2
from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcTransport
from pydantic import SecretStr
from sqlalchemy import Engine, create_engine, text, update

from infra.local.cloud_tasks_emulator import CloudTasksEmulator
from infra.local.twilio_emulator import TwilioEmulator
from shared import bootstrap
from shared.adapters.oidc import SIGNATURE_REMOVED
from shared.bootstrap import Runtime
from shared.config import Settings, override_settings
from shared.db.models import User
from shared.entrypoints import pipeline
from shared.services.page_publishing import PageMessage
from tests.conftest import make_settings
from tests.emulators.conftest import LOCATION, RecordingTarget
from tests.functions.apps import function_client
from tests.integration.pipeline_support import RecordingPublisher, RecordingTasks, messages_of
from tests.resetting_server import resetting_server
from tests.seeding import add_campaign, add_users

INVOKER = "ese-tasks-invoker@local-project.iam.gserviceaccount.com"
SCHEDULER = "ese-scheduler@local-project.iam.gserviceaccount.com"
PUSHER = "ese-pubsub-push@local-project.iam.gserviceaccount.com"


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
        "oidc_issuer": tasks_emulator.oidc_issuer,
        # One process serves all three doors here; deployed, each gets only its own caller.
        "oidc_allowed_emails": f"{INVOKER},{SCHEDULER},{PUSHER}",
        "tasks_service_account_email": INVOKER,
        "fanout_recipients_url": "https://example.test/fanout_recipients",
    }


@pytest.fixture
def pipeline_settings(
    database_url: str, twilio: TwilioEmulator, tasks_emulator: CloudTasksEmulator
) -> Iterator[Settings]:
    settings = make_settings(database_url, **emulated(twilio, tasks_emulator), fanout_page_size=2)
    override_settings(settings)
    bootstrap.reset()
    yield settings
    bootstrap.reset()
    override_settings(None)


def recording_runtime(recorded: tuple[RecordingPublisher, RecordingTasks]) -> Runtime:
    """A process runtime whose publisher and task scheduler record; the rest is built from the settings."""
    publisher, tasks = recorded
    return Runtime(publisher=publisher, task_scheduler=tasks)


@pytest.fixture
def recorded(pipeline_settings: Settings) -> Iterator[tuple[RecordingPublisher, RecordingTasks]]:
    fakes = RecordingPublisher(), RecordingTasks()
    bootstrap.install(recording_runtime(fakes))
    yield fakes
    bootstrap.reset()


@pytest.fixture
def db(pipeline_settings: Settings) -> Iterator[Engine]:
    assert pipeline_settings.database_url is not None
    engine = create_engine(pipeline_settings.database_url.get_secret_value())
    yield engine
    engine.dispose()


def client(target: str, signature: str = "http") -> FlaskClient:
    return function_client(target, signature)


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


def stripped(authorization: str) -> str:
    """The header as Google's front end forwards an accepted token: the signature replaced."""
    header, payload, _ = authorization.removeprefix("Bearer ").split(".")
    return f"Bearer {header}.{payload}.{SIGNATURE_REMOVED}"


def as_caller(tasks_emulator: CloudTasksEmulator, email: str, audience: str | None) -> dict[str, str]:
    assert audience is not None
    return {"Authorization": f"Bearer {tasks_emulator.mint_id_token(email, audience)}"}


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


def _assert_send_refused(twilio: TwilioEmulator, message_id: int, headers: dict[str, str]) -> None:
    """send_message refuses the task with 403 and nothing reaches Twilio."""
    response = client("send_message").post(
        "/", json={"message_id": message_id, "generation": 0}, headers=headers
    )
    assert response.status_code == 403
    assert twilio.messages() == []


def test_send_message_without_a_token_is_forbidden_and_sends_nothing(
    db: Engine, twilio: TwilioEmulator, recorded: Any
) -> None:
    message_id = _queued_message(db)

    _assert_send_refused(twilio, message_id, {})


def test_send_message_refuses_a_token_minted_for_another_audience(
    db: Engine, twilio: TwilioEmulator, tasks_emulator: CloudTasksEmulator, recorded: Any
) -> None:
    message_id = _queued_message(db)
    token = mint_oidc_token(tasks_emulator, "https://elsewhere.test/send_message")

    _assert_send_refused(twilio, message_id, {"Authorization": token})


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


def test_send_message_accepts_the_front_ends_stripped_token_and_checks_its_claims(
    db: Engine,
    pipeline_settings: Settings,
    twilio: TwilioEmulator,
    tasks_emulator: CloudTasksEmulator,
    recorded: Any,
) -> None:
    message_id = _queued_message(db)
    url = pipeline_settings.send_message_url
    wrong_audience = stripped(as_caller(tasks_emulator, INVOKER, "https://elsewhere.test")["Authorization"])
    wrong_caller = stripped(
        as_caller(tasks_emulator, "intruder@x.iam.gserviceaccount.com", url)["Authorization"]
    )
    accepted = stripped(as_caller(tasks_emulator, INVOKER, url)["Authorization"])
    send = client("send_message")
    body = {"message_id": message_id, "generation": 0}

    refused = [
        send.post("/", json=body, headers={"Authorization": h}) for h in (wrong_audience, wrong_caller)
    ]
    assert [r.status_code for r in refused] == [403, 403]
    assert twilio.messages() == []

    sent = send.post("/", json=body, headers={"Authorization": accepted})
    assert sent.status_code == 200
    assert len(twilio.messages()) == 1


def test_a_token_in_x_serverless_authorization_is_the_one_checked(
    db: Engine, pipeline_settings: Settings, tasks_emulator: CloudTasksEmulator, recorded: Any
) -> None:
    message_id = _queued_message(db)
    token = stripped(as_caller(tasks_emulator, INVOKER, pipeline_settings.send_message_url)["Authorization"])
    send = client("send_message")
    body = {"message_id": message_id, "generation": 0}

    # Authorization is the caller's own business then; the serverless header decides.
    ok = send.post("/", json=body, headers={"X-Serverless-Authorization": token, "Authorization": "Bearer x"})
    assert ok.status_code == 200
    refused = send.post(
        "/", json=body, headers={"X-Serverless-Authorization": "Bearer x", "Authorization": token}
    )
    assert refused.status_code == 403


def test_send_message_refuses_everyone_when_no_caller_is_configured(
    db: Engine,
    pipeline_settings: Settings,
    twilio: TwilioEmulator,
    tasks_emulator: CloudTasksEmulator,
    recorded: Any,
) -> None:
    override_settings(pipeline_settings.model_copy(update={"oidc_allowed_emails": None}))
    message_id = _queued_message(db)
    headers = as_caller(tasks_emulator, INVOKER, pipeline_settings.send_message_url)

    _assert_send_refused(twilio, message_id, headers)


def test_an_expired_stripped_token_is_refused(
    db: Engine, pipeline_settings: Settings, twilio: TwilioEmulator, recorded: Any
) -> None:
    message_id = _queued_message(db)
    claims = {
        "aud": pipeline_settings.send_message_url,
        "iss": pipeline_settings.oidc_issuer,
        "email": INVOKER,
        "email_verified": True,
        "exp": int(time.time()) - 60,
    }
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    token = f"Bearer eyJhbGciOiJSUzI1NiJ9.{payload}.{SIGNATURE_REMOVED}"

    _assert_send_refused(twilio, message_id, {"Authorization": token})


def test_trigger_campaign_refuses_a_caller_that_is_not_the_scheduler(
    db: Engine,
    pipeline_settings: Settings,
    tasks_emulator: CloudTasksEmulator,
    recorded: tuple[RecordingPublisher, RecordingTasks],
) -> None:
    publisher, _ = recorded
    override_settings(pipeline_settings.model_copy(update={"oidc_allowed_emails": SCHEDULER}))
    add_users(db, 1)
    ready = add_campaign(db)
    trigger = client("trigger_campaign")
    url = pipeline_settings.trigger_campaign_url

    anonymous = trigger.post("/", json={"campaign_id": ready})
    tasks_invoker = trigger.post(
        "/", json={"campaign_id": ready}, headers=as_caller(tasks_emulator, INVOKER, url)
    )

    assert (anonymous.status_code, tasks_invoker.status_code) == (403, 403)
    assert publisher.payloads == []


def test_trigger_campaign_starts_one_campaign_and_reports_why_another_cannot_start(
    db: Engine,
    pipeline_settings: Settings,
    tasks_emulator: CloudTasksEmulator,
    recorded: tuple[RecordingPublisher, RecordingTasks],
) -> None:
    publisher, _ = recorded
    add_users(db, 3)
    ready = add_campaign(db)
    draft = add_campaign(db, status="DRAFT")
    trigger = client("trigger_campaign")
    headers = as_caller(tasks_emulator, SCHEDULER, pipeline_settings.trigger_campaign_url)

    started = trigger.post("/", json={"campaign_id": ready}, headers=headers)
    refused = trigger.post("/", json={"campaign_id": draft}, headers=headers)
    missing = trigger.post("/", json={"campaign_id": 999}, headers=headers)
    malformed = trigger.post("/", json={"campaign_id": "one"}, headers=headers)

    assert (started.status_code, started.get_json()["pages"]) == (200, 2)
    assert (refused.status_code, refused.get_json()["problem"]) == (409, "campaign is DRAFT, not READY")
    assert (missing.status_code, malformed.status_code) == (404, 400)
    assert len(publisher.payloads) == 2


def test_trigger_campaign_without_a_body_starts_due_campaigns(
    db: Engine,
    pipeline_settings: Settings,
    tasks_emulator: CloudTasksEmulator,
    recorded: tuple[RecordingPublisher, RecordingTasks],
) -> None:
    add_users(db, 1)
    due = add_campaign(db, schedule_time=datetime(2020, 1, 1, tzinfo=UTC))
    headers = as_caller(tasks_emulator, SCHEDULER, pipeline_settings.trigger_campaign_url)

    response = client("trigger_campaign").post("/", headers=headers)

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
    db: Engine,
    pipeline_settings: Settings,
    tasks_emulator: CloudTasksEmulator,
    recorded: tuple[RecordingPublisher, RecordingTasks],
) -> None:
    publisher, tasks = recorded
    add_users(db, 2)
    campaign_id = add_campaign(db)
    trigger = as_caller(tasks_emulator, SCHEDULER, pipeline_settings.trigger_campaign_url)
    client("trigger_campaign").post("/", json={"campaign_id": campaign_id}, headers=trigger)
    (payload,) = publisher.payloads
    push = as_caller(tasks_emulator, PUSHER, pipeline_settings.fanout_recipients_url)

    pipeline.fanout_recipients(_push(payload), push)
    pipeline.fanout_recipients(_push(payload), push)
    pipeline.fanout_recipients(_push(b"{not json"), push)

    assert len(messages_of(db, campaign_id)) == 2
    assert len({(t.message_id, t.generation) for t in tasks.tasks}) == 2
    assert json.loads(payload)["campaign_id"] == campaign_id


def test_fanout_recipients_refuses_a_push_without_the_push_accounts_token_and_writes_nothing(
    db: Engine,
    pipeline_settings: Settings,
    tasks_emulator: CloudTasksEmulator,
    recorded: tuple[RecordingPublisher, RecordingTasks],
) -> None:
    override_settings(pipeline_settings.model_copy(update={"oidc_allowed_emails": PUSHER}))
    add_users(db, 2)
    campaign_id = add_campaign(db)
    payload = PageMessage(campaign_id, 0, datetime.now(UTC)).encode()
    envelope = {
        "message": {"data": base64.b64encode(payload).decode(), "messageId": "7"},
        "subscription": "s",
    }
    fanout = client("fanout_recipients", "cloudevent")
    stranger = as_caller(tasks_emulator, INVOKER, pipeline_settings.fanout_recipients_url)

    anonymous = fanout.post("/projects/p/topics/t", json=envelope)
    wrong = fanout.post("/projects/p/topics/t", json=envelope, headers=stranger)

    # Not acknowledged (a nack): Pub/Sub redelivers the page rather than losing it.
    assert (anonymous.status_code, wrong.status_code) == (403, 403)
    assert messages_of(db, campaign_id) == []


def test_a_database_resetting_connections_as_they_open_is_a_503_on_send_message_and_trigger_campaign(
    pipeline_settings: Settings,
    tasks_emulator: CloudTasksEmulator,
    recorded: tuple[RecordingPublisher, RecordingTasks],
) -> None:
    """The database drops each connection during its startup exchange: unavailable, so retry later
    (Cloud Tasks retries the 503; the scheduler's next tick is the trigger's retry). Not a 500."""
    with resetting_server() as port:
        override_settings(
            pipeline_settings.model_copy(
                update={"database_url": SecretStr(f"postgresql+pg8000://postgres@127.0.0.1:{port}/x")}
            )
        )
        bootstrap.install(recording_runtime(recorded))  # a new engine, on the new database URL
        send = client("send_message").post(
            "/",
            json={"message_id": 1, "generation": 0},
            headers=as_caller(tasks_emulator, INVOKER, pipeline_settings.send_message_url),
        )
        tick = client("trigger_campaign").post(
            "/", headers=as_caller(tasks_emulator, SCHEDULER, pipeline_settings.trigger_campaign_url)
        )
        bootstrap.install(recording_runtime(recorded))  # the engine on the resetting server closed with it

    assert send.status_code == 503
    assert "Retry-After" not in send.headers  # the queue's own backoff decides (infra/terraform/tasks.tf)
    assert (tick.status_code, tick.get_json()) == (503, {"error": "database unavailable"})
