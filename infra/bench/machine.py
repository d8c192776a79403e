"""The machine and the code a run measured, for the report's header: numbers mean little without them."""

from __future__ import annotations

import os
import platform
import subprocess
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Machine:
    date: str
    cores: int  # the cores this process may run on (nproc), which is what the figures got
    cpu_model: str
    ram_gib: float
    python: str
    git_commit: str
    # Other work on the machine when the run began (the figures share its cores with it).
    load_average: float

    def as_json(self) -> dict[str, object]:
        return asdict(self)


def describe_machine() -> Machine:
    return Machine(
        date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        cores=len(os.sched_getaffinity(0)),
        cpu_model=_proc_field("/proc/cpuinfo", "model name") or platform.processor() or "unknown",
        ram_gib=round(int((_proc_field("/proc/meminfo", "MemTotal") or "0 kB").split()[0]) / 2**20, 1),
        python=platform.python_version(),
        git_commit=_git_commit(),
        load_average=round(os.getloadavg()[0], 2),
    )


def _proc_field(path: str, name: str) -> str | None:
    for line in Path(path).read_text().splitlines():
        key, _, value = line.partition(":")
        if key.strip() == name:
            return value.strip()
    return None


def _git_commit() -> str:
    def git(*args: str) -> str:
        argv = ["git", *args]
        return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    # Uncommitted changes to tracked files mean the numbers are not those of the commit alone.
    return f"{commit}+dirty" if git("status", "--porcelain", "--untracked-files=no") else commit
