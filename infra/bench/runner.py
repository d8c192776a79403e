"""Runs the figures against a started stack and collects one Measurement each.

A figure whose feature is missing reports "not measured" with the reason it gave. Any other failure is
a harness error: recorded in the report the same way (so one broken figure does not hide the others)
and returned separately, so `make bench` exits non-zero and the smoke test fails.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field

from infra.bench.context import BenchContext
from infra.bench.errors import NotMeasurable
from infra.bench.figures import FIGURES
from infra.bench.measurement import Measurement, not_measured
from infra.bench.profiler import profiled
from infra.local.stack_reset import reset_stack

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    measurements: list[Measurement] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)  # figure -> traceback


def run_figures(ctx: BenchContext, names: Sequence[str] | None = None, profile: bool = False) -> Outcome:
    outcome = Outcome()
    for name in names or list(FIGURES):
        module = FIGURES[name]
        log.info("figure %s (%s)", name, "smoke" if ctx.smoke else "full size")
        reset_stack(ctx.env)
        try:
            with profiled(ctx, name, module.PROFILED) if profile else nullcontext():
                measurement = module.run(ctx, module.SMOKE if ctx.smoke else module.FULL)
        except NotMeasurable as missing:
            measurement = not_measured(module.FIGURE, module.UNIT, module.TARGET, str(missing))
        except Exception as error:
            outcome.errors[name] = traceback.format_exc()
            log.exception("figure %s failed", name)
            measurement = not_measured(module.FIGURE, module.UNIT, module.TARGET, f"harness error: {error!r}")
        log.info("%s: %s", name, measurement)
        outcome.measurements.append(measurement)
    return outcome
