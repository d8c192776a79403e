"""The figures, in report order. Each module has FIGURE, UNIT, TARGET, PROFILED, FULL and SMOKE sizes and
`run(ctx, size) -> Measurement`; a new figure (the dashboard pages' server time, say) is a module here
and a line in FIGURES."""

from __future__ import annotations

from types import ModuleType

from infra.bench.figures import (
    bulk_import,
    dashboard,
    fanout,
    frequency_cap,
    million,
    pool_rate,
    rate_fidelity,
    segment,
    send,
    status_webhook,
)

FIGURES: dict[str, ModuleType] = {
    "import": bulk_import,
    "segment": segment,
    "fan-out": fanout,
    "send": send,
    "rate-fidelity": rate_fidelity,
    "status-webhook": status_webhook,
    "dashboard": dashboard,
    "pool-rate": pool_rate,
    "frequency-cap": frequency_cap,
    "million": million,
}
