"""The whole local stack behind the front-end emulator, as deployed functions sit behind Google's front end:
what a caller from outside meets, what Cloud Tasks' dispatches carry to send_message, and the dashboard's
forms over HTTPS with a browser's Origin."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest
import requests
from google.auth import exceptions as auth_exceptions
from google.auth.transport.requests import Request
from google.cloud import tasks_v2
from google.oauth2 import id_token
from sqlalchemy import Engine, text

from infra.local.emulator_clients import cloud_tasks
from infra.local.front_end import FrontEnd, Route
from infra.local.front_end.table import invoker_emails
from infra.local.stack import LocalStack
from shared.adapters.oidc import SIGNATURE_REMOVED, CallerPolicy, verified_caller
from tests.emulators.conftest import RecordingTarget

pytestmark = pytest.mark.e2e
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def recording_send_message(local_stack: LocalStack) -> Iterator[tuple[FrontEnd, RecordingTarget]]:
    """A front end with send_message's row of the table (internal ingress, the tasks invoker only), the
    stack's CA and issuer, in front of a server that records what the container would see."""
    assert local_stack.ca is not None
    target = RecordingTarget()
    entry = local_stack.table["send_message"]
    route = Route(
        "send_message",
        int(target.url.split(":")[2].split("/")[0]),
        entry.ingress,
        public=entry.public,
        invokers=invoker_emails(entry, local_stack.env["GCP_PROJECT"]),
        timeout_seconds=entry.timeout_seconds,
    )
    with FrontEnd([route], local_stack.ca, local_stack.env["OIDC_CERTS_URL"]) as front_end:
        yield front_end, target
    target.stop()


def test_a_cloud_tasks_dispatch_reaches_send_message_with_its_signature_removed(
    clean_stack: dict[str, str], recording_send_message: tuple[FrontEnd, RecordingTarget]
) -> None:
    """What send_message receives from a real dispatch through the front end: a token the old
    signature-only check refuses (so no message was ever sent), and the claim check accepts."""
    front_end, target = recording_send_message
    url = front_end.url("send_message")
    client = cloud_tasks(clean_stack["CLOUD_TASKS_EMULATOR_HOST"])
    queue = client.queue_path(
        clean_stack["GCP_PROJECT"], clean_stack["GCP_REGION"], clean_stack["TASKS_QUEUE"]
    )
    oidc = tasks_v2.OidcToken(service_account_email=clean_stack["TASKS_SERVICE_ACCOUNT_EMAIL"], audience=url)
    client.create_task(
        parent=queue, task=tasks_v2.Task(http_request=tasks_v2.HttpRequest(url=url, oidc_token=oidc))
    )
    client.transport.close()  # type: ignore[no-untyped-call]  # gRPC transport, untyped
    deadline = time.monotonic() + 30
    while not target.arrivals and time.monotonic() < deadline:
        time.sleep(0.05)

    (arrival,) = target.arrivals
    authorization = str(arrival.header("Authorization"))
    assert authorization.endswith("." + SIGNATURE_REMOVED)
    with pytest.raises((ValueError, auth_exceptions.GoogleAuthError)):
        id_token.verify_token(
            authorization.removeprefix("Bearer "),
            Request(),
            audience=url,
            certs_url=clean_stack["OIDC_CERTS_URL"],
        )
    policy = CallerPolicy(
        audience=url,
        allowed=frozenset({clean_stack["TASKS_SERVICE_ACCOUNT_EMAIL"]}),
        issuer=clean_stack["OIDC_ISSUER"],
        certs_url=clean_stack["OIDC_CERTS_URL"],
    )
    assert (
        verified_caller({"Authorization": authorization}, policy)
        == clean_stack["TASKS_SERVICE_ACCOUNT_EMAIL"]
    )


def test_an_outside_caller_never_reaches_a_restricted_function(
    clean_stack: dict[str, str], stack_engine: Engine
) -> None:
    with stack_engine.begin() as conn:
        before = conn.execute(text("SELECT count(*) FROM campaigns")).scalar_one()
    for name in ("SEND_MESSAGE_URL", "TRIGGER_CAMPAIGN_URL", "FANOUT_RECIPIENTS_URL"):
        answer = requests.post(clean_stack[name], json={"campaign_id": 1}, timeout=10)
        # Internal ingress: Google's 404 page, whatever the body or headers.
        assert answer.status_code == 404, name
        assert "<h1>Error: Not Found</h1>" in answer.text
    forged = requests.post(
        clean_stack["SEND_MESSAGE_URL"],
        json={"message_id": 1, "generation": 0},
        headers={"Authorization": f"Bearer header.payload.{SIGNATURE_REMOVED}"},
        timeout=10,
    )
    assert forged.status_code == 404
    with stack_engine.begin() as conn:
        assert conn.execute(text("SELECT count(*) FROM campaigns")).scalar_one() == before


