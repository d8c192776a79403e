"""python -m infra.chaos [--short] [--faults a,b,...]: every fault of infra/chaos/faults.py, each on a fresh
campaign, then one table. Exit status 1 if any fault left a duplicate, a drop, a stuck message or a send
accepted after its acknowledgement, or did not settle."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

from infra.chaos.faults import FULL, SHORT, SHORT_FAULTS, Chaos, faults
from infra.chaos.report import table
from infra.chaos.stack import CHAOS_DIR, chaos_stack
from infra.chaos.world import Verdict, World
from infra.local.stack_reset import reset_stack


def run(names: list[str] | None, short: bool, directory: Path = CHAOS_DIR) -> list[Verdict]:
    size = SHORT if short else FULL
    verdicts = []
    with chaos_stack(directory) as (stack, pg):
        os.environ["REQUESTS_CA_BUNDLE"] = stack.env["REQUESTS_CA_BUNDLE"]
        available = faults(size, stack)
        chosen = names or (list(SHORT_FAULTS) if short else list(available))
        unknown = set(chosen) - set(available)
        if unknown:
            raise SystemExit(f"unknown faults {sorted(unknown)}; choose from {list(available)}")
        world = World(stack)
        for name in chosen:
            reset_stack(stack.env)
            started = time.monotonic()
            verdict = available[name](Chaos(stack, pg, world, size))
            verdicts.append(verdict)
            print(
                f"{name}: {'clean' if verdict.clean else 'NOT CLEAN'} ({time.monotonic() - started:.0f} s)",
                flush=True,
            )
    return verdicts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.chaos", description=__doc__)
    parser.add_argument(
        "--short", action="store_true", help=f"a small campaign and {', '.join(SHORT_FAULTS)}"
    )
    parser.add_argument("--faults", help="comma-separated names (default: all)")
    parser.add_argument("--report", type=Path, default=CHAOS_DIR / "report.md")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    names = [n.strip() for n in args.faults.split(",")] if args.faults else None
    verdicts = run(names, args.short)
    text = table(verdicts)
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(text)
    print(text)
    return 0 if all(v.clean for v in verdicts) else 1


if __name__ == "__main__":
    raise SystemExit(main())
