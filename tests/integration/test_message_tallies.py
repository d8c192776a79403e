"""message_tallies on real PostgreSQL (docs/architecture.md, "Analytics at a million messages"): after every
kind of write to messages (bulk inserts, each status transition, a redelivered callback, sender and error
changes, bulk updates, deletes, rollbacks) and before and after folds, the tallies equal a recount of the
messages themselves, group by group; concurrent writers never wait on one another; a fold racing a writer
loses nothing; and the percentiles read by position equal percentile_cont over the rows."""

from __future__ import annotations

import random
import threading
from dataclasses import asdict
from datetime import timedelta
from typing import Any

import pytest
from alembic import command
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from shared.db.queries import campaign_analytics as analytics
from shared.db.queries import message_tallies as tallies
from shared.db.unit_of_work import UnitOfWork
from shared.domain.enums import MessageStatus
from shared.services.message_tallies import fold_tallies
from tests.conftest import alembic_config
from tests.seeding import T0, add_campaign, add_users

# The groups, spelled independently of the migration's triggers: a recount straight from the messages.
_RECOUNT = text("""
SELECT campaign_id, status, sender, provider_sid IS NOT NULL AS handed,
       date_trunc('minute', sent_at AT TIME ZONE 'UTC') AS sent_minute,
       date_trunc('minute', delivered_at AT TIME ZONE 'UTC') AS delivered_minute,
       date_trunc('minute', failed_at AT TIME ZONE 'UTC') AS failed_minute,
       (delivered_at IS NOT NULL AND sent_at IS NOT NULL) AS delivered,
       (read_at IS NOT NULL AND sent_at IS NOT NULL) AS read,
       error_code, (status = 'SKIPPED' AND status_reason IS NOT DISTINCT FROM 'frequency_cap') AS cap_skipped,
       rate_limit_deferrals > 0 AS rate_limited, frequency_cap_deferrals > 0 AS cap_deferred,
       count(*) AS messages, sum(rate_limit_deferrals) AS rate_limit_deferrals,
       sum(frequency_cap_deferrals) AS cap_deferrals
FROM messages
GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13
""")
_SUMMED = text("""
SELECT campaign_id, status, sender, handed, sent_minute AT TIME ZONE 'UTC' AS sent_minute,
       delivered_minute AT TIME ZONE 'UTC' AS delivered_minute, failed_minute AT TIME ZONE 'UTC' AS failed_minute,
       delivered, read, error_code, cap_skipped, rate_limited, cap_deferred,
       sum(messages) AS messages, sum(rate_limit_deferrals) AS rate_limit_deferrals,
       sum(cap_deferrals) AS cap_deferrals
FROM message_tallies
GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13
HAVING sum(messages) <> 0 OR sum(rate_limit_deferrals) <> 0 OR sum(cap_deferrals) <> 0
""")


def _session(conn: Any) -> Session:
    return Session(bind=conn)


def _groups(engine: Engine, sql: Any) -> dict[tuple[Any, ...], tuple[int, int, int]]:
    with engine.connect() as conn:
        return {
            tuple(row[:13]): (int(row.messages), int(row.rate_limit_deferrals), int(row.cap_deferrals))
            for row in conn.execute(sql)
        }


# delivery_time_tallies against a recount: delivered messages per campaign and millisecond of delivery time.
_DELIVERY_RECOUNT = text(f"""
SELECT campaign_id, {analytics.DELIVERY_MS} AS ms, count(*) AS messages FROM messages
WHERE delivered_at IS NOT NULL AND sent_at IS NOT NULL GROUP BY 1, 2
""")
_DELIVERY_SUMMED = text("""
SELECT campaign_id, ms, sum(messages) AS messages FROM delivery_time_tallies
GROUP BY 1, 2 HAVING sum(messages) <> 0
""")


def _delivery_times(engine: Engine, sql: Any) -> dict[tuple[int, int], int]:
    with engine.connect() as conn:
        return {(int(row.campaign_id), int(row.ms)): int(row.messages) for row in conn.execute(sql)}


def assert_exact(engine: Engine) -> None:
    assert _groups(engine, _SUMMED) == _groups(engine, _RECOUNT)
    assert _delivery_times(engine, _DELIVERY_SUMMED) == _delivery_times(engine, _DELIVERY_RECOUNT)


def _run(engine: Engine, sql: str, **params: Any) -> None:
    with engine.begin() as conn:
        conn.execute(text(sql), params)


