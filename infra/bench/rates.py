"""Rates read from timestamps (the Twilio emulator's acceptance times): the most in any sliding window and
the mean from first to last. Shared by the figures that judge a rate ceiling (rate fidelity, pool rate)."""

from __future__ import annotations

from collections.abc import Sequence


def max_in_window(times: Sequence[float], width: float) -> int:
    """The most timestamps (sorted) in any half-open window [t, t + width)."""
    best, first = 0, 0
    for last, at in enumerate(times):
        while at - times[first] >= width:
            first += 1
        best = max(best, last - first + 1)
    return best


def mean_rate(times: Sequence[float]) -> float:
    """(count - 1) / (last - first) of sorted timestamps: the rate between the first and the last; 0 for
    fewer than two."""
    if len(times) < 2 or times[-1] == times[0]:
        return 0.0
    return (len(times) - 1) / (times[-1] - times[0])
