"""What one figure reports: its value, the baseline measured in the same run, the target, and whether
it was met. A figure that could not be measured says why instead of carrying a number."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar


@dataclass(frozen=True)
class Measurement:
    figure: str
    unit: str
    target: str
    value: float | None = None
    baseline: float | None = None
    baseline_label: str = ""
    met: bool | None = None
    runs: int = 0
    # Secondary numbers a figure's target also depends on (peak RSS, p99, windows...), by name.
    details: dict[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    not_measured: str | None = None

    @property
    def ratio(self) -> float | None:
        if self.value is None or not self.baseline:
            return None
        return self.value / self.baseline

    def as_json(self) -> dict[str, Any]:
        return asdict(self) | {"ratio": self.ratio}


def not_measured(figure: str, unit: str, target: str, why: str) -> Measurement:
    return Measurement(figure=figure, unit=unit, target=target, not_measured=why)


def median(samples: Sequence[float]) -> float:
    if not samples:
        raise ValueError("no samples to take a median of")
    return float(statistics.median(samples))


def timed(action: Callable[[], object]) -> float:
    """Seconds one call of `action` took, on the monotonic clock."""
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


T = TypeVar("T")


def repeat_within(budget_seconds: float, max_runs: int, once: Callable[[], T]) -> list[T]:
    """One run, then more (up to `max_runs`) while another as long as the slowest so far still fits the
    budget: a figure that takes minutes per run gets fewer runs instead of stretching `make bench`."""
    results: list[T] = []
    started, slowest = time.perf_counter(), 0.0
    while len(results) < max_runs:
        run_started = time.perf_counter()
        results.append(once())
        slowest = max(slowest, time.perf_counter() - run_started)
        if time.perf_counter() - started + slowest > budget_seconds:
            break
    return results
