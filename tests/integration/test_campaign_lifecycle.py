"""Campaign lifecycle on real PostgreSQL: start (freeze + pages + publish), the scheduler tick, pause,
resume, cancel and completion, each a compare-and-set."""

from __future__ import annotations

import threading
from datetime import timedelta

from sqlalchemy import Engine, insert, select, text, update

from shared.clock import FixedClock
from shared.db.models import CampaignPage, Message, User
from shared.db.queries.campaigns import could_complete
from shared.db.unit_of_work import UnitOfWork
from shared.domain.enums import CampaignStatus
from shared.services import campaign_lifecycle as lifecycle
from tests.integration.pipeline_support import RecordingPublisher, campaign_row, subscribe
from tests.seeding import T0, add_campaign, add_users, phone


def _pages(engine: Engine, campaign_id: int) -> list[tuple[int, str, str, int, object]]:
    with engine.connect() as conn:
        statement = (
            select(
                CampaignPage.page_no,
                CampaignPage.first_phone,
                CampaignPage.last_phone,
                CampaignPage.size,
                CampaignPage.published_at,
            )
            .where(CampaignPage.campaign_id == campaign_id)
            .order_by(CampaignPage.page_no)
        )
        return [
            (r.page_no, r.first_phone, r.last_phone, r.size, r.published_at) for r in conn.execute(statement)
        ]


def test_start_freezes_the_opted_in_audience_into_key_pages_and_publishes_one_message_per_page(
    engine: Engine,
) -> None:
    phones = add_users(engine, 5)
    add_users(engine, 2, consent="STOP", start=100)
    campaign_id = add_campaign(engine)
    publisher = RecordingPublisher()

    result = lifecycle.start_campaign(UnitOfWork(engine), publisher, campaign_id, FixedClock(T0), page_size=2)

    assert (result.started, result.recipients, result.pages, result.problem) == (True, 5, 3, None)
    assert campaign_row(engine, campaign_id).status == "RUNNING"
    pages = _pages(engine, campaign_id)
    assert [(p[1], p[2], p[3]) for p in pages] == [
        (phones[0], phones[1], 2),
        (phones[2], phones[3], 2),
        (phones[4], phones[4], 1),
    ]
    assert all(p[4] == T0 for p in pages)
    assert [(m.campaign_id, m.page_no, m.published_at) for m in publisher.pages()] == [
        (campaign_id, 0, T0),
        (campaign_id, 1, T0),
        (campaign_id, 2, T0),
    ]


def test_the_frozen_audience_ignores_users_who_join_the_segment_after_the_start(engine: Engine) -> None:
    add_users(engine, 3)
    campaign_id = add_campaign(engine)
    lifecycle.start_campaign(
        UnitOfWork(engine), RecordingPublisher(), campaign_id, FixedClock(T0), page_size=10
    )

    with engine.begin() as conn:  # a phone inside the page's key range
        conn.execute(insert(User), [{"phone_e164": phone(1)[:-1] + "5", "consent_state": "OPT_IN"}])
    with engine.connect() as conn:
        frozen = conn.execute(
            text("SELECT count(*) FROM campaign_recipients WHERE campaign_id = :c"), {"c": campaign_id}
        ).scalar_one()
    assert frozen == 3


def test_a_topic_campaign_reaches_only_the_topic_subscribers(engine: Engine) -> None:
    phones = add_users(engine, 4)
    subscribe(engine, phones[1:3], "offers")
    campaign_id = add_campaign(engine, topic="offers")

    result = lifecycle.start_campaign(
        UnitOfWork(engine), RecordingPublisher(), campaign_id, FixedClock(T0), page_size=10
    )

    assert result.recipients == 2
    assert [(p[1], p[2]) for p in _pages(engine, campaign_id)] == [(phones[1], phones[2])]


