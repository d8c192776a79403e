"""The sweeper and reconciliation with Twilio on real PostgreSQL, against the Twilio emulator through the
real SDK (its Messages list and fetch), with the real clock: what a lost answer, a dead sender, lost
callbacks, lost tasks and lost pushes leave behind is repaired, exactly once."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, insert, select, text, update
from sqlalchemy.orm import Session

from infra.local.twilio_emulator import TwilioEmulator
from shared.adapters.tasks import SendTask
from shared.adapters.twilio_client import make_twilio_client
from shared.adapters.twilio_lookup import TwilioMessageLookup
from shared.clock import SystemClock
from shared.db.models import AuditEvent, Campaign, CampaignPage, Message, User, UserSender
from shared.db.queries.campaigns import complete_if_done
from shared.db.queries.reports import repairs_of_campaign
from shared.db.unit_of_work import UnitOfWork
from shared.services.reconciliation import ReconcileConfig
from shared.services.sender import send_message
from shared.services.sweeper import SweepConfig, SweepReport, sweep
from tests.integration.pipeline_support import RecordingPublisher, RecordingTasks
from tests.integration.send_harness import CONFIG, SENDER, twilio_sender
from tests.seeding import add_senders, add_users, queued_message

NOW_SWEEP = SweepConfig(
    reconcile=ReconcileConfig(
        settle_after=timedelta(0), call_window=timedelta(seconds=2), stale_after=timedelta(0)
    ),
    sending_gone_after=timedelta(seconds=30),
    task_overdue_after=timedelta(minutes=5),
    page_overdue_after=timedelta(minutes=15),
)


class World:
    def __init__(self, engine: Engine, twilio: TwilioEmulator) -> None:
        self.engine, self.twilio = engine, twilio
        self.tasks, self.publisher = RecordingTasks(), RecordingPublisher()
        client = make_twilio_client(twilio.account_sid, twilio.auth_token, twilio.base_url, 5)
        self.lookup = TwilioMessageLookup(client, SENDER, None)

    def queued(self) -> int:
        message_id = queued_message(self.engine)
        with self.engine.begin() as conn:  # inside the 24-hour window at the real time of the test
            conn.execute(update(User).values(last_inbound_at=datetime.now(UTC)))
        return message_id

    def send(self, message_id: int, generation: int = 0, timeout: float = 5) -> None:
        sender = twilio_sender(self.twilio.account_sid, self.twilio.auth_token, self.twilio.base_url, timeout)
        send_message(
            UnitOfWork(self.engine),
            sender,
            self.tasks,
            SystemClock(),
            time.sleep,
            CONFIG,
            message_id,
            generation,
        )

    def sweep(self, config: SweepConfig = NOW_SWEEP) -> SweepReport:
        return sweep(UnitOfWork(self.engine), self.tasks, self.lookup, self.publisher, SystemClock(), config)

    def another(self) -> int:
        """A second QUEUED message in the same campaign, to another user."""
        (phone,) = add_users(self.engine, 1, start=3)
        with self.engine.begin() as conn:
            conn.execute(update(User).values(last_inbound_at=datetime.now(UTC)))
            campaign_id = conn.execute(select(Message.campaign_id).limit(1)).scalar_one()
            return int(
                conn.execute(
                    insert(Message).returning(Message.id),
                    [{"campaign_id": campaign_id, "recipient_phone": phone, "body": "Hi"}],
                ).scalar_one()
            )

    def row(self, message_id: int) -> Message:
        with self.engine.connect() as conn:
            return conn.execute(select(Message).where(Message.id == message_id)).one()  # type: ignore[return-value]

    def audit_kinds(self) -> list[str]:
        with self.engine.connect() as conn:
            return list(conn.execute(select(AuditEvent.kind).order_by(AuditEvent.id)).scalars())


@pytest.fixture
def world(engine: Engine, twilio: TwilioEmulator) -> World:
    return World(engine, twilio)


def test_a_lost_answer_twilio_accepted_is_reconciled_as_sent_and_never_resent(world: World) -> None:
    message_id = world.queued()
    world.twilio.set_faults({"rate": 1, "accept": True, "delay": 1.0})
    world.send(message_id, timeout=0.3)  # Twilio records it, its answer comes after the SDK gave up
    world.twilio.set_faults({"rate": 0})
    assert world.row(message_id).status == "AMBIGUOUS"

    report = world.sweep()

    (accepted,) = world.twilio.messages()
    row = world.row(message_id)
    assert (report.reconciled_found, report.reconciled_resent) == (1, 0)
    assert row.provider_sid == accepted["sid"]
    assert row.status in ("ACCEPTED", "SENT", "DELIVERED", "READ")
    assert world.tasks.tasks == []
    assert "reconcile.found" in world.audit_kinds()
    # A second sweep changes nothing: settled is settled.
    assert world.sweep().repairs == 0


def test_a_lost_answer_twilio_never_received_is_sent_again_exactly_once(world: World) -> None:
    message_id = world.queued()
    world.twilio.set_faults({"rate": 1, "http_status": 500, "delay": 1.0})  # refused, but answered too late
    world.send(message_id, timeout=0.3)
    world.twilio.set_faults({"rate": 0})
    assert world.row(message_id).status == "AMBIGUOUS"
    assert world.twilio.messages() == []

    report = world.sweep()
    (task,) = world.tasks.tasks
    world.send(message_id, generation=task.generation)
    world.send(message_id, generation=0)  # the old generation's task, delivered late: a no-op

    assert (report.reconciled_found, report.reconciled_resent) == (0, 1)
    assert task.generation == 1
    assert len(world.twilio.messages()) == 1
    assert world.row(message_id).status == "ACCEPTED"
    assert "reconcile.resent" in world.audit_kinds()
    # And the campaign's summary counts it (GET /v1/campaigns/{id}/summary reads this).
    with Session(world.engine) as session:
        repairs = repairs_of_campaign(session, world.row(message_id).campaign_id)
    assert (repairs["reconcile.resent"], repairs["reconcile.found"]) == (1, 0)


def test_a_sender_that_died_after_its_claim_is_marked_ambiguous_and_settled(world: World) -> None:
    message_id = world.queued()
    with world.engine.begin() as conn:  # what a sender killed between its claim and Twilio leaves
        conn.execute(
            update(Message).values(status="SENDING", claimed_at=datetime.now(UTC) - timedelta(minutes=1))
        )

    report = world.sweep()

    assert (report.marked_ambiguous, report.reconciled_resent) == (1, 1)
    assert world.row(message_id).status == "QUEUED"
    assert [t.message_id for t in world.tasks.tasks] == [message_id]


def test_a_message_whose_callbacks_were_lost_gets_its_status_from_twilio(world: World) -> None:
    # CONFIG's StatusCallback points at a closed port: every callback fails, as during a database outage.
    message_id = world.queued()
    world.send(message_id)
    world.twilio.wait_for_callbacks_idle(10)
    assert world.row(message_id).status == "ACCEPTED"

    report = world.sweep()

    assert report.status_refreshed == 1
    assert world.row(message_id).status == "READ"


def test_a_campaign_is_not_completed_while_one_of_its_messages_is_ambiguous(world: World) -> None:
    message_id = world.queued()
    with world.engine.begin() as conn:
        conn.execute(update(Message).values(status="AMBIGUOUS", claimed_at=datetime.now(UTC)))
        campaign_id = conn.execute(select(Message.campaign_id)).scalar_one()
    with Session(world.engine) as session:
        assert not complete_if_done(session, campaign_id, datetime.now(UTC))
    assert world.row(message_id).status == "AMBIGUOUS"


def test_queued_messages_whose_tasks_are_gone_get_new_ones_and_a_waiting_task_is_left_alone(
    world: World,
) -> None:
    lost = world.queued()
    waiting = world.another()
    long_ago = datetime.now(UTC) - timedelta(hours=1)
    with world.engine.begin() as conn:
        conn.execute(update(Message).values(scheduled_at=long_ago))
        created = {mid: at for mid, at in conn.execute(select(Message.id, Message.created_at))}
    world.tasks.tasks.append(SendTask(waiting, 0, created[waiting], long_ago))  # still in a paused queue

    report = world.sweep()

    assert report.tasks_recreated == 1
    (recreated,) = [t for t in world.tasks.tasks if t.message_id == lost]
    assert recreated.generation == 1
    assert world.row(waiting).generation == 0
    world.send(lost, generation=1)
    assert len(world.twilio.messages()) == 1


def test_pages_published_long_ago_and_never_fanned_out_are_published_again(world: World) -> None:
    world.queued()
    add_users(world.engine, 1, start=7)
    with world.engine.begin() as conn:
        campaign_id = conn.execute(select(Message.campaign_id)).scalar_one()
        conn.execute(
            insert(CampaignPage),
            [
                {
                    "campaign_id": campaign_id,
                    "page_no": 0,
                    "first_phone": "+1",
                    "last_phone": "+2",
                    "size": 1,
                    "published_at": datetime.now(UTC) - timedelta(hours=1),
                }
            ],
        )

    report = world.sweep()

    assert report.pages_republished == 1
    assert [(p.campaign_id, p.page_no) for p in world.publisher.pages()] == [(campaign_id, 0)]
    with world.engine.connect() as conn:
        assert (
            conn.execute(
                text("SELECT count(*) FROM audit_events WHERE kind = 'repair.page_republished'")
            ).scalar_one()
            == 1
        )


def test_a_lost_answer_from_a_pool_sender_is_found_under_that_sender_and_never_resent(world: World) -> None:
    """Twilio's list is searched from the sender the message went out from, not the configured one: a
    search from the configured sender would find nothing and send the message a second time."""
    (pool_sender,) = add_senders(world.engine, "p", 1)
    message_id = world.queued()
    with world.engine.begin() as conn:
        conn.execute(update(Campaign).values(sender_pool="p"))
        conn.execute(
            insert(UserSender).values(
                user_phone=world.row(message_id).recipient_phone,
                sender=pool_sender,
                last_inbound_at=datetime.now(UTC),
            )
        )
    world.twilio.set_faults({"rate": 1, "accept": True, "delay": 1.0})
    world.send(message_id, timeout=0.3)
    world.twilio.set_faults({"rate": 0})
    assert (world.row(message_id).status, world.row(message_id).sender) == ("AMBIGUOUS", pool_sender)

    report = world.sweep()

    (accepted,) = world.twilio.messages()
    assert accepted["from"] == pool_sender
    assert (report.reconciled_found, report.reconciled_resent) == (1, 0)
    assert world.row(message_id).provider_sid == accepted["sid"]