def _insert(engine: Engine, campaign_id: int, phones: list[str]) -> None:
    """One statement for many rows, as the fan-out writes them."""
    _run(
        engine,
        "INSERT INTO messages (campaign_id, recipient_phone, body, scheduled_at) "
        "SELECT :campaign_id, p, 'Hi', :at FROM unnest(CAST(:phones AS text[])) p",
        campaign_id=campaign_id,
        phones=phones,
        at=T0,
    )


def _unfolded(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT (SELECT count(*) FROM message_tallies WHERE NOT folded) "
                    "+ (SELECT count(*) FROM delivery_time_tallies WHERE NOT folded)"
                )
            ).scalar_one()
        )


def test_every_write_to_messages_keeps_the_tallies_exact(engine: Engine) -> None:
    phones = add_users(engine, 40)
    first = add_campaign(engine, status="RUNNING", sender_pool="main")
    second = add_campaign(engine, status="RUNNING", name="second")
    _insert(engine, first, phones[:30])
    _insert(engine, second, phones[20:])
    assert_exact(engine)
    m = "(SELECT id FROM messages WHERE campaign_id = :c AND recipient_phone = :p)"
    sent = T0 + timedelta(seconds=59.5)  # a minute's edge: delivered 1 s later is the next minute
    # A message's whole life, checked after each step: claimed with a sender, accepted, sent, delivered,
    # read; a redelivered callback (the same values again); a late "delivered" after "read" changes nothing.
    steps = [
        "UPDATE messages SET status = 'SENDING', sender = 'whatsapp:+1' WHERE id = " + m,
        "UPDATE messages SET status = 'ACCEPTED', provider_sid = 'SM1' WHERE id = " + m,
        "UPDATE messages SET status = 'SENT', sent_at = :sent WHERE id = " + m,
        "UPDATE messages SET status = 'DELIVERED', delivered_at = CAST(:sent AS timestamptz) + interval '1 second' WHERE id = "
        + m,
        "UPDATE messages SET status = 'DELIVERED', delivered_at = CAST(:sent AS timestamptz) + interval '1 second' WHERE id = "
        + m,
        "UPDATE messages SET status = 'READ', read_at = CAST(:sent AS timestamptz) + interval '9 seconds' WHERE id = "
        + m,
        "UPDATE messages SET updated_at = now(), slot_at = :sent WHERE id = " + m,
    ]
    for step in steps:
        _run(engine, step, c=first, p=phones[0], sent=sent)
        assert_exact(engine)
    # Failures with codes, a skip by the caps, deferrals counted, a withheld bulk, a sender moved.
    writes = [
        (
            "UPDATE messages SET status = 'FAILED', error_code = 63049, failed_at = :sent, "
            "provider_sid = 'SM2' WHERE id = " + m,
            phones[1],
        ),
        (
            "UPDATE messages SET status = 'UNDELIVERED', error_code = 63024, sent_at = :sent, "
            "failed_at = CAST(:sent AS timestamptz) + interval '2 seconds', provider_sid = 'SM3' WHERE id = "
            + m,
            phones[2],
        ),
        (
            "UPDATE messages SET status = 'SKIPPED', status_reason = 'frequency_cap' WHERE id = " + m,
            phones[3],
        ),
        ("UPDATE messages SET status = 'SKIPPED', status_reason = 'no consent' WHERE id = " + m, phones[4]),
        (
            "UPDATE messages SET rate_limit_deferrals = rate_limit_deferrals + 2, "
            "rate_limit_wait_seconds = 3.5, frequency_cap_deferrals = 1 WHERE id = " + m,
            phones[5],
        ),
        ("UPDATE messages SET sender = 'whatsapp:+2' WHERE id = " + m, phones[0]),
        ("UPDATE messages SET status = 'AMBIGUOUS', sender = 'whatsapp:+1' WHERE id = " + m, phones[6]),
        ("UPDATE messages SET error_code = NULL WHERE id = " + m, phones[1]),
        # The delivery time moved by a later sent_at, by half a millisecond (rounded to a whole one).
        (
            "UPDATE messages SET sent_at = CAST(:sent AS timestamptz) + interval '0.0005 seconds' WHERE id = "
            + m,
            phones[0],
        ),
    ]
    for sql, phone in writes:
        _run(engine, sql, c=first, p=phone, sent=sent)
        assert_exact(engine)
    fold_tallies(UnitOfWork(engine))
    assert _unfolded(engine) == 0
    assert_exact(engine)
    # Delivered in bulk (one statement, distinct delivery times), inserted already delivered, and deleted
    # delivered: each statement's delivery times counted and uncounted.
    _run(
        engine,
        "UPDATE messages SET status = 'DELIVERED', sent_at = :sent, "
        "delivered_at = CAST(:sent AS timestamptz) + interval '1.0004 seconds' * right(recipient_phone, 1)::int "
        "WHERE campaign_id = :c",
        c=second,
        sent=sent,
    )
    assert_exact(engine)
    _run(
        engine,
        "INSERT INTO messages (campaign_id, recipient_phone, body, status, sent_at, delivered_at) "
        "SELECT :c, p, 'Hi', 'DELIVERED', :sent, CAST(:sent AS timestamptz) + interval '2.5 seconds' "
        "FROM unnest(CAST(:phones AS text[])) p",
        c=first,
        sent=sent,
        phones=phones[30:],
    )
    assert_exact(engine)
    # A cancel: every waiting message of one campaign withheld in one statement; then deletes.
    _run(
        engine,
        "UPDATE messages SET status = 'WITHHELD', status_reason = 'cancelled' "
        "WHERE campaign_id = :c AND status = 'QUEUED'",
        c=first,
    )
    assert_exact(engine)
    _run(
        engine, "DELETE FROM messages WHERE campaign_id = :c AND recipient_phone > :p", c=second, p=phones[35]
    )
    assert_exact(engine)
    # A rolled-back write leaves nothing behind.
    with engine.connect() as conn, conn.begin() as tx:
        conn.execute(
            text("UPDATE messages SET status = 'READ', read_at = now() WHERE campaign_id = :c"), {"c": second}
        )
        tx.rollback()
    assert_exact(engine)
    fold_tallies(UnitOfWork(engine))
    assert_exact(engine)


