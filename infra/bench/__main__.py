"""python -m infra.bench [--smoke] [--figures import,segment,...]: start the bench stack, measure, report."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path

from infra.bench.figures import FIGURES
from infra.bench.machine import describe_machine
from infra.bench.report import write_report
from infra.bench.runner import run_figures
from infra.bench.stack import bench_context, bench_stack

ROOT = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.bench", description=__doc__)
    parser.add_argument(
        "--smoke", action="store_true", help="every figure at a tiny size (checks the harness)"
    )
    parser.add_argument(
        "--figures", default=",".join(FIGURES), help=f"comma-separated subset of {list(FIGURES)}"
    )
    parser.add_argument(
        "--profile", action="store_true", help="py-spy each figure's server into .local/bench/profiles/"
    )
    parser.add_argument("--markdown", type=Path, default=ROOT / "BENCHMARKS.md")
    parser.add_argument("--json", type=Path, default=ROOT / "infra" / "bench" / "results.json")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.figures.split(",") if n.strip()]
    unknown = set(names) - set(FIGURES)
    if unknown:
        parser.error(f"unknown figures {sorted(unknown)}; choose from {list(FIGURES)}")
    # SIGTERM must unwind like Ctrl-C, so the stack and the bench database are cleaned up.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    machine = describe_machine()
    with bench_stack() as stack, bench_context(stack, smoke=args.smoke) as ctx:
        outcome = run_figures(ctx, names, profile=args.profile)
    write_report(outcome.measurements, machine, args.markdown, args.json)
    print(f"wrote {args.markdown} and {args.json}")
    for name, trace in outcome.errors.items():
        print(f"\nfigure {name} failed:\n{trace}", file=sys.stderr)
    return 1 if outcome.errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
