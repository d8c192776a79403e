"""`python -m infra.bench --profile`: py-spy samples the worker a figure loads while it runs, so a missed
target comes with the stacks that explain it (.local/bench/profiles/<figure>.txt, collapsed stacks for
any flame-graph viewer, e.g. speedscope). py-spy is a development tool: `pip install py-spy`."""

from __future__ import annotations

import shutil
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

from infra.bench.context import BenchContext
from infra.bench.paths import BENCH_DIR
from infra.bench.procfs import gunicorn_worker

PROFILE_DIR = BENCH_DIR / "profiles"
# py-spy's default 100 samples/s walks every thread of a worker that runs a dozen: on this 2-core machine
# that took most of a core and starved the figure it was explaining. 20/s costs a few percent and still
# gives thousands of stacks over a figure.
SAMPLE_RATE = 20


@contextmanager
def profiled(ctx: BenchContext, figure: str, function: str | None) -> Iterator[None]:
    """Sample `function`'s gunicorn worker for the duration of the block (nothing for function None)."""
    py_spy = shutil.which("py-spy")
    if function is None:
        yield
        return
    if py_spy is None:
        raise RuntimeError("--profile needs py-spy: pip install py-spy")
    PROFILE_DIR.mkdir(parents=True, exist_ok=True)
    output = PROFILE_DIR / f"{figure}.txt"
    worker = gunicorn_worker(ctx.server_pids(function))
    argv = [
        py_spy,
        "record",
        "--pid",
        str(worker),
        "--format",
        "raw",
        "--output",
        str(output),
        "--threads",
        "--rate",
        str(SAMPLE_RATE),
    ]
    sampler = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        # py-spy writes its output when interrupted, as on Ctrl-C.
        sampler.send_signal(signal.SIGINT)
        sampler.wait(timeout=60)
