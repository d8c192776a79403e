"""Each health check's levels at its thresholds, on real PostgreSQL with a fixed clock: the rows are
written at chosen instants and the report is read at chosen instants, so nothing depends on how long a
step takes (docs/architecture.md, "Health checks")."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import Engine, insert, text, update

from shared.adapters.tasks import QueueStatus
from shared.clock import FixedClock
from shared.db.models import DeliveryReceipt, InboundEvent, Message
from shared.db.unit_of_work import UnitOfWork
from shared.services.health import Check, Level, Thresholds, check_health, worst
from shared.services.webhook_errors import RefusalTally, count_refusal, prune
from tests.seeding import T0, queued_message

THRESHOLDS = Thresholds(
    db_warning_ms=60_000.0,  # the database check's level is tested without a clock (tests/functions)
    queued_overdue=timedelta(minutes=15),
    accepted_silent=timedelta(hours=1),
    ambiguous_overdue=timedelta(minutes=15),
    webhook_error_warning_percent=5.0,
    webhook_error_failing_percent=25.0,
    webhook_error_min_count=5,
)


class RunningQueue:
    def status(self) -> QueueStatus:
        return QueueStatus("RUNNING", 0, None, 0, 0)


def checks_at(engine: Engine, now: datetime, thresholds: Thresholds = THRESHOLDS) -> dict[str, Check]:
    report = check_health(UnitOfWork(engine), FixedClock(now), thresholds, RunningQueue)
    return {check.name: check for check in report}


def test_the_report_lists_every_check_in_reading_order(engine: Engine) -> None:
    report = check_health(UnitOfWork(engine), FixedClock(T0), THRESHOLDS, RunningQueue)

    assert [c.name for c in report] == [
        "database",
        "scheduler",
        "send queue",
        "stuck messages",
        "webhook errors",
        "dead letters",
        "reconciliation",
        "repairs",
    ]
    assert worst(report) is Level.FAILING  # the scheduler never ticked in a fresh database
    assert all(c.threshold for c in report)


def test_a_queued_message_is_stuck_once_past_its_send_time_by_the_threshold(engine: Engine) -> None:
    queued_message(engine)  # scheduled at T0

    at_threshold = checks_at(engine, T0 + timedelta(minutes=15))["stuck messages"]
    past = checks_at(engine, T0 + timedelta(minutes=15, seconds=1))["stuck messages"]

    assert at_threshold.level is Level.OK
    assert at_threshold.value.startswith("0 queued past their send time")
    assert past.level is Level.WARNING
    assert past.value == "1 queued past their send time, 0 accepted without a callback, 0 ambiguous"
    assert past.at == T0


@pytest.mark.parametrize(
    ("status", "column", "threshold"),
    [("ACCEPTED", "updated_at", timedelta(hours=1)), ("AMBIGUOUS", "claimed_at", timedelta(minutes=15))],
)
def test_accepted_without_callback_and_ambiguous_messages_are_stuck_past_their_thresholds(
    engine: Engine, status: str, column: str, threshold: timedelta
) -> None:
    message_id = queued_message(engine)
    with engine.begin() as conn:
        conn.execute(
            update(Message)
            .where(Message.id == message_id)
            .values(status=status, provider_sid="SM" + "1" * 32, **{column: T0})
        )

    assert checks_at(engine, T0 + threshold)["stuck messages"].level is Level.OK
    stuck = checks_at(engine, T0 + threshold + timedelta(seconds=1))["stuck messages"]

    assert stuck.level is Level.WARNING
    expected = "1 accepted without a callback" if status == "ACCEPTED" else "1 ambiguous"
    assert expected in stuck.value


def _received(engine: Engine, count: int, at: datetime) -> None:
    """`count` status callbacks stored at `at` (the status webhook's successes)."""
    if not count:
        return
    with engine.begin() as conn:
        conn.execute(
            insert(DeliveryReceipt),
            [
                {
                    "message_sid": f"SM{at.timestamp():.0f}{i:06d}",
                    "message_status": "sent",
                    "raw_payload": {},
                    "received_at": at,
                }
                for i in range(count)
            ],
        )


def _refused(engine: Engine, count: int, at: datetime, status: int = 403) -> None:
    every_time = RefusalTally(every=timedelta(0))  # the throttle is tested on its own below
    for _ in range(count):
        count_refusal(UnitOfWork(engine), FixedClock(at), every_time, "status_webhook", status)


@pytest.mark.parametrize(
    ("refused", "succeeded", "level"),
    [
        (4, 0, Level.OK),  # 100%, but under the minimum count: a scanner's few forged requests
        (5, 96, Level.OK),  # 4.95%
        (5, 95, Level.WARNING),  # 5%
        (25, 76, Level.WARNING),  # 24.75%
        (25, 75, Level.FAILING),  # 25%
    ],
)
def test_the_webhook_check_judges_the_share_of_refusals_in_the_last_hour(
    engine: Engine, refused: int, succeeded: int, level: Level
) -> None:
    now = T0 + timedelta(hours=1)
    _received(engine, succeeded, T0 + timedelta(minutes=30))
    _refused(engine, refused, T0 + timedelta(minutes=10))

    check = checks_at(engine, now)["webhook errors"]

    assert check.level is level
    assert check.value.startswith(f"last hour: {refused} of {refused + succeeded} refused")
    assert check.threshold == "warning at 5%, failing at 25%, from 5 refusals"


def test_refusals_are_counted_per_minute_and_status_and_an_hour_later_no_longer_count(engine: Engine) -> None:
    _refused(engine, 3, T0, 403)
    _refused(engine, 2, T0 + timedelta(seconds=59), 400)
    with engine.begin() as conn:
        conn.execute(insert(InboundEvent), [{"message_sid": "SMin", "raw_payload": {}, "received_at": T0}])
        rows = conn.execute(text("SELECT minute, status, count FROM webhook_errors ORDER BY status")).all()
    assert [tuple(r) for r in rows] == [(T0, 400, 2), (T0, 403, 3)]

    now = checks_at(engine, T0 + timedelta(minutes=59))["webhook errors"]
    later = checks_at(engine, T0 + timedelta(minutes=60, seconds=1))["webhook errors"]

    assert now.value == "last hour: 5 of 6 refused (83.3%): 2 x 400 (status), 3 x 403 (status)"
    assert now.level is Level.FAILING
    assert later.value == "last hour: 0 of 0 refused (0.0%)"
    assert later.level is Level.OK

    assert prune(UnitOfWork(engine), FixedClock(T0 + timedelta(days=2, minutes=1))) == 2  # one row per status
    assert prune(UnitOfWork(engine), FixedClock(T0 + timedelta(days=2, minutes=1))) == 0


def test_a_conflict_reconciliation_leaves_warns_and_what_it_settled_is_reported(engine: Engine) -> None:
    with engine.begin() as conn:
        for kind in ("reconcile.found", "reconcile.resent", "reconcile.conflict"):
            conn.execute(
                text("INSERT INTO audit_events (kind, source, occurred_at) VALUES (:k, 'sweeper', :at)"),
                {"k": kind, "at": T0},
            )

    check = checks_at(engine, T0 + timedelta(minutes=59))["reconciliation"]
    later = checks_at(engine, T0 + timedelta(hours=1, seconds=1))["reconciliation"]

    assert check.level is Level.WARNING
    assert check.value == "last hour: 1 found at Twilio, 1 sent again, 1 needing an operator"
    assert later.level is Level.OK


def test_the_queue_check_is_part_of_the_report_and_fails_when_the_queue_cannot_be_read(
    engine: Engine,
) -> None:
    def no_credentials() -> RunningQueue:
        raise RuntimeError("Your default credentials were not found")

    report = check_health(UnitOfWork(engine), FixedClock(T0), THRESHOLDS, no_credentials)
    queue = next(c for c in report if c.name == "send queue")

    assert queue.level is Level.FAILING
    assert queue.value == "cannot be read (RuntimeError: Your default credentials were not found)"
    assert len(report) == 8  # every other check still ran


def test_thresholds_come_from_the_settings(settings: object) -> None:
    from shared.config import Settings

    assert isinstance(settings, Settings)
    tuned = settings.model_copy(
        update={"health_queued_overdue_seconds": 60, "health_webhook_error_failing_percent": 50.0}
    )
    thresholds = Thresholds.from_settings(tuned)
    assert thresholds.queued_overdue == timedelta(minutes=1)
    assert thresholds.webhook_error_failing_percent == 50.0


def test_a_warning_above_its_failing_threshold_is_refused_at_start_up() -> None:
    from pydantic import ValidationError

    from shared.config import Settings

    with pytest.raises(ValidationError, match="HEALTH_QUEUE_OVERDUE"):
        Settings(health_queue_overdue_warning_seconds=600, health_queue_overdue_failing_seconds=300)


def test_a_flood_of_refusals_is_written_once_per_flush_interval_and_nothing_is_lost(engine: Engine) -> None:
    tally = RefusalTally(every=timedelta(seconds=10))
    clock = FixedClock(T0)
    # The first refusal after a quiet spell is written at once ...
    count_refusal(UnitOfWork(engine), clock, tally, "status_webhook", 403)
    assert _counted(engine) == 1
    # ... a flood within the interval is only tallied in the process ...
    for second in range(1, 10):
        clock.set(T0 + timedelta(seconds=second))
        for _ in range(100):
            count_refusal(UnitOfWork(engine), clock, tally, "status_webhook", 403)
    assert _counted(engine) == 1
    # ... and the next refusal after the interval writes all of it, in one transaction.
    clock.set(T0 + timedelta(seconds=10))
    count_refusal(UnitOfWork(engine), clock, tally, "inbound_webhook", 400)
    assert _counted(engine) == 1 + 900 + 1


def _counted(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT coalesce(sum(count), 0) FROM webhook_errors")).scalar_one())
