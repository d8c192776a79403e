"""Fan-out of campaign pages on real PostgreSQL, with a recording stand-in for Cloud Tasks."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, time, timedelta

from sqlalchemy import Engine, insert, select, update

from shared.adapters.tasks import task_id
from shared.clock import FixedClock
from shared.db.models import AuditEvent, User, UserSender
from shared.db.unit_of_work import UnitOfWork
from shared.domain.send_schedule import spacing
from shared.outcome import Outcome
from shared.services import campaign_lifecycle as lifecycle
from shared.services.fanout import NO_CONSENT_REASON, FanoutConfig, fanout_page
from shared.services.page_publishing import PageMessage
from tests.integration.pipeline_support import RecordingPublisher, RecordingTasks, campaign_row, messages_of
from tests.seeding import T0, add_campaign, add_message, add_senders, add_users

CONFIG = FanoutConfig(max_page_age=timedelta(hours=6), rate_margin=0.025)


def _start(engine: Engine, campaign_id: int, clock: FixedClock, page_size: int = 500) -> list[PageMessage]:
    publisher = RecordingPublisher()
    lifecycle.start_campaign(UnitOfWork(engine), publisher, campaign_id, clock, page_size)
    return publisher.pages()


def _fan_out(engine: Engine, tasks: RecordingTasks, clock: FixedClock, page: PageMessage) -> Outcome:
    return fanout_page(UnitOfWork(engine), tasks, clock, page, CONFIG).outcome


def test_a_page_becomes_one_rendered_queued_message_and_one_task_per_recipient(engine: Engine) -> None:
    phones = add_users(engine, 3)
    campaign_id = add_campaign(engine, content="Hi {first_name}, your number is {phone}")
    clock = FixedClock(T0)
    (page,) = _start(engine, campaign_id, clock)
    tasks = RecordingTasks()

    assert _fan_out(engine, tasks, clock, page) is Outcome.DONE

    rows = messages_of(engine, campaign_id)
    assert [(r.recipient_phone, r.status, r.body) for r in rows] == [
        (p, "QUEUED", f"Hi U{i}, your number is {p}") for i, p in enumerate(phones)
    ]
    assert sorted((t.message_id, t.generation, t.at) for t in tasks.tasks) == sorted(
        (r.id, 0, r.scheduled_at) for r in rows
    )


def test_a_redelivered_page_writes_nothing_twice_and_asks_only_for_the_same_tasks(engine: Engine) -> None:
    add_users(engine, 4)
    campaign_id = add_campaign(engine)
    clock = FixedClock(T0)
    (page,) = _start(engine, campaign_id, clock)
    first, second = RecordingTasks(), RecordingTasks()

    _fan_out(engine, first, clock, page)
    before = messages_of(engine, campaign_id)
    cursor = campaign_row(engine, campaign_id).plan_cursor
    clock.advance(timedelta(seconds=5))
    assert _fan_out(engine, second, clock, page) is Outcome.DONE

    assert messages_of(engine, campaign_id) == before
    # Same names (and times): Cloud Tasks answers ALREADY_EXISTS, so nothing is dispatched twice.
    assert sorted((task_id(t), t.at) for t in second.tasks) == sorted((task_id(t), t.at) for t in first.tasks)
    assert campaign_row(engine, campaign_id).plan_cursor == cursor


def test_missing_variables_and_consent_lost_after_the_freeze_are_skipped_with_reasons(engine: Engine) -> None:
    phones = add_users(engine, 3)
    with engine.begin() as conn:
        conn.execute(update(User).where(User.phone_e164 == phones[1]).values(attributes={}))
    campaign_id = add_campaign(engine, content="Hi {first_name}, see {city|you} soon")
    clock = FixedClock(T0)
    (page,) = _start(engine, campaign_id, clock)
    with engine.begin() as conn:  # a STOP between the start and the fan-out
        conn.execute(update(User).where(User.phone_e164 == phones[2]).values(consent_state="STOP"))
    tasks = RecordingTasks()

    _fan_out(engine, tasks, clock, page)

    rows = messages_of(engine, campaign_id)
    assert [(r.status, r.status_reason) for r in rows] == [
        ("QUEUED", None),
        ("SKIPPED", "missing template variable(s): first_name"),
        ("SKIPPED", NO_CONSENT_REASON),
    ]
    assert [t.message_id for t in tasks.tasks] == [rows[0].id]
    with engine.connect() as conn:
        audited = conn.execute(
            select(AuditEvent.message_id, AuditEvent.detail["reason"].astext)
            .where(AuditEvent.kind == "message.skipped")
            .order_by(AuditEvent.message_id)
        ).all()
    assert [tuple(a) for a in audited] == [
        (rows[1].id, rows[1].status_reason),
        (rows[2].id, NO_CONSENT_REASON),
    ]


def test_sends_are_planned_at_the_campaign_rate_continuing_across_pages(engine: Engine) -> None:
    add_users(engine, 6)
    campaign_id = add_campaign(engine, rate=10)
    clock = FixedClock(T0)
    pages = _start(engine, campaign_id, clock, page_size=3)
    tasks = RecordingTasks()

    for page in pages:
        _fan_out(engine, tasks, clock, page)

    step = spacing(10, CONFIG.rate_margin)
    assert sorted(t.at for t in tasks.tasks) == [T0 + k * step for k in range(6)]


def test_recipients_inside_quiet_hours_are_deferred_to_their_own_window_end(engine: Engine) -> None:
    # 22:00-08:00 crosses midnight. At 12:59:58 UTC it is 04:59 in Los Angeles (inside), 18:29 in Kolkata
    # (outside) and 21:59:58 in Tokyo (outside, for two more seconds).
    now = datetime(2026, 3, 2, 12, 59, 58, tzinfo=UTC)  # Tokyo: 21:59:58, planned sends spill past 22:00
    la = add_users(engine, 2, timezone="America/Los_Angeles")
    kolkata = add_users(engine, 1, start=10, timezone="Asia/Kolkata")
    tokyo = add_users(engine, 2, start=20, timezone="Asia/Tokyo")
    campaign_id = add_campaign(engine, rate=1, quiet=(time(22), time(8)))
    clock = FixedClock(now)
    (page,) = _start(engine, campaign_id, clock)
    tasks = RecordingTasks()

    _fan_out(engine, tasks, clock, page)

    at = {r.recipient_phone: r.scheduled_at for r in messages_of(engine, campaign_id)}
    step = spacing(1, CONFIG.rate_margin)
    la_end = datetime(2026, 3, 2, 16, 0, tzinfo=UTC)  # 08:00 PST
    tokyo_end = datetime(2026, 3, 2, 23, 0, tzinfo=UTC)  # 08:00 JST next morning
    assert [at[p] for p in la] == [la_end, la_end + step]
    assert at[kolkata[0]] == now
    # Tokyo's first send fits before 22:00 local; its second would land after it, so it waits for 08:00.
    assert [at[p] for p in tokyo] == [now + step, tokyo_end]  # Kolkata took the slot at `now`
    with engine.connect() as conn:
        deferred = conn.execute(
            select(AuditEvent.user_phone).where(AuditEvent.kind == "message.deferred")
        ).scalars()
        assert sorted(p or "" for p in deferred) == sorted([*la, tokyo[1]])


def test_a_page_older_than_the_limit_is_dropped_and_recorded_and_the_campaign_can_still_end(
    engine: Engine,
) -> None:
    add_users(engine, 2)
    campaign_id = add_campaign(engine)
    clock = FixedClock(T0)
    (page,) = _start(engine, campaign_id, clock)
    clock.advance(CONFIG.max_page_age + timedelta(seconds=1))
    tasks = RecordingTasks()

    assert _fan_out(engine, tasks, clock, page) is Outcome.DONE

    assert messages_of(engine, campaign_id) == [] and tasks.tasks == []
    assert campaign_row(engine, campaign_id).status == "COMPLETED"
    with engine.connect() as conn:
        kinds = conn.execute(select(AuditEvent.kind).where(AuditEvent.campaign_id == campaign_id)).scalars()
        assert "page.dropped" in set(kinds)


def test_failed_task_creation_asks_for_redelivery_which_creates_the_tasks_only(engine: Engine) -> None:
    add_users(engine, 2)
    campaign_id = add_campaign(engine)
    clock = FixedClock(T0)
    (page,) = _start(engine, campaign_id, clock)

    assert _fan_out(engine, RecordingTasks(fail=True), clock, page) is Outcome.TRANSIENT_FAILURE
    rows = messages_of(engine, campaign_id)
    tasks = RecordingTasks()
    assert _fan_out(engine, tasks, clock, page) is Outcome.DONE

    assert messages_of(engine, campaign_id) == rows
    assert sorted(t.message_id for t in tasks.tasks) == sorted(r.id for r in rows)


def test_a_page_of_a_paused_campaign_is_parked_and_resume_plans_and_schedules_it(engine: Engine) -> None:
    add_users(engine, 2)
    campaign_id = add_campaign(engine, rate=5)
    clock = FixedClock(T0)
    (page,) = _start(engine, campaign_id, clock)
    lifecycle.pause_campaign(UnitOfWork(engine), campaign_id, clock)
    tasks = RecordingTasks()

    _fan_out(engine, tasks, clock, page)
    assert tasks.tasks == []
    assert [(r.status, r.scheduled_at) for r in messages_of(engine, campaign_id)] == [("QUEUED", None)] * 2

    clock.advance(timedelta(minutes=10))
    publisher = RecordingPublisher()
    lifecycle.resume_campaign(UnitOfWork(engine), publisher, campaign_id, clock)
    (republished,) = publisher.pages()
    _fan_out(engine, tasks, clock, republished)

    step = spacing(5, CONFIG.rate_margin)
    rows = messages_of(engine, campaign_id)
    assert [r.scheduled_at for r in rows] == [clock.now(), clock.now() + step]
    assert sorted((t.message_id, t.at) for t in tasks.tasks) == sorted((r.id, r.scheduled_at) for r in rows)


def test_a_page_of_a_cancelled_campaign_is_written_withheld_with_the_reason(engine: Engine) -> None:
    add_users(engine, 2)
    campaign_id = add_campaign(engine)
    clock = FixedClock(T0)
    (page,) = _start(engine, campaign_id, clock)
    lifecycle.cancel_campaign(UnitOfWork(engine), campaign_id, clock)
    tasks = RecordingTasks()

    _fan_out(engine, tasks, clock, page)

    assert tasks.tasks == []
    assert [(r.status, r.status_reason) for r in messages_of(engine, campaign_id)] == [
        ("WITHHELD", "campaign cancelled")
    ] * 2


def test_a_campaign_whose_every_recipient_is_skipped_completes_after_fan_out(engine: Engine) -> None:
    phones = add_users(engine, 2)
    campaign_id = add_campaign(engine)
    clock = FixedClock(T0)
    (page,) = _start(engine, campaign_id, clock)
    with engine.begin() as conn:
        conn.execute(update(User).where(User.phone_e164.in_(phones)).values(consent_state="OPT_OUT"))

    _fan_out(engine, RecordingTasks(), clock, page)

    assert campaign_row(engine, campaign_id).status == "COMPLETED"
    assert {m.status for m in messages_of(engine, campaign_id)} == {"SKIPPED"}


# Sender pools (docs/architecture.md, "Sender pools"): fan-out makes the sticky choice for its page and,
# when the campaign's rate is at least the pool's, plans each sender's messages at that sender's ceiling.
POOL = "spring"


def _planned_by_sender(engine: Engine, campaign_id: int) -> dict[str, list[datetime]]:
    by_sender: dict[str, list[datetime]] = defaultdict(list)
    for row in messages_of(engine, campaign_id):
        by_sender[row.sender].append(row.scheduled_at)
    return {sender: sorted(times) for sender, times in by_sender.items()}


def test_a_pool_campaign_plans_each_senders_messages_at_that_senders_ceiling(engine: Engine) -> None:
    senders = add_senders(engine, POOL, 4, rate=20)
    add_users(engine, 400)
    campaign_id = add_campaign(engine, rate=80, sender_pool=POOL)
    clock = FixedClock(T0)
    pages = _start(engine, campaign_id, clock, page_size=150)
    tasks = RecordingTasks()

    for page in pages:
        _fan_out(engine, tasks, clock, page)

    # Each sender's messages, across pages, follow one another at exactly its spacing from the start:
    # planned at the campaign's 80/s instead, a sender's share of each second would be the hash's random
    # one, some seconds under its 20, others over.
    step = spacing(20, CONFIG.rate_margin)
    planned = _planned_by_sender(engine, campaign_id)
    assert set(planned) == set(senders)
    for times in planned.values():
        assert times == [T0 + k * step for k in range(len(times))]
    assert sorted(t.at for t in tasks.tasks) == sorted(t for times in planned.values() for t in times)


def test_a_pool_campaign_slower_than_its_pool_is_planned_at_its_own_rate(engine: Engine) -> None:
    add_senders(engine, POOL, 4, rate=20)
    add_users(engine, 12)
    campaign_id = add_campaign(engine, rate=10, sender_pool=POOL)
    clock = FixedClock(T0)
    (page,) = _start(engine, campaign_id, clock)
    tasks = RecordingTasks()

    _fan_out(engine, tasks, clock, page)

    step = spacing(10, CONFIG.rate_margin)
    assert sorted(t.at for t in tasks.tasks) == [T0 + k * step for k in range(12)]
    assert all(r.sender is not None for r in messages_of(engine, campaign_id))


def test_fan_out_writes_the_sticky_choice_on_each_pool_message(engine: Engine) -> None:
    senders = add_senders(engine, POOL, 3)
    phones = add_users(engine, 30)
    with engine.begin() as conn:
        conn.execute(
            insert(UserSender),
            [
                {"user_phone": p, "sender": senders[1], "last_inbound_at": T0 - timedelta(hours=2)}
                for p in phones[:10]
            ],
        )
    previous = add_campaign(engine, status="COMPLETED", sender_pool=POOL)
    for phone in phones[10:20]:
        add_message(
            engine, previous, phone, status="DELIVERED", sender=senders[2], claimed_at=T0 - timedelta(days=1)
        )
    campaign_id = add_campaign(engine, rate=60, sender_pool=POOL)
    clock = FixedClock(T0)
    (page,) = _start(engine, campaign_id, clock)

    _fan_out(engine, RecordingTasks(), clock, page)

    chosen = {r.recipient_phone: r.sender for r in messages_of(engine, campaign_id)}
    assert {chosen[p] for p in phones[:10]} == {senders[1]}  # the sender they wrote to
    assert {chosen[p] for p in phones[10:20]} == {senders[2]}  # else the one that last messaged them
    assert set(chosen[p] for p in phones[20:]) <= set(senders)  # else the stable hash


def test_a_pool_campaign_with_no_active_sender_is_planned_at_its_rate_with_no_sender_written(
    engine: Engine,
) -> None:
    add_users(engine, 3)
    campaign_id = add_campaign(engine, rate=10, sender_pool=POOL)  # a pool with no senders at all
    clock = FixedClock(T0)
    (page,) = _start(engine, campaign_id, clock)
    tasks = RecordingTasks()

    _fan_out(engine, tasks, clock, page)

    rows = messages_of(engine, campaign_id)
    assert [(r.status, r.sender) for r in rows] == [("QUEUED", None)] * 3
    assert sorted(t.at for t in tasks.tasks) == [T0 + k * spacing(10, CONFIG.rate_margin) for k in range(3)]


def test_resuming_a_pool_campaign_plans_its_parked_messages_on_their_senders(engine: Engine) -> None:
    senders = add_senders(engine, POOL, 2, rate=5)
    add_users(engine, 20)
    campaign_id = add_campaign(engine, rate=10, sender_pool=POOL)
    clock = FixedClock(T0)
    (page,) = _start(engine, campaign_id, clock)
    lifecycle.pause_campaign(UnitOfWork(engine), campaign_id, clock)
    _fan_out(engine, RecordingTasks(), clock, page)
    parked = {r.recipient_phone: r.sender for r in messages_of(engine, campaign_id)}
    assert set(parked.values()) == set(senders)

    clock.advance(timedelta(minutes=10))
    publisher = RecordingPublisher()
    lifecycle.resume_campaign(UnitOfWork(engine), publisher, campaign_id, clock)
    (republished,) = publisher.pages()
    _fan_out(engine, RecordingTasks(), clock, republished)

    assert {r.recipient_phone: r.sender for r in messages_of(engine, campaign_id)} == parked
    step = spacing(5, CONFIG.rate_margin)
    for times in _planned_by_sender(engine, campaign_id).values():
        assert times == [clock.now() + k * step for k in range(len(times))]
