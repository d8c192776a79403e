"""The GCRA rate limiter on real PostgreSQL: concurrent reservations from separate connections never put
more than `rate` send starts in any 1-second window, for a campaign or for the sender across campaigns."""

from __future__ import annotations

import heapq
import itertools
import random
import threading
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, text

from shared.db.unit_of_work import UnitOfWork
from shared.services.rate_limiter import RateKey, campaign_key, push_later, reserve_slot, sender_key

MARGIN = 0.025


def _max_in_any_second(slots: list[datetime]) -> int:
    ordered = sorted(slots)
    best, start = 0, 0
    for end, at in enumerate(ordered):
        while at - ordered[start] >= timedelta(seconds=1):
            start += 1
        best = max(best, end - start + 1)
    return best


def _reserve_concurrently(
    engine: Engine, requests: list[tuple[list[RateKey], datetime]], threads: int
) -> list[datetime]:
    """Each thread has its own connection and transaction, as separate send_message instances would."""
    return [slot for _, slot in _reserve_concurrently_by_keys(engine, requests, threads)]


def _reserve_concurrently_by_keys(
    engine: Engine, requests: list[tuple[list[RateKey], datetime]], threads: int
) -> list[tuple[list[RateKey], datetime]]:
    """Each slot with the keys it was reserved on, in the order the reservations completed."""
    slots: list[tuple[list[RateKey], datetime]] = []
    lock = threading.Lock()
    work = list(requests)
    barrier = threading.Barrier(threads)

    def worker() -> None:
        barrier.wait()
        while True:
            with lock:
                if not work:
                    return
                keys, now = work.pop()
            with UnitOfWork(engine) as uow:
                slot = reserve_slot(uow.session, keys, now)
                uow.commit()
            with lock:
                slots.append((keys, slot))

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return slots


def test_two_connections_racing_for_one_key_get_distinct_spaced_slots(engine: Engine) -> None:
    now = datetime(2026, 3, 2, 12, tzinfo=UTC)
    key = campaign_key(1, 20, MARGIN)

    slots = _reserve_concurrently(engine, [([key], now)] * 40, threads=2)

    ordered = sorted(slots)
    assert ordered[0] == now
    assert all(b - a >= key.spacing for a, b in itertools.pairwise(ordered))


def test_first_sends_deferrals_and_retries_together_never_exceed_the_rate_in_any_second(
    engine: Engine,
) -> None:
    """First sends arrive in a planned stream, deferred sends all at one window end, retries at scattered
    later instants: naive spacing would pile them onto the same seconds; the limiter spreads them."""
    rate = 20
    start = datetime(2026, 3, 2, 12, tzinfo=UTC)
    key = campaign_key(7, rate, MARGIN)
    rng = random.Random(5)
    first_sends = [start + k * key.spacing for k in range(100)]
    deferred = [start + timedelta(seconds=2)] * 60
    retries = [start + timedelta(seconds=rng.uniform(1, 4)) for _ in range(60)]
    requests = [([key], at) for at in first_sends + deferred + retries]
    rng.shuffle(requests)

    slots = _reserve_concurrently(engine, requests, threads=6)

    assert len(slots) == 220
    assert _max_in_any_second(slots) <= rate
    ordered = sorted(slots)
    assert all(ordered[i + rate] - ordered[i] >= timedelta(seconds=1) for i in range(len(ordered) - rate))


def test_the_sender_key_bounds_the_sum_across_campaigns(engine: Engine) -> None:
    now = datetime(2026, 3, 2, 12, tzinfo=UTC)
    sender = sender_key("whatsapp:+14155238886", 30, MARGIN)
    campaigns = [campaign_key(c, 25, MARGIN) for c in (1, 2, 3)]
    requests = [([campaign, sender], now) for campaign in campaigns for _ in range(50)]

    reserved = _reserve_concurrently_by_keys(engine, requests, threads=4)

    assert _max_in_any_second([slot for _, slot in reserved]) <= 30
    for campaign in campaigns:
        # By the keys each slot was reserved on: threads finish in any order, so not by position.
        own = [slot for keys, slot in reserved if keys[0] == campaign]
        assert len(own) == 50 and _max_in_any_second(own) <= 25


