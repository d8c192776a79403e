"""The health report and the overview through the `api` function, and the webhooks counting their
refusals, on real PostgreSQL (docs/architecture.md, "Health checks"). The send queue is the fake of
tests/functions/conftest.py; its real client is tested against the emulator in tests/emulators."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, text

from shared import bootstrap
from shared.adapters.tasks import QueueStatus
from shared.bootstrap import Runtime
from shared.config import Settings, override_settings
from shared.services.webhook_errors import RefusalTally
from tests.functions.api_client import ApiClient, api
from tests.functions.conftest import FakeQueue
from tests.functions.dashboard_client import DashboardClient, operator, visitor
from tests.functions.twilio_webhook_client import TwilioWebhookClient, count_rows, seed_campaign_message
from tests.seeding import add_campaign, add_users

__all__ = ["api", "operator", "visitor"]


@pytest.fixture(autouse=True)
def patient_database_check(settings: Settings) -> None:
    # The database check's latency threshold is tested without a clock (tests/functions/test_api_health.py).
    override_settings(settings.model_copy(update={"health_db_warning_ms": 60_000.0}))


def _tick(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO heartbeats (name, at, detail) VALUES ('scheduler_tick', :at, '{}')"),
            {"at": datetime.now(UTC)},
        )


def checks(api: ApiClient) -> tuple[str, dict[str, dict[str, Any]]]:
    response = api.get("/v1/monitoring/health")
    assert response.status_code == 200
    body = response.get_json()
    return body["status"], {c["name"]: c for c in body["checks"]}


def test_a_paused_send_queue_fails_the_report_with_what_the_queue_holds(
    api: ApiClient, engine: Engine, fake_queue: FakeQueue
) -> None:
    _tick(engine)
    status, before = checks(api)
    assert status == "ok", {n: c["level"] for n, c in before.items()}
    assert before["send queue"]["value"] == "RUNNING, 0 tasks, 0 run in the last minute"

    oldest = datetime.now(UTC) - timedelta(minutes=2)
    fake_queue.current = QueueStatus("PAUSED", 1200, oldest, 0, 0)
    status, after = checks(api)

    assert status == "failing"
    queue = after["send queue"]
    assert queue["level"] == "failing"
    assert queue["value"].startswith("PAUSED, 1200 tasks, oldest ")
    assert queue["threshold"].startswith("failing when paused, disabled or unreadable")
    assert queue["at"] is not None


def test_every_check_names_its_level_value_and_threshold(api: ApiClient, engine: Engine) -> None:
    _tick(engine)
    _, report = checks(api)

    assert list(report) == [
        "database",
        "scheduler",
        "send queue",
        "stuck messages",
        "webhook errors",
        "dead letters",
        "reconciliation",
        "repairs",
    ]
    for check in report.values():
        assert check["level"] in ("ok", "warning", "failing")
        assert check["value"] and check["threshold"]


@pytest.fixture
def status_webhook(settings: Settings) -> Iterator[TwilioWebhookClient]:
    assert settings.status_webhook_url is not None
    yield TwilioWebhookClient("status_webhook", settings.status_webhook_url)


def _callback(sid: str) -> dict[str, str]:
    return {
        "AccountSid": "AC" + "0" * 32,
        "MessageSid": sid,
        "MessageStatus": "sent",
        "To": "whatsapp:+14155550100",
    }


def test_webhook_refusals_are_counted_and_successes_write_no_counter(
    api: ApiClient, engine: Engine, status_webhook: TwilioWebhookClient
) -> None:
    _tick(engine)
    sid = "SM" + uuid.uuid4().hex
    seed_campaign_message(engine, "+14155550100", status="ACCEPTED", provider_sid=sid)

    # Each refusal written as it comes (a process writes them at most every 10 s: tested on its own in
    # tests/integration/test_health_checks.py).
    bootstrap.install(Runtime(refusals=RefusalTally(every=timedelta(0))))
    assert status_webhook.post(_callback(sid)).status_code == 200
    assert count_rows(engine, "webhook_errors") == 0  # the success path writes no counter

    for _ in range(5):
        assert status_webhook.post_unsigned(_callback(sid)).status_code == 403

    with engine.connect() as conn:
        row = conn.execute(text("SELECT webhook, status, count FROM webhook_errors")).one()
    assert tuple(row) == ("status_webhook", 403, 5)
    _, report = checks(api)
    webhooks = report["webhook errors"]
    assert webhooks["value"] == "last hour: 5 of 6 refused (83.3%): 5 x 403 (status)"
    assert webhooks["level"] == "failing"


def test_dashboard_summary_counts_users_campaigns_by_state_and_active_as_ready_plus_running(
    api: ApiClient, engine: Engine
) -> None:
    add_users(engine, 3)
    add_users(engine, 2, consent="STOP", start=10)
    running = add_campaign(engine, status="RUNNING", name="running")
    ready = add_campaign(engine, status="READY", name="ready")
    add_campaign(engine, status="DRAFT", name="draft")
    add_campaign(engine, status="COMPLETED", name="done")

    body = api.get("/v1/monitoring/dashboard").get_json()

    assert (body["total_users"], body["opted_in_users"]) == (5, 3)
    assert body["active_campaign_count"] == 2
    assert [(c["id"], c["status"]) for c in body["active_campaigns"]] == [
        (running, "RUNNING"),
        (ready, "READY"),
    ]
    assert body["campaigns_by_state"] == {
        "DRAFT": 1,
        "READY": 1,
        "RUNNING": 1,
        "PAUSED": 0,
        "COMPLETED": 1,
        "CANCELLED": 0,
    }


def _row(html: str, check: str) -> str:
    match = re.search(
        rf'<tr class="check check-(\w+)" data-check="{check}" data-level="(\w+)">(.*?)</tr>', html, re.S
    )
    assert match is not None, f"no row for {check}"
    assert match.group(1) == match.group(2)
    return match.group(0)


def test_overview_panel_shows_each_check_with_its_level_value_and_threshold(
    operator: DashboardClient, engine: Engine, fake_queue: FakeQueue
) -> None:
    _tick(engine)
    html = operator.get("/ui/").get_data(as_text=True)
    assert 'id="health-status">ok<' in html
    assert 'data-check="send queue" data-level="ok"' in _row(html, "send queue")

    fake_queue.current = QueueStatus("PAUSED", 3, None, 0, 0)
    page = operator.get("/ui/")
    html = page.get_data(as_text=True)

    assert page.status_code == 200
    assert 'class="health health-failing"' in html
    assert 'id="health-status">failing<' in html
    queue = _row(html, "send queue")
    assert 'data-level="failing"' in queue
    assert '<span class="level level-failing">failing</span>' in queue
    assert "PAUSED, 3 tasks" in queue
    assert "failing when paused, disabled or unreadable" in queue
    assert 'data-level="ok"' in _row(html, "database")


def test_overview_cards_show_users_active_campaigns_and_states(
    operator: DashboardClient, engine: Engine
) -> None:
    add_users(engine, 2)
    add_users(engine, 1, consent="OPT_OUT", start=10)
    add_campaign(engine, status="READY")
    add_campaign(engine, status="RUNNING")
    add_campaign(engine, status="PAUSED")

    html = operator.get("/ui/").get_data(as_text=True)

    assert re.search(r'id="total-users">3<', html)
    assert re.search(r'id="opted-in">2<', html)
    assert re.search(r'id="active-campaigns">2<', html)
    assert re.search(r'data-state="PAUSED"><a href="/ui/campaigns\?status=PAUSED">1</a>', html)
    assert html.count('class="badge status-') == 2  # READY and RUNNING listed as active
