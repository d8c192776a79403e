"""Segment: count and page through a 3-condition nested segment over opted-in users, compiled by
`shared.db.queries.segments`, against the same query written by hand with the same type test, in the same
run.

The segment is `city in (3 of 10) AND (age >= 40 OR tier = gold)`, about 19% of users. "Page through" reads
the whole audience in phone order, as the campaign trigger freezes it (one query, not keyset pages: with
the planner's estimate for JSONB expressions, each keyset page of a 1M-row table is a full scan, ~0.3 s,
for the hand-written query as much as the compiled one). Both versions run alternately, after a warm-up,
and must return the same audience, or the comparison means nothing.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from sqlalchemy import Connection, Executable, create_engine, text

from infra.bench.context import BenchContext
from infra.bench.datasets import seed_users
from infra.bench.db import connect
from infra.bench.measurement import Measurement, median, timed
from shared.db.queries.segments import audience_query, count_query

FIGURE = "segment"
UNIT = "ms"
TARGET = "≤ 1.1 x hand-written SQL with the same type test (count and paging); count < 300 ms"
# The server `--profile` samples while the figure runs (None: the work is in PostgreSQL).
PROFILED: str | None = None
MAX_RATIO = 1.1
MAX_COUNT_MS = 300
CITIES = ["Lagos", "Nairobi", "Accra"]
DEFINITION = {
    "operator": "AND",
    "conditions": [
        {"attribute": "city", "operator": "in", "value": CITIES},
        {
            "operator": "OR",
            "conditions": [
                {"attribute": "age", "operator": "gte", "value": 40},
                {"attribute": "tier", "operator": "equals", "value": "gold"},
            ],
        },
    ],
}
HAND_WHERE = """consent_state = 'OPT_IN'
  AND attributes->>'city' IN ('Lagos', 'Nairobi', 'Accra')
  AND ((attributes->>'age')::numeric >= 40 OR attributes->>'tier' = 'gold')"""
HAND_COUNT = f"SELECT count(*) FROM users WHERE {HAND_WHERE}"
# The naive hand-written query fails outright once one candidate's age is not a number ("unknown"); it is
# timed for scale only. Written by hand to mean what the compiled one means (JSON numbers and decimal text
# compare numerically, anything else never matches), it pays for the same type test: the baseline.
TYPE_SAFE_WHERE = r"""consent_state = 'OPT_IN'
  AND attributes->>'city' IN ('Lagos', 'Nairobi', 'Accra')
  AND (CASE jsonb_typeof(attributes->'age')
         WHEN 'number' THEN (attributes->>'age')::numeric >= 40
         WHEN 'string' THEN CASE WHEN attributes->>'age' ~ '^\s*-?[0-9]{1,30}(\.[0-9]{1,30})?\s*$'
                                 THEN (attributes->>'age')::numeric >= 40 ELSE false END
         ELSE false END
       OR attributes->>'tier' = 'gold')"""
TYPE_SAFE_COUNT = f"SELECT count(*) FROM users WHERE {TYPE_SAFE_WHERE}"
HAND_AUDIENCE = f"SELECT phone_e164 FROM users WHERE {HAND_WHERE} ORDER BY phone_e164"
TYPE_SAFE_AUDIENCE = f"SELECT phone_e164 FROM users WHERE {TYPE_SAFE_WHERE} ORDER BY phone_e164"


@dataclass(frozen=True)
class Size:
    users: int
    runs: int


FULL = Size(users=1_000_000, runs=5)
SMOKE = Size(users=1_000, runs=1)


def run(ctx: BenchContext, size: Size) -> Measurement:
    seed_users(ctx.database_url, 0, size.users)
    _analyze(ctx.database_url)
    engine = create_engine(ctx.database_url)
    timings: dict[str, list[float]] = {
        "count": [],
        "hand count": [],
        "type-safe count": [],
        "paging": [],
        "hand paging": [],
        "type-safe paging": [],
    }
    with engine.connect() as conn:
        # The warm-up, and the check that both versions select the same people.
        counts = (
            conn.execute(count_query(DEFINITION)).scalar_one(),
            conn.execute(text(HAND_COUNT)).scalar_one(),
            conn.execute(text(TYPE_SAFE_COUNT)).scalar_one(),
        )
        audiences = (
            _read_all(conn, audience_query(DEFINITION)),
            _read_all(conn, text(HAND_AUDIENCE)),
            _read_all(conn, text(TYPE_SAFE_AUDIENCE)),
        )
        if len(set(counts)) != 1 or len(set(audiences)) != 1:
            raise AssertionError(f"compiled and hand-written segments disagree: counts {counts}")
        for _ in range(size.runs):
            timings["count"].append(1000 * timed(lambda: conn.execute(count_query(DEFINITION)).scalar_one()))
            timings["hand count"].append(1000 * timed(lambda: conn.execute(text(HAND_COUNT)).scalar_one()))
            timings["type-safe count"].append(
                1000 * timed(lambda: conn.execute(text(TYPE_SAFE_COUNT)).scalar_one())
            )
            timings["paging"].append(1000 * timed(lambda: _read_all(conn, audience_query(DEFINITION))))
            timings["hand paging"].append(1000 * timed(lambda: _read_all(conn, text(HAND_AUDIENCE))))
            timings["type-safe paging"].append(
                1000 * timed(lambda: _read_all(conn, text(TYPE_SAFE_AUDIENCE)))
            )
    engine.dispose()
    count_ms, paging_ms = median(timings["count"]), median(timings["paging"])
    safe_count_ms, safe_paging_ms = median(timings["type-safe count"]), median(timings["type-safe paging"])
    return Measurement(
        figure=FIGURE,
        unit=UNIT,
        target=TARGET,
        value=count_ms,
        baseline=safe_count_ms,
        baseline_label="hand-written SQL with the same type test",
        met=count_ms <= MAX_RATIO * safe_count_ms
        and paging_ms <= MAX_RATIO * safe_paging_ms
        and count_ms < MAX_COUNT_MS,
        runs=size.runs,
        details={
            "users": size.users,
            "audience": counts[0],
            "reading the whole audience, compiled (ms)": paging_ms,
            "reading the whole audience, hand-written with the type test (ms)": safe_paging_ms,
            "reading ratio": paging_ms / safe_paging_ms,
            "for scale: count, naive hand-written (ms)": median(timings["hand count"]),
            "for scale: reading the whole audience, naive hand-written (ms)": median(timings["hand paging"]),
        },
        notes=(
            f"segment: {DEFINITION}",
            f"baseline, hand-written with the same type test: {' '.join(TYPE_SAFE_WHERE.split())}",
            "all three return the same audience (checked); value and baseline are count(*) times, paging is in "
            "the details",
            "for scale, the naive hand-written query, which casts every candidate's age to numeric (one "
            f"non-numeric age makes it fail): {' '.join(HAND_WHERE.split())}",
        ),
    )


def _read_all(conn: Connection, query: Executable) -> tuple[int, str]:
    """Every phone of the audience, in order: (how many, a digest of them)."""
    phones = conn.execute(query).scalars().all()
    return len(phones), hashlib.sha256("\n".join(phones).encode()).hexdigest()


def _analyze(database_url: str) -> None:
    # Fresh statistics, as autovacuum would give a table that size before anyone queried it.
    conn = connect(database_url)
    try:
        conn.run("VACUUM ANALYZE users")
    finally:
        conn.close()
