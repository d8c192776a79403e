"""Where the bench keeps its state: `.local/bench/` (git-ignored), or the directory BENCH_DIR names, so two
runs can go side by side, each with its own PostgreSQL cluster, stack, data, logs, profiles and lock."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BENCH_DIR = Path(os.environ.get("BENCH_DIR") or ROOT / ".local" / "bench")
