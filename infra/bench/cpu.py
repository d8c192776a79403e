"""Where a figure's CPU went: seconds of CPU per process of the stack, read from /proc, so a figure that
misses its target on a machine whose cores are all busy can show the ceiling instead of asserting it.

Each group is a server found by its listening port with every descendant (gunicorn's master and worker,
PostgreSQL's postmaster and its backends, the Pub/Sub emulator's JVM). A group's time is its live
processes' user + system time plus what its processes reaped from children that exited (cutime), so a
PostgreSQL backend that ends mid-measurement is still counted. The machine's busy time from /proc/stat is
kept beside the groups: the difference is everything else (the bench's own polling, the kernel, other
processes), which is why a figure should be measured on an otherwise idle machine.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from infra.bench.context import BenchContext
from infra.bench.procfs import listening_pids

_TICK = os.sysconf("SC_CLK_TCK")
CORES = os.cpu_count() or 1


@dataclass(frozen=True)
class CpuSample:
    groups: Mapping[str, float]  # seconds of CPU per group
    machine: float  # seconds of busy CPU, all cores


def stack_groups(ctx: BenchContext) -> dict[str, list[int]]:
    """The processes of every server of the stack, by name."""
    return servers(
        {
            **ctx.function_ports,
            "front end": ctx.front_end_port,
            "Cloud Tasks emulator": port_of(ctx.env["CLOUD_TASKS_EMULATOR_HOST"]),
            "Pub/Sub emulator": port_of(ctx.env["PUBSUB_EMULATOR_HOST"]),
            "Twilio emulator": port_of(ctx.env["TWILIO_API_URL"]),
            "PostgreSQL": port_of(ctx.database_url),
        }
    )


def servers(ports: Mapping[str, int]) -> dict[str, list[int]]:
    """The processes listening on each port, by name."""
    return {name: listening_pids(port) for name, port in ports.items()}


def port_of(address: str) -> int:
    """The port of a URL or of a host:port."""
    port = urlsplit(address if "//" in address else f"//{address}").port
    if port is None:
        raise ValueError(f"no port in {address!r}")
    return port


def sample(groups: Mapping[str, list[int]]) -> CpuSample:
    children = _children_by_parent()
    return CpuSample(
        groups={
            name: sum(_tree_seconds(pid, children) for pid in _roots(pids)) for name, pids in groups.items()
        },
        machine=_machine_busy_seconds(),
    )


def per_unit_ms(before: CpuSample, after: CpuSample, units: int) -> dict[str, float]:
    """Milliseconds of CPU per unit of work (a message, a request), by group, busiest first, with the sum
    over the stack and the machine's total."""
    spent = {name: 1000 * (after.groups[name] - before.groups[name]) / units for name in after.groups}
    busiest = dict(sorted(((n, round(ms, 2)) for n, ms in spent.items() if ms > 0), key=lambda kv: -kv[1]))
    return {
        **busiest,
        "all of the stack": round(sum(spent.values()), 2),
        "whole machine": round(1000 * (after.machine - before.machine) / units, 2),
    }


def machine_ceiling(cpu_ms: Mapping[str, float]) -> float | None:
    """The messages/s this machine's cores could carry at the whole machine's CPU per message if they did
    nothing else: no rate on this machine can exceed it, whatever the rate control does."""
    whole = cpu_ms["whole machine"]
    return round(CORES * 1000 / whole, 1) if whole > 0 else None


def _roots(pids: list[int]) -> list[int]:
    """Drop the pids whose parent is also listed: the tree walk counts them once, from their parent."""
    listed = set(pids)
    stats = {pid: _stat(pid) for pid in pids}
    return [pid for pid, stat in stats.items() if stat is not None and stat[1] not in listed]


def _tree_seconds(pid: int, children: Mapping[int, list[int]]) -> float:
    stat = _stat(pid)
    if stat is None:
        return 0.0
    own, _ = stat
    return own + sum(_tree_seconds(child, children) for child in children.get(pid, ()))


def _children_by_parent() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and (stat := _stat(int(proc.name))) is not None:
            children.setdefault(stat[1], []).append(int(proc.name))
    return children


def _stat(pid: int) -> tuple[float, int] | None:
    """(utime + stime + cutime + cstime in seconds, parent pid), or None once the process is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    # After the command: state, ppid, ... utime is field 14 of the whole line, i.e. index 11 here.
    return sum(int(f) for f in fields[11:15]) / _TICK, int(fields[1])


def _machine_busy_seconds() -> float:
    # cpu  user nice system idle iowait irq softirq steal ...: busy = everything but idle and iowait.
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(values) - values[3] - values[4]) / _TICK
