"""The harness's own arithmetic and plumbing, on small inputs whose right answer is known."""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from infra.bench.cpu import CORES, machine_ceiling
from infra.bench.figures import bulk_import, million
from infra.bench.figures.million import MIN_POLL_SECONDS, extrapolate, next_poll_in, product_ms
from infra.bench.figures.pool_rate import pool_fidelity, unused_slots
from infra.bench.machine import describe_machine
from infra.bench.measurement import Measurement, not_measured
from infra.bench.procfs import listening_pids, peak_rss_mb
from infra.bench.rates import max_in_window, mean_rate
from infra.bench.report import render_markdown


def test_max_in_window_counts_any_one_second_window_not_just_whole_seconds() -> None:
    # Whole seconds hold 1, 3 and 1; the window [0.9, 1.9) holds 4.
    assert max_in_window([0.9, 1.0, 1.1, 1.8, 2.5], 1.0) == 4


def test_max_in_window_excludes_the_window_end() -> None:
    assert max_in_window([0.0, 1.0, 2.0], 1.0) == 1


def test_report_shows_ratio_missed_targets_and_why_a_figure_was_not_measured() -> None:
    missed = Measurement(
        figure="bulk import",
        unit="rows/s",
        target="≥ 100,000 rows/s",
        value=50_000.0,
        baseline=200_000.0,
        baseline_label="raw COPY",
        met=False,
        runs=3,
    )
    missing = not_measured("send", "msg/s", "≥ 300 messages/s", "send_message answers 501")

    table = render_markdown([missed, missing], describe_machine())

    assert (
        "| bulk import | 50,000 rows/s | 200,000 rows/s (raw COPY) | 0.25 | ≥ 100,000 rows/s | **no** |"
        in table
    )
    assert "| send | not measured: send_message answers 501 |" in table
    assert f"{describe_machine().cores} cores" in table


def test_the_process_serving_a_port_is_found_and_its_peak_memory_read() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]

        assert os.getpid() in listening_pids(port)
    assert peak_rss_mb([os.getpid()]) > 1


def test_mean_rate_is_count_minus_one_over_first_to_last() -> None:
    assert mean_rate([10.0, 10.5, 11.0, 12.0]) == 1.5
    assert mean_rate([3.0]) == 0.0


def _accepted(sender: str, to: str, second: float) -> dict[str, str]:
    at = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=second)
    return {"from": sender, "to": to, "created_at": at.isoformat()}


def test_pool_fidelity_judges_each_sender_by_its_own_windows_and_finds_shared_recipients() -> None:
    a, b = "whatsapp:+14155550101", "whatsapp:+14155550102"
    messages = [
        # a: three within [0.2, 1.2); b: one a second; +3 got one from each sender; +5 from outside.
        _accepted(a, "+1", 0.2),
        _accepted(a, "+2", 0.7),
        _accepted(a, "+3", 1.1),
        _accepted(b, "+3", 0.0),
        _accepted(b, "+4", 1.0),
        _accepted("whatsapp:+19999999999", "+5", 2.0),
    ]

    result = pool_fidelity(messages, recipients=6, pool=[a, b], step=timedelta(seconds=0.5))

    assert result.max_window_by_sender == {a: 3, b: 1, "whatsapp:+19999999999": 1}
    assert result.sent_by_sender[a] == 3
    assert result.drops == 1  # +6
    assert result.duplicates == 1
    assert result.multi_sender_recipients == 1
    assert result.foreign_messages == 1
    assert result.mean == 2.5  # 5 intervals over 2 s
    assert result.sender_means == pytest.approx({a: 2 / 0.9, b: 1.0, "whatsapp:+19999999999": 0.0})
    # b's gap of 1.0 s is two 0.5-s slots, one of them unused; a's gaps (0.5, 0.4) leave none.
    assert result.unused_slots == {a: 0, b: 1, "whatsapp:+19999999999": 0}


