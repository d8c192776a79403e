"""BENCHMARKS.md (for people) and results.json (for tools), both from one run's measurements."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from infra.bench.machine import Machine
from infra.bench.measurement import Measurement


def write_report(
    measurements: Sequence[Measurement], machine: Machine, markdown: Path, results: Path
) -> None:
    markdown.parent.mkdir(parents=True, exist_ok=True)
    results.parent.mkdir(parents=True, exist_ok=True)
    markdown.write_text(render_markdown(measurements, machine))
    payload = {"machine": machine.as_json(), "figures": [m.as_json() for m in measurements]}
    results.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")


def render_markdown(measurements: Sequence[Measurement], machine: Machine) -> str:
    lines = [
        "# Benchmarks",
        "",
        "Written by `make bench` (`python -m infra.bench`); every number below comes from the one run described",
        "here. Each baseline was measured in the same run on the same machine. Do not edit by hand.",
        "",
        f"- date: {machine.date}",
        f"- machine: {machine.cores} cores ({machine.cpu_model}), {machine.ram_gib} GiB RAM, Python {machine.python}",
        f"- commit: {machine.git_commit}",
        f"- load average (1 min) when the run began: {machine.load_average}",
        "",
        "| figure | value | baseline (same run) | ratio | target | met? |",
        "|---|---|---|---|---|---|",
        *(_row(m) for m in measurements),
        "",
        "## Notes",
    ]
    for m in measurements:
        lines += ["", f"### {m.figure}", ""]
        if m.not_measured:
            lines.append(f"- not measured: {m.not_measured}")
        else:
            lines.append(f"- runs: {m.runs} (the value is their median)")
        lines += [f"- {key}: {_number(value)}" for key, value in m.details.items()]
        lines += [f"- {note}" for note in m.notes]
    return "\n".join(lines) + "\n"


def _row(m: Measurement) -> str:
    if m.not_measured:
        return f"| {m.figure} | not measured: {m.not_measured} | — | — | {m.target} | — |"
    value = f"{_number(m.value)} {m.unit}"
    baseline = f"{_number(m.baseline)} {m.unit} ({m.baseline_label})" if m.baseline else "none (see notes)"
    ratio = f"{m.ratio:.2f}" if m.ratio is not None else "—"
    met = {True: "yes", False: "**no**", None: "—"}[m.met]
    return f"| {m.figure} | {value} | {baseline} | {ratio} | {m.target} | {met} |"


def _number(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)
