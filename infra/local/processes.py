"""Starting, recognising and stopping the stack's child processes, by PID and never by name.

Each child runs in its own session, so Ctrl-C in the developer's terminal reaches only the runner, which
stops the children in order; and the child's process group (gunicorn's master and worker, say) can be
signalled as one. `setpriv --pdeathsig TERM` makes the kernel stop a child if the thread that started it
dies, so even a runner killed with SIGKILL leaves nothing behind.

Before a recorded PID is signalled, its kernel start time and command line must still match what we
launched: PIDs are reused, and a stale record must never stop someone else's process.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import requests

# gunicorn finishes in-flight requests on SIGTERM; anything still alive after this is killed.
STOP_GRACE_SECONDS = 5.0


@dataclass(frozen=True)
class ProcessRecord:
    """What `stop` needs to find a process again and to be sure it is still the one we started."""

    name: str
    pid: int
    port: int | None
    marker: str  # a string from the launched command line
    start_time: int  # field 22 of /proc/PID/stat: when the kernel started it, in clock ticks

    def as_json(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> ProcessRecord:
        port = data.get("port")
        return cls(
            name=str(data["name"]),
            pid=int(str(data["pid"])),
            port=int(str(port)) if port is not None else None,
            marker=str(data["marker"]),
            start_time=int(str(data["start_time"])),
        )


def spawn(
    name: str, argv: list[str], *, env: Mapping[str, str], log_path: Path, port: int | None, marker: str
) -> tuple[subprocess.Popen[bytes], ProcessRecord]:
    """Start argv with stdout and stderr appended to log_path. Call from a long-lived thread: the
    child's death signal fires when the starting *thread* ends, not the process."""
    if marker not in " ".join(argv):
        raise ValueError(f"{name}: marker {marker!r} is not part of the command line")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [_setpriv(), "--pdeathsig", "TERM", "--", *argv],
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return process, ProcessRecord(name, process.pid, port, marker, start_time(process.pid) or 0)


def is_ours(record: ProcessRecord) -> bool:
    """True while the PID is alive and is still the process the record describes."""
    if start_time(record.pid) != record.start_time:
        return False
    try:
        cmdline = Path(f"/proc/{record.pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return False
    return record.marker in cmdline


def stop_processes(records: Iterable[ProcessRecord], grace_seconds: float = STOP_GRACE_SECONDS) -> None:
    """SIGTERM every recorded process group that is still ours, then SIGKILL what outlives the grace."""
    alive = [r for r in records if is_ours(r)]
    for record in alive:
        _signal_group(record, signal.SIGTERM)
    deadline = time.monotonic() + grace_seconds
    while alive and time.monotonic() < deadline:
        alive = [r for r in alive if is_ours(r)]
        time.sleep(0.05)
    for record in alive:
        _signal_group(record, signal.SIGKILL)


def port_accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def http_answers(url: str) -> bool:
    """Any HTTP status counts: a 405 or 501 still proves the server is up and routing."""
    try:
        requests.get(url, timeout=1.0)
        return True
    except requests.RequestException:
        return False


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _signal_group(record: ProcessRecord, sig: signal.Signals) -> None:
    try:
        # The group is the child's own session (start_new_session), so it holds only what it started.
        if os.getpgid(record.pid) == record.pid:
            os.killpg(record.pid, sig)
        else:
            os.kill(record.pid, sig)
    except ProcessLookupError:
        pass


def start_time(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after its closing one.
    fields = stat.rsplit(")", 1)[1].split()
    # A zombie has exited; only its parent's wait() is missing.
    if fields[0] == "Z":
        return None
    return int(fields[19])


def _setpriv() -> str:
    found = shutil.which("setpriv")
    if found is None:
        raise SystemExit("setpriv not found: install util-linux")
    return found
