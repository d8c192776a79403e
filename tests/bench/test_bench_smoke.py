"""`make bench` at a tiny size, through the same code, so the harness cannot rot. Nothing here asserts
speed: only that every figure ran and produced a well-formed report."""

from __future__ import annotations

import json
from pathlib import Path

from infra.bench.context import BenchContext
from infra.bench.figures import FIGURES
from infra.bench.machine import describe_machine
from infra.bench.report import write_report
from infra.bench.runner import run_figures


def test_every_figure_runs_at_smoke_size_and_fills_its_row(bench_ctx: BenchContext, tmp_path: Path) -> None:
    outcome = run_figures(bench_ctx)
    markdown, results = tmp_path / "BENCHMARKS.md", tmp_path / "results.json"
    write_report(outcome.measurements, describe_machine(), markdown, results)

    assert outcome.errors == {}
    figures = json.loads(results.read_text())["figures"]
    assert [f["figure"] for f in figures] == [module.FIGURE for module in FIGURES.values()]
    for figure in figures:
        # Every feature a figure measures exists now: "not measured" would mean one went missing.
        assert figure["not_measured"] is None, figure
        assert figure["value"] > 0, figure
        assert figure["runs"] >= 1, figure
        assert figure["met"] in (True, False), figure
        if figure["baseline"] is not None:
            assert figure["baseline"] > 0 and figure["ratio"] > 0, figure
    table = markdown.read_text()
    for module in FIGURES.values():
        assert f"| {module.FIGURE} | " in table
