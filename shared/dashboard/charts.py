"""Bar charts as geometry for an inline SVG drawn by the templates (macros.html): no chart library, no
script, nothing for the Content-Security-Policy to allow."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

# Wide and short, so the chart fills a page's width at a modest height.
WIDTH = 1000
HEIGHT = 120
# Room under the bars for the first and last time labels.
LABEL_SPACE = 16


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    title: str


@dataclass(frozen=True)
class BarChart:
    bars: list[Bar]
    peak: int
    total: int
    first_label: str
    last_label: str
    width: int = WIDTH
    height: int = HEIGHT
    label_space: int = LABEL_SPACE


def bucket_starts(since: datetime, until: datetime, bucket: timedelta) -> list[datetime]:
    starts = []
    at = since
    while at < until:
        starts.append(at)
        at += bucket
    return starts


def bar_chart(counts: dict[datetime, int], starts: list[datetime], unit: str) -> BarChart:
    """One bar per bucket start, empty buckets included, so the time axis is honest."""
    values = [counts.get(start, 0) for start in starts]
    peak = max(values, default=0)
    slot = WIDTH / max(len(starts), 1)
    bars = []
    for index, (start, value) in enumerate(zip(starts, values, strict=True)):
        height = (HEIGHT * value / peak) if peak else 0.0
        bars.append(
            Bar(
                x=round(index * slot, 2),
                y=round(HEIGHT - height, 2),
                width=round(max(slot - 1, 1), 2),
                height=round(height, 2),
                title=f"{start:%H:%M:%S} UTC: {value} {unit}",
            )
        )
    return BarChart(
        bars=bars,
        peak=peak,
        total=sum(values),
        first_label=f"{starts[0]:%H:%M}" if starts else "",
        last_label=f"{starts[-1]:%H:%M}" if starts else "",
    )