def test_random_writes_and_folds_keep_the_tallies_exact(engine: Engine) -> None:
    rng = random.Random(18)
    phones = add_users(engine, 60)
    campaign = add_campaign(engine, status="RUNNING", sender_pool="main")
    _insert(engine, campaign, phones)
    statuses = [s.value for s in MessageStatus]
    for round_no in range(60):
        chosen = rng.sample(phones, rng.randint(1, 8))
        at = T0 + timedelta(seconds=rng.randint(0, 300), microseconds=rng.randint(0, 999_999))
        _run(
            engine,
            "UPDATE messages SET status = :status, sender = :sender, error_code = :code, "
            "provider_sid = CASE WHEN :sid THEN 'SM' || id ELSE NULL END, sent_at = :sent, "
            "delivered_at = :delivered, read_at = :read, failed_at = :failed, "
            "rate_limit_deferrals = :deferrals, frequency_cap_deferrals = :caps "
            "WHERE campaign_id = :c AND recipient_phone = ANY(CAST(:phones AS text[]))",
            status=rng.choice(statuses),
            sender=rng.choice([None, "whatsapp:+1", "whatsapp:+2"]),
            code=rng.choice([None, None, 63016, 63049]),
            sid=rng.random() < 0.7,
            sent=rng.choice([None, at]),
            delivered=rng.choice([None, at + timedelta(seconds=rng.uniform(0, 90))]),
            read=rng.choice([None, at + timedelta(seconds=rng.uniform(0, 600))]),
            failed=rng.choice([None, None, at + timedelta(seconds=1)]),
            deferrals=rng.randint(0, 3),
            caps=rng.randint(0, 2),
            c=campaign,
            phones=chosen,
        )
        if round_no % 7 == 0:
            fold_tallies(UnitOfWork(engine))
        assert_exact(engine)
        if round_no % 5 == 0:
            assert_snapshot_agrees(engine, campaign)


def assert_snapshot_agrees(engine: Engine, campaign: int) -> None:
    """The campaign summary's one-scan snapshot gives what each count's own query gives."""
    with engine.connect() as conn:
        session = _session(conn)
        counted = tallies.snapshot(session, campaign, analytics.MARKETING_LIMIT_ERROR)
        assert counted.status_counts == tallies.status_counts(session, campaign)
        row = tallies.totals(session, campaign, analytics.MARKETING_LIMIT_ERROR)
        assert asdict(counted.totals) == dict(row._mapping)
        assert counted.sends_per_minute == tallies.sends_per_minute(session, campaign)
        assert counted.per_sender == tallies.per_sender(session, campaign)
        assert counted.error_codes == tallies.error_codes(session, campaign)


