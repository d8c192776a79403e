"""Which processes serve a port, and their peak memory, read from /proc.

The memory figures are the peak resident set (VmHWM) of the server that did the work. Writing 5 to
/proc/PID/clear_refs resets that peak, so one long-lived server can be measured run by run. The server is
found by its listening port rather than by a PID handed over by the stack: gunicorn's master holds the
socket and its worker inherits it, so both are found, and the worker is the one whose peak grows.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

LISTEN = "0A"


def listening_pids(port: int) -> list[int]:
    inodes = _listening_inodes(port)
    if not inodes:
        return []
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            links = {os.readlink(fd) for fd in (proc / "fd").iterdir()}
        except OSError:  # gone, or not ours to read
            continue
        if links & {f"socket:[{inode}]" for inode in inodes}:
            pids.append(int(proc.name))
    return sorted(pids)


def reset_peak_rss(pids: Iterable[int]) -> None:
    for pid in pids:
        Path(f"/proc/{pid}/clear_refs").write_text("5")


def peak_rss_mb(pids: Iterable[int]) -> float:
    """The largest peak resident set among `pids`, in MiB (one worker serves the requests)."""
    peaks = [_status_kb(pid, "VmHWM") for pid in pids]
    if not peaks:
        raise ValueError("no process to measure")
    return max(peaks) / 1024


def _status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise ValueError(f"/proc/{pid}/status has no {field}")


def _listening_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port and fields[3] == LISTEN:
                inodes.add(fields[9])
    return inodes
