"""Bulk import: a CSV with ~2% invalid phones and ~5% repeated ones through `POST /v1/users/import`,
against a raw `COPY` of the same file into a plain table of text columns, in the same run.

Each run starts from an empty `users` table (a first import inserts; re-importing would measure updates).
The memory figure is the peak resident set of the `api` worker during the request.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from infra.bench.context import BenchContext
from infra.bench.datasets import IMPORT_COLUMNS, ImportFile, import_csv
from infra.bench.db import connect
from infra.bench.errors import NotMeasurable
from infra.bench.measurement import Measurement, median, repeat_within, timed
from infra.bench.procfs import peak_rss_mb, reset_peak_rss

FIGURE = "bulk import"
UNIT = "rows/s"
TARGET = "≥ 100,000 rows/s and ≥ 0.3 x raw COPY; peak memory < 300 MB"
# The server `--profile` samples while the figure runs.
PROFILED: str | None = "api"
MIN_ROWS_PER_SECOND = 100_000
MIN_COPY_RATIO = 0.3
MAX_PEAK_MB = 300
BASELINE_TABLE = "bench_copy_baseline"


@dataclass(frozen=True)
class Size:
    rows: int
    max_runs: int
    budget_seconds: float  # fewer runs when one import of the file takes minutes


FULL = Size(rows=1_000_000, max_runs=3, budget_seconds=300)
SMOKE = Size(rows=1_000, max_runs=1, budget_seconds=60)


def run(ctx: BenchContext, size: Size) -> Measurement:
    data = import_csv(size.rows)

    def both() -> tuple[float, float, float, dict[str, object]]:
        copy_rate = data.rows / timed(lambda: _raw_copy(ctx.database_url, data))
        seconds, peak, report = _import(ctx, data)
        return copy_rate, data.rows / seconds, peak, report

    runs = repeat_within(size.budget_seconds, size.max_runs, both)
    baseline, value = median([r[0] for r in runs]), median([r[1] for r in runs])
    peak_mb, report = max(r[2] for r in runs), runs[-1][3]
    counts_match = (report.get("rejected"), report.get("duplicates_merged"), report.get("inserted")) == (
        data.invalid,
        data.duplicates,
        data.valid_unique,
    )
    return Measurement(
        figure=FIGURE,
        unit=UNIT,
        target=TARGET,
        value=value,
        baseline=baseline,
        baseline_label="raw COPY of the same rows",
        met=value >= MIN_ROWS_PER_SECOND and value >= MIN_COPY_RATIO * baseline and peak_mb < MAX_PEAK_MB,
        runs=len(runs),
        details={
            "rows": data.rows,
            "invalid rows in the file": data.invalid,
            "repeated phones in the file": data.duplicates,
            "peak RSS of the api worker (MB, worst run)": peak_mb,
            "import report of the last run": {
                k: report.get(k) for k in ("inserted", "duplicates_merged", "rejected")
            },
            "report counts match the file": counts_match,
        },
        notes=(
            f"runs: up to {size.max_runs}, as many as fit {size.budget_seconds:.0f} s (one import of a large file can take minutes)",
            "value: rows in the file / wall time of the whole HTTP request, streamed from disk, into an empty users table",
            f"baseline: pg8000 COPY ... FROM STDIN (FORMAT csv) of the same file into a plain table of {len(IMPORT_COLUMNS)} text columns, no constraints or indexes",
        ),
    )


def _raw_copy(database_url: str, data: ImportFile) -> None:
    conn = connect(database_url)
    try:
        columns = ", ".join(f"{name} text" for name in IMPORT_COLUMNS)
        conn.run(f"DROP TABLE IF EXISTS {BASELINE_TABLE}")
        conn.run(f"CREATE TABLE {BASELINE_TABLE} ({columns})")
        with data.path.open("rb") as stream:
            conn.run(f"COPY {BASELINE_TABLE} FROM STDIN WITH (FORMAT csv, HEADER true)", stream=stream)
        if conn.row_count != data.rows:
            raise RuntimeError(f"the baseline COPY loaded {conn.row_count} rows of {data.rows}")
        conn.run(f"DROP TABLE {BASELINE_TABLE}")
    finally:
        conn.close()


def _import(ctx: BenchContext, data: ImportFile) -> tuple[float, float, dict[str, object]]:
    """(seconds, peak RSS in MB, the import report) for one import into an empty users table."""
    conn = connect(ctx.database_url)
    try:
        conn.run("TRUNCATE users, subscriptions, audit_events CASCADE")
    finally:
        conn.close()
    pids = ctx.server_pids("api")
    reset_peak_rss(pids)
    with data.path.open("rb") as body:
        start = time.perf_counter()
        response = ctx.api("POST", "/v1/users/import", data=body, headers={"Content-Type": "text/csv"})
        seconds = time.perf_counter() - start
    if response.status_code in (404, 501):
        raise NotMeasurable(
            f"POST /v1/users/import answered {response.status_code}: the import is not built yet"
        )
    response.raise_for_status()
    return seconds, peak_rss_mb(pids), response.json()
