"""A throwaway PostgreSQL 15 cluster in a git-ignored project folder, bound to 127.0.0.1.

The server refuses to run as root, so when we are root the cluster is owned by and run as the
`postgres` user. fsync is off: the cluster is disposable, and tests create hundreds of databases.

    python -m infra.local.postgres start    # idempotent; prints DATABASE_URL
    python -m infra.local.postgres stop
    python -m infra.local.postgres url [DBNAME]
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pg8000.native

ROOT = Path(__file__).resolve().parents[2]
STATE_DIR = ROOT / ".local" / "postgres"
DEFAULT_DB = "ese"
PG_BIN_CANDIDATES = ("/usr/lib/postgresql/15/bin", "/usr/local/pgsql/bin")


def connect(database_url: str) -> pg8000.native.Connection:
    """A plain pg8000 connection from a DATABASE_URL, for the local tools' own statements (a reset, the
    bench's setup and baselines, chaos checks): not the application's engine."""
    import pg8000.native
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    return pg8000.native.Connection(
        url.username or "postgres",
        host=url.host or "127.0.0.1",
        port=url.port or 5432,
        database=url.database,
        password=url.password,
    )


def _pg_bin(name: str) -> str:
    for directory in PG_BIN_CANDIDATES:
        candidate = Path(directory) / name
        if candidate.exists():
            return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise SystemExit(f"{name} not found: install PostgreSQL 15 (Debian package postgresql-15)")
    return found


def free_port() -> int:
    (port,) = free_ports(1)
    return port


def free_ports(count: int) -> list[int]:
    """`count` distinct free ports, found while all are held open: a port released and asked for again at
    once can come back from the kernel, so picking them one by one could hand two servers the same one."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            sockets.append(s)
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


class LocalPostgres:
    def __init__(self, state_dir: Path = STATE_DIR) -> None:
        self.state_dir = state_dir
        self.data_dir = state_dir / "data"
        self.port_file = state_dir / "port"

    # --- running as the postgres user when we are root ---
    def _as_owner(self, argv: list[str]) -> list[str]:
        if os.geteuid() == 0:
            return ["runuser", "-u", "postgres", "--", *argv]
        return argv

    def _chown(self, path: Path) -> None:
        if os.geteuid() == 0:
            shutil.chown(path, "postgres", "postgres")

    @property
    def port(self) -> int:
        return int(self.port_file.read_text())

    def url(self, dbname: str = DEFAULT_DB) -> str:
        return f"postgresql+pg8000://postgres@127.0.0.1:{self.port}/{dbname}"

    def is_running(self) -> bool:
        if not (self.data_dir / "postmaster.pid").exists() or not self.port_file.exists():
            return False
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def _init(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        # The postgres user must be able to reach the data dir through every parent directory.
        for parent in [self.state_dir, *self.state_dir.parents]:
            if parent == parent.parent:
                break
            mode = parent.stat().st_mode
            if os.geteuid() == 0 and not mode & 0o001:
                parent.chmod(mode | 0o001)
        if (self.data_dir / "PG_VERSION").exists():
            return
        self.data_dir.mkdir(exist_ok=True)
        self._chown(self.data_dir)
        subprocess.run(
            self._as_owner(
                [
                    _pg_bin("initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    "postgres",
                    "-A",
                    "trust",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                ]
            ),
            check=True,
            stdout=subprocess.DEVNULL,
        )

    def start(self) -> str:
        if self.is_running():
            return self.url()
        self._init()
        self._remove_stale_pid()
        port = self._port_to_listen_on()
        self.port_file.write_text(str(port))
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories='' "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300 "
            "-c shared_buffers=256MB -c log_min_messages=warning"
        )
        log = self.state_dir / "server.log"
        if not log.exists():
            log.touch()
        self._chown(log)
        subprocess.run(
            self._as_owner(
                [
                    _pg_bin("pg_ctl"),
                    "-D",
                    str(self.data_dir),
                    "-l",
                    str(log),
                    "-o",
                    options,
                    "-w",
                    "-t",
                    "60",
                    "start",
                ]
            ),
            check=True,
            stdout=subprocess.DEVNULL,
        )
        self._wait_ready()
        self.ensure_database(DEFAULT_DB)
        return self.url()

    def _port_to_listen_on(self) -> int:
        """The cluster's port from before, while it is free: a restart (a chaos test's outage, `make dev`
        started again) keeps every DATABASE_URL already handed out, in .local/stack.env and in the running
        functions, pointing at it. A new port only when that one was taken meanwhile."""
        if self.port_file.exists():
            previous = int(self.port_file.read_text())
            with socket.socket() as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    probe.bind(("127.0.0.1", previous))
                    return previous
                except OSError:
                    pass
        return free_port()

    def _remove_stale_pid(self) -> None:
        pid_file = self.data_dir / "postmaster.pid"
        if not pid_file.exists():
            return
        pid = int(pid_file.read_text().splitlines()[0])
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            pid_file.unlink()
            return
        # A live server from an earlier run whose port we lost: stop it properly.
        self._pg_ctl_stop()

    def _wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.admin_execute("SELECT 1")
                return
            except Exception:  # the server is still starting
                time.sleep(0.1)
        raise RuntimeError(f"PostgreSQL did not accept connections on port {self.port}")

    def admin_execute(self, sql: str) -> None:
        import pg8000.native

        conn = pg8000.native.Connection("postgres", host="127.0.0.1", port=self.port, database="postgres")
        try:
            conn.run(sql)
        finally:
            conn.close()

    def ensure_database(self, name: str) -> None:
        import pg8000.native

        conn = pg8000.native.Connection("postgres", host="127.0.0.1", port=self.port, database="postgres")
        try:
            if not conn.run("SELECT 1 FROM pg_database WHERE datname = :n", n=name):
                conn.run(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()

    def _pg_ctl_stop(self) -> None:
        subprocess.run(
            self._as_owner([_pg_bin("pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop"]),
            check=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(self) -> None:
        if (self.data_dir / "postmaster.pid").exists():
            self._pg_ctl_stop()


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "start"
    pg = LocalPostgres()
    if command == "start":
        print(pg.start())
    elif command == "stop":
        pg.stop()
    elif command == "url":
        print(pg.url(argv[1] if len(argv) > 1 else DEFAULT_DB))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