def test_concurrent_sends_of_one_campaign_do_not_wait_on_each_other(engine: Engine) -> None:
    phones = add_users(engine, 2)
    campaign = add_campaign(engine, status="RUNNING")
    _insert(engine, campaign, phones)
    fold_tallies(UnitOfWork(engine))
    with engine.connect() as holder, holder.begin():
        # One send's transaction moves its message and stays open...
        holder.execute(
            text("UPDATE messages SET status = 'SENDING' WHERE recipient_phone = :p"), {"p": phones[0]}
        )
        # ...while another send of the same campaign, and a fold, commit without waiting for it.
        with engine.connect() as other, other.begin():
            other.execute(text("SET LOCAL lock_timeout = '2s'"))
            other.execute(
                text("UPDATE messages SET status = 'SENDING' WHERE recipient_phone = :p"), {"p": phones[1]}
            )
        with engine.connect() as folder, folder.begin():
            folder.execute(text("SET LOCAL lock_timeout = '2s'"))
            tallies.fold(_session(folder))
    # The open transaction's deltas were not in the fold's snapshot: they count once it commits.
    assert_exact(engine)
    with engine.connect() as conn:
        counts = tallies.status_counts(_session(conn), campaign)
    assert counts == {MessageStatus.SENDING.value: 2}


