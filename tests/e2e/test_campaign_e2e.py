"""The campaign pipeline end to end on the local stack: trigger -> Pub/Sub -> fan-out -> Cloud Tasks ->
send_message -> Twilio emulator -> status callbacks. Everything is measured where it matters: at the
Twilio emulator (what was accepted, and when) and in the ledger.

The session's stack runs with short retry delays and Twilio timeout (tests/e2e/conftest.py, E2E_ENVIRON).
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from datetime import time as wall_time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, available_timezones

import pytest
import requests
from google.cloud import pubsub_v1
from sqlalchemy import Engine, func, insert, select, update

from infra.local.stack import LocalStack
from shared.db.models import Campaign, CampaignPage, Message, User
from shared.domain.quiet_hours import QuietHours, window_end
from shared.domain.send_schedule import spacing
from shared.services.page_publishing import PageMessage
from tests.e2e.conftest import E2E_ENVIRON
from tests.seeding import add_campaign

pytestmark = pytest.mark.e2e

ACCEPTED = {"ACCEPTED", "SENT", "DELIVERED", "READ"}


class Stack:
    """The running stack as a test drives it: seed rows, call the API, read the emulator and the ledger."""

    def __init__(self, env: dict[str, str], engine: Engine) -> None:
        self.env, self.engine = env, engine
        self.twilio = env["TWILIO_API_URL"]

    def users(self, phones: list[str], consent: str = "OPT_IN", **attributes: Any) -> list[str]:
        """Users who wrote to us a minute ago (inside the 24-hour window, so free-form Body may be sent)."""
        inbound = datetime.now(UTC) - timedelta(minutes=1)
        with self.engine.begin() as conn:
            conn.execute(
                insert(User),
                [
                    {
                        "phone_e164": p,
                        "consent_state": consent,
                        "attributes": {"name": "Ana", **attributes},
                        "last_inbound_at": inbound,
                    }
                    for p in phones
                ],
            )
        return phones

    def campaign(
        self,
        *,
        rate: int = 80,
        content_sid: str | None = None,
        quiet: tuple[wall_time, wall_time] | None = None,
        timezone: str = "UTC",
    ) -> int:
        return add_campaign(
            self.engine,
            name="e2e",
            content="Hello {name}",
            content_sid=content_sid,
            content_variables={"1": "name"} if content_sid else None,
            rate=rate,
            quiet=quiet,
            timezone=timezone,
        )

    def trigger(self, campaign_id: int) -> dict[str, Any]:
        """As an operator starts a campaign now: the API (trigger_campaign admits only the scheduler)."""
        return self.action(campaign_id, "trigger")

    def action(self, campaign_id: int, action: str) -> dict[str, Any]:
        response = requests.post(
            f"{self.env['API_URL']}/v1/campaigns/{campaign_id}/{action}",
            headers={"Authorization": f"Bearer {self.env['API_TOKEN']}"},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def faults(self, spec: dict[str, Any]) -> None:
        requests.post(self.twilio + "/_emulator/faults", json=spec, timeout=5).raise_for_status()

    def accepted(self) -> list[dict[str, Any]]:
        response = requests.get(self.twilio + "/_emulator/messages", timeout=10)
        response.raise_for_status()
        messages: list[dict[str, Any]] = response.json()
        return messages

    def accepted_to(self) -> Counter[str]:
        return Counter(m["to"].removeprefix("whatsapp:") for m in self.accepted())

    def sent_count(self, campaign_id: int) -> int:
        """Messages Twilio accepted, from the ledger: polling the database, not the emulator, keeps the
        measuring instrument (the emulator's clock) free of the test's own load."""
        with self.engine.connect() as conn:
            statement = select(func.count()).where(
                Message.campaign_id == campaign_id, Message.status.in_(ACCEPTED | {"AMBIGUOUS"})
            )
            return int(conn.execute(statement).scalar_one())

    def status(self, campaign_id: int) -> str:
        with self.engine.connect() as conn:
            return str(conn.execute(select(Campaign.status).where(Campaign.id == campaign_id)).scalar_one())

    def ledger(self, campaign_id: int) -> dict[str, Any]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(Message).where(Message.campaign_id == campaign_id)).all()
        return {row.recipient_phone: row for row in rows}


@pytest.fixture
def stack(clean_stack: dict[str, str], stack_engine: Engine) -> Stack:
    return Stack(clean_stack, stack_engine)


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.2)


def phones(prefix: int, count: int) -> list[str]:
    return [f"+1{prefix:03d}555{n:04d}" for n in range(count)]


def max_in_any_second(instants: list[datetime]) -> int:
    ordered, best, start = sorted(instants), 0, 0
    for end, at in enumerate(ordered):
        while at - ordered[start] >= timedelta(seconds=1):
            start += 1
        best = max(best, end - start + 1)
    return best


def created_at(messages: list[dict[str, Any]]) -> list[datetime]:
    return [datetime.fromisoformat(m["created_at"]) for m in messages]


# --- the tests ---


def test_a_thousand_recipients_with_20_percent_transient_faults_each_get_exactly_one_message(
    stack: Stack,
) -> None:
    eligible = stack.users(phones(201, 1000))
    stopped = stack.users(phones(202, 30), consent="STOP")
    opted_out = stack.users(phones(203, 20), consent="OPT_OUT")
    for n, number in enumerate(eligible):  # half 429, half 500, each 20% of the time
        status, code = (429, 20429) if n % 2 else (500, 20500)
        stack.faults({"to": number, "rate": 0.2, "http_status": status, "error_code": code})
    campaign_id = stack.campaign(rate=80)

    started = stack.trigger(campaign_id)
    wait_for(lambda: stack.status(campaign_id) == "COMPLETED", 120, "the campaign to complete")

    assert started["recipients"] == 1000
    sent = stack.accepted_to()
    assert set(sent) == set(eligible) and set(sent.values()) == {1}
    assert not set(sent) & set(stopped + opted_out)
    ledger = stack.ledger(campaign_id)
    assert len(ledger) == 1000 and {row.status for row in ledger.values()} <= ACCEPTED
    assert sum(row.retry_count for row in ledger.values()) > 100  # the faults really happened, ~250 expected
    assert max_in_any_second(created_at(stack.accepted())) <= 80


def _zones_by_offset(at: datetime) -> dict[timedelta, list[str]]:
    zones: dict[timedelta, list[str]] = {}
    for name in sorted(available_timezones()):
        if name.startswith(("Etc/", "posix", "right")) or "/" not in name:
            continue
        offset = at.astimezone(ZoneInfo(name)).utcoffset()
        if offset is not None and offset % timedelta(hours=1) == timedelta(0):
            zones.setdefault(offset, []).append(name)
    return zones


def _pick_offset(now: datetime, zones: dict[timedelta, list[str]]) -> timedelta:
    """A whole-hour offset where it is now between 03:00 and 12:00, with zones 2 h east and west of it."""
    for hours in range(-10, 13):
        offset = timedelta(hours=hours)
        local = (now + offset).time()
        if (
            wall_time(3) <= local < wall_time(12)
            and all(len(zones.get(offset + d, [])) >= 1 for d in (timedelta(hours=-2), timedelta(hours=2)))
            and len(zones.get(offset, [])) >= 3
        ):
            return offset
    raise AssertionError("no suitable timezone offset right now")


def test_rate_ceiling_holds_at_the_emulator_and_quiet_hours_defer_to_each_window_end(stack: Stack) -> None:
    """20 msg/s; quiet hours 23:00 -> (now + 10 s) in zone Z cross midnight. Recipients in three zones at Z's
    offset are deferred ~10 s; zones 2 h east are outside the window (sent at once); 2 h west are inside
    until their own 'end', 2 h away, and stay queued for it, not dropped."""
    now = datetime.now(UTC)
    zones = _zones_by_offset(now)
    offset = _pick_offset(now, zones)
    near, east, west = (
        zones[offset][:3],
        zones[offset + timedelta(hours=2)][0],
        zones[offset - timedelta(hours=2)][0],
    )
    local_end = (now + offset + timedelta(seconds=10)).time().replace(microsecond=0)
    window = QuietHours(wall_time(23), local_end)
    regular = stack.users(phones(301, 150), timezone=east)
    deferred = [p for i, zone in enumerate(near) for p in stack.users(phones(310 + i, 10), timezone=zone)]
    far = stack.users(phones(320, 20), timezone=west)
    campaign_id = stack.campaign(rate=20, quiet=(window.start, window.end), timezone=near[0])

    stack.trigger(campaign_id)
    wait_for(lambda: stack.sent_count(campaign_id) >= 180, 60, "every recipient outside the far window")
    time.sleep(1.5)  # nothing else may arrive

    messages = stack.accepted()
    at = created_at(messages)
    assert len(messages) == 180
    assert max_in_any_second(at) <= 20
    # 180 sends at 20/s take about 9 s (the deferred ones fit in the stream once their window ends).
    assert timedelta(seconds=179 / 20) <= max(at) - min(at) <= timedelta(seconds=14)
    near_end = window_end(now, window, ZoneInfo(near[0]))
    by_number = {m["to"].removeprefix("whatsapp:"): datetime.fromisoformat(m["created_at"]) for m in messages}
    assert all(by_number[p] >= near_end for p in deferred)
    assert set(by_number) == set(regular) | set(deferred)
    ledger = stack.ledger(campaign_id)
    far_end = window_end(now, window, ZoneInfo(west))
    assert far_end - now > timedelta(hours=1)
    step = spacing(20, float(E2E_ENVIRON["RATE_SAFETY_MARGIN"]))
    assert [(ledger[p].status, ledger[p].scheduled_at) for p in far] == [
        ("QUEUED", far_end + k * step) for k in range(20)
    ]
    stack.action(campaign_id, "cancel")


def _send_message_worker_pid(local_stack: LocalStack) -> int:
    """The gunicorn worker under send_message's master: killing it kills the request in flight, and the
    master starts a new worker, as a crashed Cloud Functions instance is replaced."""
    master = local_stack.pid("send_message")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == master:
            return int(stat.parent.name)
    raise AssertionError("send_message has no worker process")


def test_redelivered_page_duplicate_task_and_a_killed_sender_send_nothing_twice(
    stack: Stack, local_stack: LocalStack
) -> None:
    recipients = stack.users(phones(401, 5))
    victim = recipients[2]
    # The victim's send is accepted at once but answered after 2.5 s: the worker is killed in between.
    stack.faults({"to": victim, "rate": 1, "accept": True, "delay": 2.5})
    campaign_id = stack.campaign(rate=1)

    stack.trigger(campaign_id)
    wait_for(lambda: victim in stack.accepted_to(), 30, "the victim's send to reach Twilio")
    os.kill(_send_message_worker_pid(local_stack), signal.SIGKILL)

    with stack.engine.connect() as conn:
        page = conn.execute(select(CampaignPage.page_no, CampaignPage.published_at)).one()
        first_id = conn.execute(select(Message.id).order_by(Message.id)).scalars().first()
    _publish_again(stack.env, PageMessage(campaign_id, page.page_no, page.published_at))
    _dispatch_again(stack.env, first_id)
    wait_for(lambda: stack.status(campaign_id) == "COMPLETED", 90, "the campaign to complete")
    time.sleep(2)  # let any late duplicate surface

    sent = stack.accepted_to()
    assert set(sent) == set(recipients) and set(sent.values()) == {1}
    victim_row = stack.ledger(campaign_id)[victim]
    (victim_sid,) = [m["sid"] for m in stack.accepted() if m["to"].endswith(victim)]
    # Reconciled from Twilio's callbacks, matched by the message id in the StatusCallback URL.
    assert (victim_row.provider_sid, victim_row.status in {"SENT", "DELIVERED", "READ"}) == (victim_sid, True)


def _publish_again(env: dict[str, str], page: PageMessage) -> None:
    os.environ["PUBSUB_EMULATOR_HOST"] = env["PUBSUB_EMULATOR_HOST"]
    publisher = pubsub_v1.PublisherClient()
    publisher.publish(publisher.topic_path(env["GCP_PROJECT"], env["PUBSUB_TOPIC"]), page.encode()).result(10)


def _dispatch_again(env: dict[str, str], message_id: int | None) -> None:
    """A second task with the same body: Cloud Tasks delivering one task twice, as send_message sees it."""
    from google.cloud import tasks_v2

    from infra.local.emulator_clients import cloud_tasks

    client = cloud_tasks(env["CLOUD_TASKS_EMULATOR_HOST"])
    queue = client.queue_path(env["GCP_PROJECT"], env["GCP_REGION"], env["TASKS_QUEUE"])
    http = tasks_v2.HttpRequest(
        url=env["SEND_MESSAGE_URL"],
        body=f'{{"message_id": {message_id}, "generation": 0}}'.encode(),
        headers={"Content-Type": "application/json"},
        oidc_token=tasks_v2.OidcToken(
            service_account_email=env["TASKS_SERVICE_ACCOUNT_EMAIL"], audience=env["SEND_MESSAGE_URL"]
        ),
    )
    client.create_task(parent=queue, task=tasks_v2.Task(http_request=http))
    client.transport.close()  # type: ignore[no-untyped-call]  # gRPC transport, untyped


def test_a_stop_mid_campaign_wins_and_pause_holds_sends_until_resume(stack: Stack) -> None:
    recipients = stack.users(phones(501, 30))
    stopper = recipients[-1]  # sent last: planned sends follow phone order
    campaign_id = stack.campaign(rate=5)

    stack.trigger(campaign_id)
    wait_for(lambda: stack.sent_count(campaign_id) >= 5, 30, "the first sends")
    reply = requests.post(
        stack.twilio + "/_emulator/inbound", json={"from": stopper, "body": "STOP"}, timeout=10
    )
    reply.raise_for_status()
    stack.action(campaign_id, "pause")
    time.sleep(1.5)  # a send admitted just before the pause may still finish
    held = len(stack.accepted())
    time.sleep(3)
    assert len(stack.accepted()) == held < 30
    stack.action(campaign_id, "resume")
    wait_for(lambda: stack.status(campaign_id) == "COMPLETED", 60, "the campaign to complete")

    sent = stack.accepted_to()
    assert set(sent) == set(recipients) - {stopper} and set(sent.values()) == {1}
    stopped = stack.ledger(campaign_id)[stopper]
    assert (stopped.status, stopped.status_reason) == ("WITHHELD", "consent revoked before sending")
    assert max_in_any_second(created_at(stack.accepted())) <= 5


def test_cancel_withholds_what_is_left_with_the_reason(stack: Stack) -> None:
    recipients = stack.users(phones(601, 20))
    campaign_id = stack.campaign(rate=2)

    stack.trigger(campaign_id)
    wait_for(lambda: stack.sent_count(campaign_id) >= 3, 30, "the first sends")
    stack.action(campaign_id, "cancel")
    time.sleep(1.5)
    after_cancel = len(stack.accepted())
    time.sleep(2.5)

    assert len(stack.accepted()) == after_cancel < len(recipients)
    ledger = stack.ledger(campaign_id)
    withheld = {p for p, row in ledger.items() if row.status == "WITHHELD"}
    assert withheld == set(recipients) - set(stack.accepted_to())
    assert {ledger[p].status_reason for p in withheld} == {"campaign cancelled"}
    assert stack.status(campaign_id) == "CANCELLED"


def test_inside_the_24_hour_window_body_is_sent_and_outside_it_the_content_sid(stack: Stack) -> None:
    talked, silent = stack.users(phones(701, 2))
    with stack.engine.begin() as conn:
        conn.execute(update(User).where(User.phone_e164 == silent).values(last_inbound_at=None))
    content_sid = "HX" + "cd" * 16
    campaign_id = stack.campaign(content_sid=content_sid)

    stack.trigger(campaign_id)
    wait_for(lambda: stack.status(campaign_id) == "COMPLETED", 30, "the campaign to complete")

    by_number = {m["to"].removeprefix("whatsapp:"): m for m in stack.accepted()}
    assert (by_number[talked]["body"], by_number[talked]["content_sid"]) == ("Hello Ana", None)
    assert (by_number[silent]["content_sid"], by_number[silent]["content_variables"]) == (
        content_sid,
        {"1": "Ana"},
    )