def test_only_one_of_two_concurrent_starts_wins(engine: Engine) -> None:
    add_users(engine, 20)
    campaign_id = add_campaign(engine)
    publisher = RecordingPublisher()
    barrier = threading.Barrier(2)
    results: list[lifecycle.StartResult] = []

    def start() -> None:
        barrier.wait()
        results.append(
            lifecycle.start_campaign(UnitOfWork(engine), publisher, campaign_id, FixedClock(T0), 5)
        )

    threads = [threading.Thread(target=start) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(r.started for r in results) == [False, True]
    assert len(publisher.payloads) == 4
    assert len(_pages(engine, campaign_id)) == 4


def test_starting_a_campaign_that_is_not_ready_is_refused_with_its_status(engine: Engine) -> None:
    campaign_id = add_campaign(engine, status="DRAFT")

    result = lifecycle.start_campaign(
        UnitOfWork(engine), RecordingPublisher(), campaign_id, FixedClock(T0), 10
    )

    assert (result.started, result.status) == (False, CampaignStatus.DRAFT)
    assert result.problem == "campaign is DRAFT, not READY"


def test_a_failed_publish_is_republished_by_a_later_scheduler_tick(engine: Engine) -> None:
    add_users(engine, 3)
    campaign_id = add_campaign(engine)
    clock = FixedClock(T0)

    failed = lifecycle.start_campaign(
        UnitOfWork(engine), RecordingPublisher(fail=True), campaign_id, clock, 2
    )
    assert failed.started and failed.problem is not None
    assert all(p[4] is None for p in _pages(engine, campaign_id))

    clock.advance(timedelta(minutes=2))
    publisher = RecordingPublisher()
    lifecycle.start_due_campaigns(UnitOfWork(engine), publisher, clock, page_size=2)

    assert sorted(m.page_no for m in publisher.pages()) == [0, 1]
    assert all(p[4] == clock.now() for p in _pages(engine, campaign_id))


def test_the_scheduler_starts_only_ready_campaigns_that_are_due(engine: Engine) -> None:
    add_users(engine, 1)
    due = add_campaign(engine, schedule_time=T0 - timedelta(minutes=1))
    later = add_campaign(engine, schedule_time=T0 + timedelta(minutes=1))
    unscheduled = add_campaign(engine)
    draft = add_campaign(engine, status="DRAFT", schedule_time=T0 - timedelta(hours=1))

    results = lifecycle.start_due_campaigns(UnitOfWork(engine), RecordingPublisher(), FixedClock(T0), 10)

    assert [r.campaign_id for r in results] == [due]
    assert [campaign_row(engine, c).status for c in (due, later, unscheduled, draft)] == [
        "RUNNING",
        "READY",
        "READY",
        "DRAFT",
    ]
    # The tick leaves its heartbeat, which the health view and `make smoke` read.
    with engine.connect() as conn:
        beat = conn.execute(text("SELECT at, detail FROM heartbeats WHERE name = 'scheduler_tick'")).one()
    assert beat.at == T0
    assert beat.detail == {"started": 1, "republished_pages": 0}


def test_an_empty_audience_completes_the_campaign_at_once(engine: Engine) -> None:
    campaign_id = add_campaign(engine)

    result = lifecycle.start_campaign(
        UnitOfWork(engine), RecordingPublisher(), campaign_id, FixedClock(T0), 10
    )

    assert (result.started, result.status) == (True, CampaignStatus.COMPLETED)
    assert campaign_row(engine, campaign_id).completed_at == T0


def test_pause_and_resume_return_a_ready_campaign_to_ready_without_publishing(engine: Engine) -> None:
    campaign_id = add_campaign(engine)
    publisher = RecordingPublisher()
    clock = FixedClock(T0)

    paused = lifecycle.pause_campaign(UnitOfWork(engine), campaign_id, clock)
    resumed = lifecycle.resume_campaign(UnitOfWork(engine), publisher, campaign_id, clock)

    assert (paused.changed, paused.status) == (True, CampaignStatus.PAUSED)
    assert (resumed.changed, resumed.status) == (True, CampaignStatus.READY)
    assert publisher.payloads == []


def test_resuming_a_running_campaign_republishes_its_pages(engine: Engine) -> None:
    add_users(engine, 3)
    campaign_id = add_campaign(engine)
    clock = FixedClock(T0)
    lifecycle.start_campaign(UnitOfWork(engine), RecordingPublisher(), campaign_id, clock, page_size=2)
    lifecycle.pause_campaign(UnitOfWork(engine), campaign_id, clock)
    assert lifecycle.pause_campaign(UnitOfWork(engine), campaign_id, clock).changed is False

    publisher = RecordingPublisher()
    clock.advance(timedelta(seconds=30))
    resumed = lifecycle.resume_campaign(UnitOfWork(engine), publisher, campaign_id, clock)

    assert resumed.status is CampaignStatus.RUNNING
    assert [(m.page_no, m.published_at) for m in publisher.pages()] == [(0, clock.now()), (1, clock.now())]


def test_cancel_withholds_every_waiting_message_and_is_final(engine: Engine) -> None:
    phones = add_users(engine, 3)
    campaign_id = add_campaign(engine, status="RUNNING")
    with engine.begin() as conn:
        conn.execute(
            insert(Message),
            [
                {"campaign_id": campaign_id, "recipient_phone": phones[0], "status": "QUEUED"},
                {"campaign_id": campaign_id, "recipient_phone": phones[1], "status": "SENDING"},
                {"campaign_id": campaign_id, "recipient_phone": phones[2], "status": "DELIVERED"},
            ],
        )
    clock = FixedClock(T0)

    cancelled = lifecycle.cancel_campaign(UnitOfWork(engine), campaign_id, clock)
    resumed = lifecycle.resume_campaign(UnitOfWork(engine), RecordingPublisher(), campaign_id, clock)

    assert cancelled.status is CampaignStatus.CANCELLED and resumed.changed is False
    with engine.connect() as conn:
        rows = conn.execute(
            select(Message.status, Message.status_reason)
            .where(Message.campaign_id == campaign_id)
            .order_by(Message.recipient_phone)
        ).all()
    assert [tuple(r) for r in rows] == [
        ("WITHHELD", "campaign cancelled"),
        ("SENDING", None),
        ("DELIVERED", None),
    ]


def test_a_campaign_completes_only_when_no_message_is_waiting_sending_or_ambiguous(engine: Engine) -> None:
    add_users(engine, 2)
    campaign_id = add_campaign(engine)
    clock = FixedClock(T0)
    lifecycle.start_campaign(UnitOfWork(engine), RecordingPublisher(), campaign_id, clock, page_size=10)
    with engine.begin() as conn:
        conn.execute(update(CampaignPage).values(fanned_out_at=T0))
        phones = list(conn.execute(select(User.phone_e164).order_by(User.phone_e164)).scalars())
        conn.execute(
            insert(Message),
            [
                {"campaign_id": campaign_id, "recipient_phone": phones[0], "status": "SENDING"},
                {"campaign_id": campaign_id, "recipient_phone": phones[1], "status": "AMBIGUOUS"},
            ],
        )

    assert _could_complete(engine, campaign_id) is False
    assert lifecycle.complete_if_done(UnitOfWork(engine), campaign_id, clock) is False

    with engine.begin() as conn:
        conn.execute(update(Message).where(Message.status == "SENDING").values(status="ACCEPTED"))
    # A send whose answer was lost is not settled until reconciliation finds it or sends it again.
    assert _could_complete(engine, campaign_id) is False
    with engine.begin() as conn:
        conn.execute(update(Message).where(Message.status == "AMBIGUOUS").values(status="ACCEPTED"))
    assert _could_complete(engine, campaign_id) is True
    assert lifecycle.complete_if_done(UnitOfWork(engine), campaign_id, clock) is True
    assert campaign_row(engine, campaign_id).status == "COMPLETED"
    assert _could_complete(engine, campaign_id) is False  # completed: nothing left to complete


def test_a_campaign_with_a_page_not_yet_fanned_out_is_not_complete(engine: Engine) -> None:
    add_users(engine, 2)
    campaign_id = add_campaign(engine)
    clock = FixedClock(T0)
    lifecycle.start_campaign(UnitOfWork(engine), RecordingPublisher(), campaign_id, clock, page_size=10)

    assert _could_complete(engine, campaign_id) is False
    assert lifecycle.complete_if_done(UnitOfWork(engine), campaign_id, clock) is False
    assert campaign_row(engine, campaign_id).status == "RUNNING"


def _could_complete(engine: Engine, campaign_id: int) -> bool:
    """The send path's probe, which must agree with complete_if_done's own condition."""
    return could_complete(UnitOfWork(engine), campaign_id)
