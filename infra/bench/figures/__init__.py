"""The figures, in report order. Each module has FIGURE, UNIT, TARGET, FULL and SMOKE sizes and
`run(ctx, size) -> Measurement`; a new figure (the dashboard pages' server time, say) is a module here
and a line in FIGURES."""

from __future__ import annotations

from types import ModuleType

from infra.bench.figures import bulk_import, segment, status_webhook

FIGURES: dict[str, ModuleType] = {
    "import": bulk_import,
    "segment": segment,
    "status-webhook": status_webhook,
}