def test_dashboard_form_from_the_public_origin_succeeds_and_from_another_origin_is_refused(
    clean_stack: dict[str, str],
) -> None:
    api = clean_stack["API_URL"]
    with requests.Session() as browser:
        form = browser.get(api + "/ui/signin", timeout=10)
        assert form.status_code == 200
        match = _CSRF.search(form.text)
        assert match is not None
        data = {"token": clean_stack["API_TOKEN"], "csrf_token": match.group(1)}

        foreign = browser.post(
            api + "/ui/signin",
            data=data,
            headers={"Origin": "https://evil.example"},
            allow_redirects=False,
            timeout=10,
        )
        ours = browser.post(
            api + "/ui/signin", data=data, headers={"Origin": api}, allow_redirects=False, timeout=10
        )

        assert foreign.status_code == 403
        assert ours.status_code == 302
        # Behind TLS the session cookie is Secure, as the function saw X-Forwarded-Proto: https.
        assert "secure" in ours.headers["Set-Cookie"].lower()
        assert browser.get(api + "/ui/", allow_redirects=False, timeout=10).status_code == 200


def test_a_body_over_32_mib_gets_413_from_the_front_end(clean_stack: dict[str, str]) -> None:
    answer = requests.post(
        clean_stack["API_URL"] + "/v1/users/import",
        data=b"x" * (33 * 1024 * 1024),
        headers={"Authorization": f"Bearer {clean_stack['API_TOKEN']}", "Content-Type": "text/csv"},
        timeout=60,
    )
    assert answer.status_code == 413
    assert "Request Entity Too Large" in answer.text


def test_a_scheduled_campaign_is_started_by_the_scheduler_through_the_front_end(
    clean_stack: dict[str, str], stack_engine: Engine
) -> None:
    """The scheduler's tick is a Cloud Tasks request (internal) with the scheduler's token: the campaign
    starts only if the front end admits it and trigger_campaign accepts the stripped token."""
    api, headers = clean_stack["API_URL"], {"Authorization": f"Bearer {clean_stack['API_TOKEN']}"}
    with stack_engine.begin() as conn:
        conn.execute(text("INSERT INTO users (phone_e164, consent_state) VALUES ('+14155550777', 'OPT_IN')"))
    template = requests.post(
        api + "/v1/templates", json={"name": "fe", "content": "Hi"}, headers=headers, timeout=10
    )
    segment = requests.post(
        api + "/v1/segments",
        json={"name": "fe", "definition": {"operator": "AND", "conditions": []}},
        headers=headers,
        timeout=10,
    )
    campaign = requests.post(
        api + "/v1/campaigns",
        json={
            "name": "scheduled",
            "template_id": template.json()["id"],
            "segment_id": segment.json()["id"],
            "schedule_time": "2020-01-01T00:00:00Z",
        },
        headers=headers,
        timeout=10,
    )
    assert campaign.status_code == 201, campaign.text
    campaign_id = campaign.json()["id"]
    ready = requests.post(f"{api}/v1/campaigns/{campaign_id}/ready", headers=headers, timeout=10)
    assert ready.status_code == 200, ready.text

    deadline = time.monotonic() + 30
    status = "READY"
    while status == "READY" and time.monotonic() < deadline:
        time.sleep(0.5)
        status = requests.get(f"{api}/v1/campaigns/{campaign_id}", headers=headers, timeout=10).json()[
            "status"
        ]
    assert status in ("RUNNING", "COMPLETED")


def test_settings_of_the_functions_name_the_front_end_urls(clean_stack: dict[str, str]) -> None:
    for key in (
        "API_URL",
        "INBOUND_WEBHOOK_URL",
        "STATUS_WEBHOOK_URL",
        "SEND_MESSAGE_URL",
        "TRIGGER_CAMPAIGN_URL",
    ):
        assert clean_stack[key].startswith("https://127.0.0.1:"), key