def test_two_folds_at_once_with_writers_lose_nothing(engine: Engine) -> None:
    phones = add_users(engine, 30)
    campaign = add_campaign(engine, status="RUNNING")
    _insert(engine, campaign, phones)
    errors: list[BaseException] = []

    def write(chunk: list[str]) -> None:
        try:
            for p in chunk:
                _run(engine, "UPDATE messages SET status = 'SENDING' WHERE recipient_phone = :p", p=p)
                _run(
                    engine,
                    "UPDATE messages SET status = 'ACCEPTED', provider_sid = 'SM' || id WHERE recipient_phone = :p",
                    p=p,
                )
        except BaseException as error:  # reported below, in the test's thread
            errors.append(error)

    def fold() -> None:
        try:
            for _ in range(10):
                fold_tallies(UnitOfWork(engine))
        except BaseException as error:
            errors.append(error)

    threads = [
        threading.Thread(target=write, args=(phones[:15],)),
        threading.Thread(target=write, args=(phones[15:],)),
        threading.Thread(target=fold),
        threading.Thread(target=fold),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert_exact(engine)
    fold_tallies(UnitOfWork(engine))
    assert _unfolded(engine) == 0
    assert_exact(engine)


def _vacuums(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("""
                SELECT relname, vacuum_count FROM pg_stat_user_tables
                WHERE relname IN ('message_tallies', 'delivery_time_tallies')""")
        ).all()
    return {str(name): int(count) for name, count in rows}


def test_a_fold_vacuums_the_tallies_it_left_dead_rows_in(engine: Engine) -> None:
    """The fold deletes the deltas it sums; the tick vacuums both tally tables right after, so reads do not
    step over them until autovacuum's nap ends. Nothing folded, nothing to vacuum."""
    phones = add_users(engine, 5)
    campaign = add_campaign(engine, status="RUNNING")
    _insert(engine, campaign, phones)
    for p in phones:
        _run(engine, "UPDATE messages SET status = 'SENDING' WHERE recipient_phone = :p", p=p)
    before = _vacuums(engine)

    assert fold_tallies(UnitOfWork(engine)) > 0

    after = _vacuums(engine)
    assert {table: after[table] - before[table] for table in after} == {
        "message_tallies": 1,
        "delivery_time_tallies": 1,
    }
    assert fold_tallies(UnitOfWork(engine)) == 0
    assert _vacuums(engine) == after
    assert_exact(engine)


def test_a_fold_neither_waits_for_nor_fails_on_a_vacuum_already_at_work(engine: Engine) -> None:
    """A VACUUM in progress (autovacuum, an overlapping tick) holds the table's SHARE UPDATE EXCLUSIVE lock:
    the tick's VACUUM skips a table it cannot lock at once, and the fold itself never needed that lock."""
    phones = add_users(engine, 3)
    campaign = add_campaign(engine, status="RUNNING")
    _insert(engine, campaign, phones)
    before = _vacuums(engine)
    done = threading.Event()

    def tick() -> None:
        fold_tallies(UnitOfWork(engine))
        done.set()

    with engine.connect() as vacuum, vacuum.begin():
        vacuum.execute(text("LOCK TABLE message_tallies IN SHARE UPDATE EXCLUSIVE MODE"))
        folder = threading.Thread(target=tick)
        folder.start()
        folder.join(timeout=30)
        assert done.is_set(), "the tick waited for the VACUUM's lock"
    after = _vacuums(engine)
    assert after["message_tallies"] == before["message_tallies"]  # skipped, not waited for
    assert after["delivery_time_tallies"] == before["delivery_time_tallies"] + 1
    assert _unfolded(engine) == 0
    assert_exact(engine)


@pytest.mark.parametrize("count", [1, 2, 3, 4, 5, 10, 11, 37])
def test_percentiles_by_position_equal_percentile_cont(engine: Engine, count: int) -> None:
    rng = random.Random(count)
    phones = add_users(engine, count)
    campaign = add_campaign(engine, status="RUNNING")
    _insert(engine, campaign, phones)
    for p in phones:
        sent = T0 + timedelta(seconds=rng.randint(0, 100))
        _run(
            engine,
            "UPDATE messages SET status = 'READ', sent_at = :sent, delivered_at = :delivered, read_at = :read, "
            "rate_limit_deferrals = 1, rate_limit_wait_seconds = :wait WHERE recipient_phone = :p",
            sent=sent,
            # Sub-millisecond parts too: the delivery time is measured in whole milliseconds (rounded).
            delivered=sent
            + timedelta(seconds=rng.choice([1, 2, 2, 3.25, 7, 0.0015, 2.0004, 2.0006, 9.9995])),
            read=sent + timedelta(seconds=rng.uniform(0, 500)),
            wait=rng.uniform(0, 60),
            p=p,
        )
    measures = {
        "to_deliver": f"CAST({analytics.DELIVERY_MS} / 1000 AS double precision)",
        "to_read": "date_part('epoch', read_at - sent_at)",
        "rate_limit_wait": "rate_limit_wait_seconds",
    }
    with engine.connect() as conn:
        session = _session(conn)
        for measure, value in measures.items():
            for fraction in (0.5, 0.9, 1.0, 0.0, 0.25):
                expected = conn.execute(
                    text(
                        f"SELECT percentile_cont(:p) WITHIN GROUP (ORDER BY {value}) FROM messages "
                        "WHERE campaign_id = :c"
                    ),
                    {"p": fraction, "c": campaign},
                ).scalar_one()
                n, found = analytics.percentile(session, campaign, measure, fraction)
                assert n == count
                assert found == pytest.approx(expected, abs=1e-9)


def test_no_measured_messages_have_no_percentile(engine: Engine) -> None:
    phones = add_users(engine, 3)
    campaign = add_campaign(engine, status="RUNNING")
    _insert(engine, campaign, phones)
    with engine.connect() as conn:
        assert analytics.percentile(_session(conn), campaign, "to_deliver", 0.5) == (0, None)
        assert analytics.percentile(_session(conn), campaign, "to_read", 0.9) == (0, None)


def test_the_tallies_count_only_whole_minutes(engine: Engine) -> None:
    with engine.connect() as conn:
        with pytest.raises(ValueError, match="whole minutes"):
            tallies.since(_session(conn), T0 + timedelta(seconds=1))
        with pytest.raises(ValueError, match="whole minutes"):
            tallies.sends_per_bucket(_session(conn), T0, timedelta(seconds=30), None)


def test_the_migration_counts_the_delivery_times_already_there(engine: Engine) -> None:
    """Migration 0015's backfill: messages delivered before it are in delivery_time_tallies after it."""
    phones = add_users(engine, 6)
    campaign = add_campaign(engine, status="RUNNING")
    with engine.begin() as conn:
        command.downgrade(alembic_config(conn), "0014")
    _insert(engine, campaign, phones)
    _run(
        engine,
        "UPDATE messages SET status = 'DELIVERED', sent_at = :at, "
        "delivered_at = CAST(:at AS timestamptz) + interval '0.2505 seconds' * right(recipient_phone, 1)::int "
        "WHERE recipient_phone <> :p",
        at=T0,
        p=phones[0],
    )
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), "head")
    assert sum(_delivery_times(engine, _DELIVERY_SUMMED).values()) == 5
    assert_exact(engine)
    with engine.connect() as conn:
        assert analytics.percentile(_session(conn), campaign, "to_deliver", 0.5)[0] == 5