def test_unused_slots_count_the_slots_a_gap_held_beyond_the_first() -> None:
    assert unused_slots([0.0, 0.05, 0.1], 0.05) == 0
    assert unused_slots([0.0, 0.16, 0.21], 0.05) == 2  # 0.16 s is about three slots: two unused
    assert unused_slots([0.0, 0.06], 0.05) == 0  # a late acceptance is jitter, not a lost slot
    assert unused_slots([], 0.05) == 0


def test_extrapolation_is_bound_by_the_slower_of_senders_and_queues() -> None:
    production = extrapolate(1_000_000, cpu_ms=12.5)

    assert production.sender_bound_seconds == 1_000_000 / 800
    assert production.queue_bound_seconds == 1_000_000 / (million.PRODUCTION_SEND_QUEUES * 500)
    assert production.wall_seconds == max(production.sender_bound_seconds, production.queue_bound_seconds)
    assert production.instance_seconds == 12_500
    assert production.instances_at_pool_rate == 10  # ceil(800 x 12.5 ms / 1000)
    assert "max(1,000,000 / (10 x 80)" in "".join(production.as_details().values())


def test_product_cpu_sums_only_the_named_process_groups() -> None:
    cpu = {"send_message": 4.0, "PostgreSQL": 2.5, "Twilio emulator": 3.0, "all of the stack": 9.5}

    assert product_ms(cpu, ["send_message", "status_webhook", "PostgreSQL"]) == 6.5


def test_the_pool_mean_is_judged_while_every_sender_has_recipients_left() -> None:
    """a ends at 1.0 s; b sends on alone until 3.0 s: the saturated mean stops where a stopped."""
    a, b = "whatsapp:+14155550101", "whatsapp:+14155550102"
    messages = [_accepted(a, f"+1{i}", i * 0.5) for i in range(3)] + [
        _accepted(b, f"+2{i}", i * 0.5) for i in range(7)
    ]

    result = pool_fidelity(messages, recipients=10, pool=[a, b], step=timedelta(seconds=0.5))

    assert result.saturated_mean == 5 / 1.0  # 6 acceptances in [0, 1.0]
    assert result.mean == 9 / 3.0


def test_an_import_file_is_cut_into_parts_at_row_ends_each_with_the_header(tmp_path: Path) -> None:
    path = tmp_path / "users.csv"
    rows = [b"phone,name\n"] + [f"+1555000{i:04d},n{i}\n".encode() for i in range(100)]
    path.write_bytes(b"".join(rows))

    parts = list(bulk_import._parts(path, 200))

    assert all(len(p) <= 200 and p.startswith(b"phone,name\n") for p in parts)
    assert b"".join(p.removeprefix(rows[0]) for p in parts) == b"".join(rows[1:])
    assert len(parts) > 1


def test_a_window_polls_a_handful_of_times_whatever_its_backlog() -> None:
    """The 1M figure's window counts its backlog; polled on a fixed interval, that count (PostgreSQL CPU,
    measured) cost the first window, a million rows deep, far more than the last."""
    rate, goal, left, elapsed, polls = 61.5, 10_000, 10_000, 0.0, 0
    while left > 0:
        pause = next_poll_in(left, goal - left, elapsed, nominal_rate=80)
        elapsed += pause
        left = max(0, goal - int(rate * elapsed))
        polls += 1
    assert polls <= 8
    # Before any send is seen, the nominal rate; after, the rate seen so far; never below the floor.
    assert next_poll_in(800, 0, 0.0, nominal_rate=80) == 9.0
    assert next_poll_in(600, 600, 20.0, nominal_rate=80) == 18.0
    assert next_poll_in(1, 600, 20.0, nominal_rate=80) == MIN_POLL_SECONDS


def test_the_machine_ceiling_is_its_cores_over_the_cpu_one_message_costs_the_whole_machine() -> None:
    assert machine_ceiling({"send_message": 8.0, "whole machine": 25.0}) == round(CORES * 1000 / 25.0, 1)
    assert machine_ceiling({"whole machine": 0.0}) is None  # nothing measured: no ceiling, not infinity
