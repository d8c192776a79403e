"""`make bench`: the figures the issue asks for, each measured next to a baseline run on the same machine
in the same run, written to BENCHMARKS.md and infra/bench/results.json.

Each figure is a module in `infra.bench.figures` with `run(ctx, size) -> Measurement`; `make bench-smoke`
runs every one at a tiny size through the same code so the harness cannot rot.
"""
