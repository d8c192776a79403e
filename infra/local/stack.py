"""The whole product on 127.0.0.1: PostgreSQL, the Pub/Sub, Cloud Tasks and Twilio emulators, one
functions-framework server per entry point behind the front-end emulator (TLS, ingress, IAM and limits
as Google's front end applies them), a Pub/Sub push relay that adds the token Pub/Sub would, and a
scheduler calling trigger_campaign every minute.

    python -m infra.local.stack up      # foreground; Ctrl-C or SIGTERM stops everything it started
    python -m infra.local.stack stop    # stop a stack left running (or crashed), by its recorded PIDs
    python -m infra.local.stack env     # print .local/stack.env

State lives in one directory (default .local, `--state-dir` to change): stack.env (the settings, for
tools and tests), stack.pids (what to stop), logs/NAME.log (each process's output) and tls/ (the local
CA, kept across runs so whatever trusts it keeps trusting it). A new `up`
first stops whatever a previous one recorded there, so a crashed stack never blocks the next.

With real Twilio credentials, a sender and public webhook URLs in the environment, no Twilio emulator
runs and the functions talk to Twilio itself (infra/local/stack_env.py says exactly what is needed).

Every process is supervised as Cloud Run supervises its instances: one that dies, even by SIGKILL, is
started again on the same port within a second or two (its setup redone: the emulators' queues, topics
and subscriptions), and the restart is logged to logs/supervisor.log and the terminal. What a dead
emulator held in memory (tasks, pushes not yet delivered) is gone, as after a real crash; the
application's sweeper repairs what that leaves behind.

Tests use `LocalStack` directly, with their own database and state directory (tests/e2e/conftest.py).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import FrameType, TracebackType
from typing import ClassVar

from infra.local import functions_runner, processes, pubsub_emulator, tasks_queues
from infra.local.front_end.table import EntryPoint, invoker_emails, load_entry_points
from infra.local.local_ca import LocalCa, ensure_local_ca
from infra.local.migrate import migrate
from infra.local.postgres import LocalPostgres, free_ports
from infra.local.processes import ProcessRecord
from infra.local.scheduler import DEFAULT_INTERVAL_SECONDS, LocalScheduler, local_scheduler
from infra.local.stack_env import (
    MANAGED_KEYS,
    StackAddresses,
    build_env,
    caller_env,
    public_url,
    uses_real_twilio,
    write_env_file,
)

ROOT = Path(__file__).resolve().parents[2]
RUNNER_MARKER = "infra.local.stack"
# A first start compiles bytecode for six servers on two cores; later ones take a few seconds.
STARTUP_TIMEOUT_SECONDS = 90.0


class LocalStack:
    """Start with `start()` (or `with`), read `env`, stop with `stop()`.

    `database_url` None means the developer's cluster (infra/local/postgres.py) and its `ese` database,
    started if needed and stopped again only if this stack started it. Migrations run either way.
    `scheduler_interval` None runs no scheduler. Call start() from a thread that outlives the stack
    (the main thread, normally): the kernel stops the children when the thread that started them ends.
    """

    def __init__(
        self,
        root: Path = ROOT,
        *,
        state_dir: Path | None = None,
        database_url: str | None = None,
        scheduler_interval: float | None = DEFAULT_INTERVAL_SECONDS,
        environ: Mapping[str, str] | None = None,
        record_runner: bool = False,
        supervise: bool = True,
    ) -> None:
        self.root = root
        self.state_dir = state_dir or root / ".local"
        self.env_file = self.state_dir / "stack.env"
        self.pids_file = self.state_dir / "stack.pids"
        self.logs_dir = self.state_dir / "logs"
        self._database_url = database_url
        self._scheduler_interval = scheduler_interval
        self._environ = dict(os.environ if environ is None else environ)
        self._record_runner = record_runner
        self.env: dict[str, str] = {}
        self.function_ports: dict[str, int] = {}  # each function's own server
        self.front_end_ports: dict[str, int] = {}  # each function's public HTTPS port
        self.table: dict[str, EntryPoint] = {}
        self.push_relay_url = ""  # where the Pub/Sub emulator pushes (infra/local/pubsub_push_relay.py)
        self.ca: LocalCa | None = None
        self._children: dict[str, subprocess.Popen[bytes]] = {}
        self._records: list[ProcessRecord] = []
        self._postgres_state: str | None = None  # the cluster's state dir when this stack started it
        self._scheduler: LocalScheduler | None = None
        self._aborting = threading.Event()
        # What it takes to start each child again, and to know it is back (supervision).
        self._specs: dict[str, _Spec] = {}
        self._readiness: dict[str, tuple[Callable[[], bool], Callable[[], None] | None]] = {}
        self._stopping = threading.Event()
        self._supervisor: threading.Thread | None = None
        self._supervise = supervise
        self.restarts: dict[str, int] = {}

    def log_path(self, name: str) -> Path:
        return self.logs_dir / f"{name}.log"

    # --- lifecycle ---

    def start(self) -> LocalStack:
        stale_postgres = stop_recorded(self.state_dir, keep_postgres=self._database_url is None)
        # A cluster the crashed stack had started is ours to stop now, if we use it.
        self._postgres_state = stale_postgres if self._database_url is None else None
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        for old_log in self.logs_dir.glob("*.log"):
            old_log.unlink()
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        entries = functions_runner.discover(self.root / "functions" / "main.py")
        self.table = load_entry_points()
        missing = sorted({entry.name for entry in entries} - set(self.table))
        if missing:
            raise RuntimeError(f"infra/terraform/entry_points.json does not say how to reach {missing}")
        # Every port at once, before anything starts: every function's settings name all of them.
        picked = iter(free_ports(2 * len(entries) + _EmulatorPorts.COUNT))
        self.function_ports = {entry.name: next(picked) for entry in entries}
        self.front_end_ports = {entry.name: next(picked) for entry in entries}
        self.ca = ensure_local_ca(self.state_dir / "tls")
        ports = _EmulatorPorts.pick(picked, twilio=not uses_real_twilio(self._environ))
        if self._record_runner:
            self._records.append(_runner_record())
        # The emulators need no database: they boot while PostgreSQL starts and the functions import.
        self._spawn_google_emulators(ports)
        database_url = self._database_url or self._start_postgres()
        self.env = build_env(
            StackAddresses(
                database_url=database_url,
                pubsub_port=ports.pubsub,
                tasks_port=ports.tasks,
                oidc_certs_url=f"http://127.0.0.1:{ports.oidc}/certs",
                twilio_port=ports.twilio,
                function_ports=self.function_ports,
                front_end_ports=self.front_end_ports,
                ca_bundle=str(self.ca.bundle_file),
            ),
            self._environ,
        )
        self._spawn_front_end(entries)
        self.push_relay_url = f"http://127.0.0.1:{ports.push_relay}"
        self._spawn_push_relay(ports)
        if ports.twilio is not None:
            self._spawn_twilio(ports.twilio)
        for entry in entries:
            self._spawn_function(entry)
        # Functions touch the database only on a request, so migrating while they import is safe.
        migrate(self.root, database_url)
        self._wait_ready(ports)
        write_env_file(self.env_file, self.env)
        if self._scheduler_interval is not None:
            self._start_scheduler(self._scheduler_interval)
        if self._supervise:
            # The children it restarts die with this thread (setpriv's death signal): it lives until stop().
            self._supervisor = threading.Thread(
                target=self._supervise_children, name="stack-supervisor", daemon=True
            )
            self._supervisor.start()

    def stop(self) -> None:
        """Stop everything this stack started, and forget it. Safe to call twice."""
        self._stopping.set()  # first: nothing stopped below is started again
        if self._supervisor is not None:
            self._supervisor.join()
            self._supervisor = None
        if self._scheduler is not None:
            self._scheduler.stop()
            self._scheduler = None
        processes.stop_processes([r for r in self._records if r.pid != os.getpid()])
        for child in self._children.values():
            child.wait()  # reap: they are dead or killed by now
        self._children.clear()
        self._records.clear()
        if self._postgres_state is not None:
            LocalPostgres(Path(self._postgres_state)).stop()
            self._postgres_state = None
        self.env_file.unlink(missing_ok=True)
        self.pids_file.unlink(missing_ok=True)
        shutil.rmtree(self.state_dir / "run", ignore_errors=True)

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def pid(self, name: str) -> int:
        return self._children[name].pid

    def exited(self) -> dict[str, int]:
        """Children that have stopped on their own since start, with their exit codes."""
        return {name: code for name, child in self._children.items() if (code := child.poll()) is not None}

    # --- parts ---

    def _spawn(
        self, name: str, argv: list[str], port: int, marker: str, extra_env: Mapping[str, str] | None = None
    ) -> None:
        env = {k: v for k, v in self._environ.items() if k not in MANAGED_KEYS}
        env |= self.env | {"PYTHONPATH": str(self.root), "PYTHONUNBUFFERED": "1"} | dict(extra_env or {})
        self._specs[name] = _Spec(argv, env, port, marker)
        self._launch(name)

    def _launch(self, name: str) -> None:
        spec = self._specs[name]
        child, record = processes.spawn(
            name, spec.argv, env=spec.env, log_path=self.log_path(name), port=spec.port, marker=spec.marker
        )
        self._children[name] = child
        self._records = [r for r in self._records if r.name != name] + [record]
        self._write_pids()  # after every start: a crash halfway must still leave a complete record

    # --- supervision ---

    def _supervise_children(self) -> None:
        while not self._stopping.wait(0.25):
            for name, child in list(self._children.items()):
                code = child.poll()
                if code is not None and not self._stopping.is_set():
                    self._restart(name, code)

    def _restart(self, name: str, code: int) -> None:
        self._note(f"{name} exited with code {code}; starting it again on port {self._specs[name].port}")
        # What it left behind goes too (gunicorn's worker outlives a killed master for a moment, still
        # holding the port): the child led its own process group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._children[name].pid, signal.SIGKILL)
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while processes.port_accepts(self._specs[name].port) and time.monotonic() < deadline:
            time.sleep(0.05)
        self._launch(name)
        self.restarts[name] = self.restarts.get(name, 0) + 1
        ready, then = self._readiness.get(name, (lambda: True, None))
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while not ready() and not self._stopping.is_set():
            if time.monotonic() > deadline or self._children[name].poll() is not None:
                self._note(f"{name} did not come back; see {self.log_path(name)}")
                return
            time.sleep(0.05)
        try:
            if then is not None and not self._stopping.is_set():
                then()
        except Exception as error:  # its setup (queues, topics) failed: say so, the next death retries
            self._note(f"{name} is back but its setup failed: {error!r}")
            return
        self._note(f"{name} is back (restart {self.restarts[name]})")

    def _note(self, line: str) -> None:
        stamped = f"{time.strftime('%H:%M:%S')} supervisor: {line}"
        with self.log_path("supervisor").open("a") as log:
            log.write(stamped + "\n")
        print(stamped, flush=True)

    def _spawn_google_emulators(self, ports: _EmulatorPorts) -> None:
        pubsub_argv = pubsub_emulator.command(ports.pubsub)
        self._spawn("pubsub-emulator", pubsub_argv, ports.pubsub, pubsub_emulator.marker(ports.pubsub))
        tasks_argv = [*_python_module("infra.local.cloud_tasks_emulator"), "--host", "127.0.0.1"]
        tasks_argv += ["--port", str(ports.tasks)]
        marker = " ".join(tasks_argv)
        assert self.ca is not None
        extra = ["--oidc-port", str(ports.oidc), "--tls-dir", str(self.ca.directory)]
        self._spawn("cloud-tasks-emulator", [*tasks_argv, *extra], ports.tasks, marker)

    def _spawn_front_end(self, entries: list[functions_runner.EntryPoint]) -> None:
        """One HTTPS listener per function, with the ingress, invokers and timeout terraform gives it."""
        assert self.ca is not None
        project = self.env["GCP_PROJECT"]
        routes = []
        for entry in entries:
            row = self.table[entry.name]
            url = public_url(self.front_end_ports[entry.name])
            routes.append(
                {
                    "name": entry.name,
                    "upstream_port": self.function_ports[entry.name],
                    "listen_port": self.front_end_ports[entry.name],
                    "ingress": row.ingress,
                    "public": row.public,
                    "invokers": list(invoker_emails(row, project)),
                    "timeout_seconds": row.timeout_seconds,
                    "audiences": [url],
                }
            )
        config = self.state_dir / "front_end.json"
        config.write_text(
            json.dumps(
                {
                    "tls_dir": str(self.ca.directory),
                    "certs_url": self.env["OIDC_CERTS_URL"],
                    "routes": routes,
                },
                indent=2,
            )
        )
        argv = [*_python_module("infra.local.front_end"), str(config)]
        self._spawn("front-end", argv, self.front_end_ports["api"], " ".join(argv))

    def _spawn_push_relay(self, ports: _EmulatorPorts) -> None:
        """Google's Pub/Sub emulator pushes without a token; the relay adds the push subscription's."""
        assert self.ca is not None
        env = self.env
        argv = [*_python_module("infra.local.pubsub_push_relay"), "--port", str(ports.push_relay)]
        token_url = env["OIDC_CERTS_URL"].rsplit("/", 1)[0] + "/v1/projects/-/serviceAccounts/"
        extra = [
            "--target",
            env["FANOUT_RECIPIENTS_URL"],
            "--service-account",
            env["PUBSUB_PUSH_SERVICE_ACCOUNT_EMAIL"],
            "--audience",
            env["FANOUT_RECIPIENTS_URL"],
            "--token-url",
            token_url,
            "--tls-dir",
            str(self.ca.directory),
        ]
        self._spawn("pubsub-push-relay", [*argv, *extra], ports.push_relay, " ".join(argv))

    def _spawn_function(self, entry: functions_runner.EntryPoint) -> None:
        port = self.function_ports[entry.name]
        argv = functions_runner.command(self.root / "functions" / "main.py", entry, port)
        extra_env = functions_runner.process_env(entry.name, self.state_dir / "run" / entry.name)
        extra_env |= caller_env(self.table[entry.name], self.env)
        self._spawn(entry.name, argv, port, functions_runner.marker(entry, port), extra_env)

    def _spawn_twilio(self, port: int) -> None:
        argv = [*_python_module("infra.local.twilio_emulator"), "--port", str(port)]
        journal = self.state_dir / "twilio-journal.jsonl"
        journal.unlink(missing_ok=True)  # a new stack starts with an empty account
        # Credentials reach the emulator through its environment, not argv, which any local user can read.
        extra = ["--inbound-url", self.env["INBOUND_WEBHOOK_URL"], "--journal", str(journal)]
        self._spawn("twilio-emulator", [*argv, *extra], port, " ".join(argv))

    def _start_postgres(self) -> str:
        server = LocalPostgres()
        if not server.is_running() and self._postgres_state is None:
            self._postgres_state = str(server.state_dir)
            self._write_pids()
        return server.start()

    def _wait_ready(self, ports: _EmulatorPorts) -> None:
        env = self.env
        project, region = env["GCP_PROJECT"], env["GCP_REGION"]
        checks: list[tuple[str, Callable[[], bool], Callable[[], None] | None]] = [
            (
                "pubsub-emulator",
                partial(processes.port_accepts, ports.pubsub),
                lambda: pubsub_emulator.create_topology(
                    env["PUBSUB_EMULATOR_HOST"],
                    project,
                    env["PUBSUB_TOPIC"],
                    self.push_relay_url,
                ),
            ),
            (
                "cloud-tasks-emulator",
                lambda: processes.port_accepts(ports.tasks) and processes.port_accepts(ports.oidc),
                lambda: tasks_queues.create_queues(
                    env["CLOUD_TASKS_EMULATOR_HOST"],
                    project,
                    region,
                    env["TASKS_QUEUE"],
                    int(env["SENDER_RATE_LIMIT_PER_SECOND"]),
                    int(env["TASKS_QUEUE_COUNT"]),
                ),
            ),
        ]
        if ports.twilio is not None:
            checks.append(("twilio-emulator", partial(processes.http_answers, env["TWILIO_API_URL"]), None))
        checks.append(
            ("front-end", lambda: all(map(processes.port_accepts, self.front_end_ports.values())), None)
        )
        checks.append(("pubsub-push-relay", partial(processes.port_accepts, ports.push_relay), None))
        for name, port in self.function_ports.items():
            # functions-framework answers /robots.txt itself (404, or 405 for event functions): the probe
            # proves the server routes requests without invoking the function and filling its log.
            checks.append(
                (name, partial(processes.http_answers, f"http://127.0.0.1:{port}/robots.txt"), None)
            )
        self._readiness = {name: (ready, then) for name, ready, then in checks}
        with ThreadPoolExecutor(len(checks), thread_name_prefix="stack-ready") as pool:
            futures = [pool.submit(self._await, name, ready, then) for name, ready, then in checks]
            try:
                for future in futures:
                    future.result()
            except BaseException:
                self._aborting.set()  # the other waits end now instead of at their timeout
                raise

    def _await(self, name: str, ready: Callable[[], bool], then: Callable[[], None] | None) -> None:
        child = self._children[name]
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while not ready():
            if self._aborting.is_set():
                return
            if child.poll() is not None:
                raise RuntimeError(
                    f"{name} exited with code {child.returncode} while starting; {self.log_path(name)} ends:\n"
                    + processes.tail(self.log_path(name))
                )
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{name} not ready after {STARTUP_TIMEOUT_SECONDS:.0f} s; see {self.log_path(name)}"
                )
            time.sleep(0.05)
        if then is not None:
            then()

    def _start_scheduler(self, interval: float) -> None:
        self._scheduler = local_scheduler(self.env, interval)
        self._scheduler.start()

    def _write_pids(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        state = {
            "processes": [r.as_json() for r in self._records],
            "postgres_state_dir": self._postgres_state,
        }
        tmp = self.pids_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(self.pids_file)


@dataclass(frozen=True)
class _Spec:
    argv: list[str]
    env: dict[str, str]
    port: int
    marker: str


@dataclass(frozen=True)
class _EmulatorPorts:
    pubsub: int
    tasks: int
    oidc: int
    push_relay: int
    twilio: int | None  # None: real Twilio, no emulator

    COUNT: ClassVar[int] = 5

    @classmethod
    def pick(cls, ports: Iterator[int], *, twilio: bool) -> _EmulatorPorts:
        pubsub, tasks, oidc, push_relay, twilio_port = (next(ports) for _ in range(cls.COUNT))
        return cls(pubsub, tasks, oidc, push_relay, twilio_port if twilio else None)


def stop_recorded(state_dir: Path, *, keep_postgres: bool = False) -> str | None:
    """Stop a stack recorded in state_dir, checking each PID is still ours. Returns the state dir of a
    PostgreSQL cluster that stack had started, when keep_postgres leaves it running for the next one."""
    pids_file = state_dir / "stack.pids"
    if not pids_file.exists():
        return None
    state = json.loads(pids_file.read_text())
    records = [ProcessRecord.from_json(r) for r in state["processes"]]
    runner = next((r for r in records if r.name == "runner" and r.pid != os.getpid()), None)
    if runner is not None and processes.is_ours(runner):
        # A live runner stops its own children in order and removes its record.
        os.kill(runner.pid, signal.SIGTERM)
        deadline = time.monotonic() + 2 * processes.STOP_GRACE_SECONDS + 10
        while processes.is_ours(runner) and time.monotonic() < deadline:
            time.sleep(0.05)
    processes.stop_processes([r for r in records if r.name != "runner"])
    postgres_state: str | None = state.get("postgres_state_dir")
    if postgres_state is not None and not keep_postgres:
        LocalPostgres(Path(postgres_state)).stop()
    (state_dir / "stack.env").unlink(missing_ok=True)
    pids_file.unlink(missing_ok=True)
    return postgres_state


def _runner_record() -> ProcessRecord:
    pid = os.getpid()
    start_time = processes.start_time(pid)
    assert start_time is not None  # we are alive
    return ProcessRecord("runner", pid, None, RUNNER_MARKER, start_time)


def _python_module(module: str) -> list[str]:
    return [sys.executable, "-m", module]


# --- command line ---


def _print_urls(stack: LocalStack) -> None:
    env = stack.env
    rows = [(name, public_url(port)) for name, port in stack.front_end_ports.items()]
    rows += [
        ("dashboard", env["DASHBOARD_URL"]),
        ("twilio emulator", env.get("TWILIO_API_URL", "(real Twilio)")),
        ("pub/sub emulator", env["PUBSUB_EMULATOR_HOST"]),
        ("cloud tasks emulator", env["CLOUD_TASKS_EMULATOR_HOST"]),
        ("oidc certs", env["OIDC_CERTS_URL"]),
    ]
    width = max(len(name) for name, _ in rows)
    print("\n".join(f"  {name:<{width}}  {url}" for name, url in rows))
    print(f"\nSettings: {stack.env_file}  (API_TOKEN={env['API_TOKEN']})\nLogs: {stack.logs_dir}/")
    print("Ctrl-C (or `make stop` elsewhere) stops everything.", flush=True)


def _up(args: argparse.Namespace) -> int:
    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    # Explicitly for SIGINT too: a shell starting `make dev &` hands it down ignored, and Python then
    # installs no KeyboardInterrupt handler of its own.
    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
    stack = LocalStack(
        state_dir=args.state_dir,
        database_url=args.database_url,
        scheduler_interval=args.scheduler_interval,
        record_runner=True,
    )
    try:
        print("starting the local stack ...", flush=True)
        stack.start()
        _print_urls(stack)
        while True:  # the stack's supervisor restarts what dies, and says so
            time.sleep(1)
    except KeyboardInterrupt:
        print("\nstopping ...", flush=True)
    finally:
        # A second Ctrl-C must not cut the cleanup short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stack.stop()
    print("stopped.")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m infra.local.stack",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=["up", "stop", "env"])
    parser.add_argument("--state-dir", type=Path, default=ROOT / ".local")
    parser.add_argument(
        "--database-url", help="a database to use instead of the local cluster's `ese` (migrated on start)"
    )
    parser.add_argument(
        "--scheduler-interval",
        type=float,
        default=float(os.environ.get("SCHEDULER_INTERVAL_SECONDS", DEFAULT_INTERVAL_SECONDS)),
        help="seconds between calls to trigger_campaign (SCHEDULER_INTERVAL_SECONDS; default 60)",
    )
    args = parser.parse_args(argv)
    if args.command == "up":
        return _up(args)
    if args.command == "stop":
        stop_recorded(args.state_dir)
        return 0
    env_file = args.state_dir / "stack.env"
    if not env_file.exists():
        print(f"{env_file} does not exist: is `make dev` running?", file=sys.stderr)
        return 1
    sys.stdout.write(env_file.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