def test_a_key_idle_for_a_while_starts_again_at_now_without_a_burst(engine: Engine) -> None:
    key = campaign_key(9, 10, MARGIN)
    t0 = datetime(2026, 3, 2, 12, tzinfo=UTC)
    with UnitOfWork(engine) as uow:
        first = reserve_slot(uow.session, [key], t0)
        later = t0 + timedelta(minutes=5)
        second = reserve_slot(uow.session, [key], later)
        third = reserve_slot(uow.session, [key], later)
        uow.commit()

    assert (first, second, third) == (t0, later, later + key.spacing)


def test_late_sends_that_push_the_calendar_keep_every_window_under_the_ceiling(engine: Engine) -> None:
    """Sends arrive at nearly the key's rate, each a little jittered, and start late on their slot a quarter of
    the time, some by more than a slot. Played in time order on real PostgreSQL: a late one pushes the
    key (if allowed) and starts where it woke, otherwise it takes a fresh slot. However they fall, every
    `rate` + 1 consecutive starts span a second and half the margin (the half left for the wire to Twilio),
    so no 1-second window holds more than `rate` (docs/architecture.md, "Late sends")."""
    rate, lead, tolerance, allowance = (
        20,
        timedelta(milliseconds=20),
        timedelta(seconds=MARGIN / 2),
        timedelta(milliseconds=5),
    )
    key = sender_key("whatsapp:+15550001111", rate, MARGIN)
    rng = random.Random(7)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    # (when, order, what, message, slot): arrivals reserve a slot; wake-ups check it.
    events: list[tuple[datetime, int, str, int, datetime | None]] = [
        (start + n * key.spacing * 1.1 + timedelta(milliseconds=rng.uniform(0, 15)), n, "arrive", n, None)
        for n in range(400)
    ]
    heapq.heapify(events)
    starts: list[datetime] = []
    pushes = retakes = 0
    order = itertools.count(10_000)
    while events:
        when, _, what, message, slot = heapq.heappop(events)
        if what == "arrive" or slot is None:
            with UnitOfWork(engine) as uow:
                slot = reserve_slot(uow.session, [key], when + lead)
                uow.commit()
            late = timedelta(milliseconds=rng.choice([0, 0, 0, rng.uniform(0, 80)]))
            heapq.heappush(events, (slot + late, next(order), "wake", message, slot))
            continue
        over = when - slot - tolerance
        if over <= timedelta(0):
            starts.append(when)
        elif over + allowance <= key.spacing and push_later(
            UnitOfWork(engine), [key], slot, over + allowance
        ):
            pushes += 1
            starts.append(when)
        else:
            retakes += 1
            heapq.heappush(events, (when, next(order), "arrive", message, None))

    assert len(starts) == 400
    assert pushes > 20 and retakes > 5, (pushes, retakes)  # both paths were taken
    ordered = sorted(starts)
    tightest = min(b - a for a, b in zip(ordered, ordered[rate:], strict=False))
    assert tightest >= timedelta(seconds=1 + MARGIN / 2) - timedelta(microseconds=1), tightest
    assert _max_in_any_second(starts) <= rate


def test_a_push_refuses_when_a_key_is_booked_more_than_a_second_past_the_slot(engine: Engine) -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    ahead, near = sender_key("whatsapp:+15550002222", 2, MARGIN), campaign_key(7, 80, MARGIN)
    with UnitOfWork(engine) as uow:
        slot = reserve_slot(uow.session, [ahead, near], now)
        for _ in range(2):  # the slow key's tat is now 3 of its 0.51-s slots past `slot`
            reserve_slot(uow.session, [ahead], now)
        uow.commit()
    before = _tats(engine)

    assert not push_later(UnitOfWork(engine), [ahead, near], slot, timedelta(milliseconds=10))
    assert _tats(engine) == before  # neither key moved, the near one included

    assert push_later(UnitOfWork(engine), [near], slot, timedelta(milliseconds=10))
    assert _tats(engine)[near.key] == before[near.key] + timedelta(milliseconds=10)


def _tats(engine: Engine) -> dict[str, datetime]:
    with engine.connect() as conn:
        return {str(k): t for k, t in conn.execute(text("SELECT key, tat FROM rate_limiters"))}
