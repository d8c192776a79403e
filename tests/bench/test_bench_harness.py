"""The harness's own arithmetic and plumbing, on small inputs whose right answer is known."""

from __future__ import annotations

import os
import socket

from infra.bench.figures.rate_fidelity import max_in_window
from infra.bench.machine import describe_machine
from infra.bench.measurement import Measurement, not_measured
from infra.bench.procfs import listening_pids, peak_rss_mb
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
