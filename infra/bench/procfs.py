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
    sockets = {f"socket:[{inode}]" for inode in _listening_inodes(port)}
    if not sockets:
        return []
    return sorted(
        int(proc.name) for proc in Path("/proc").iterdir() if proc.name.isdigit() and _holds(proc, sockets)
    )


def _holds(proc: Path, sockets: set[str]) -> bool:
    try:
        fds = list((proc / "fd").iterdir())
    except OSError:  # gone, or not ours to read
        return False
    for fd in fds:
        try:
            if os.readlink(fd) in sockets:
                return True
        except OSError:  # closed since the listing (our own listing's fd, for one)
            continue
    return False


def reset_peak_rss(pids: Iterable[int]) -> None:
    for pid in pids:
        Path(f"/proc/{pid}/clear_refs").write_text("5")


def peak_rss_mb(pids: Iterable[int]) -> float:
    """The largest peak resident set among `pids`, in MiB (one worker serves the requests)."""
    peaks = [_status_int(pid, "VmHWM") for pid in pids]  # kB
    if not peaks:
        raise ValueError("no process to measure")
    return max(peaks) / 1024


def gunicorn_worker(pids: Iterable[int]) -> int:
    """Of a master and its worker both holding the socket, the worker: the one whose parent is the other."""
    candidates = set(pids)
    children = [pid for pid in candidates if _status_int(pid, "PPid") in candidates]
    return children[0] if children else min(candidates)


def _status_int(pid: int, field: str) -> int:
    """A numeric field of /proc/PID/status (sizes there are in kB)."""
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
