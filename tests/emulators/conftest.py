"""Fixtures for the Cloud Tasks emulator tests: the emulator, the real client on it, and an HTTP target."""

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
import pytest
from google.cloud import tasks_v2
from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcTransport

from infra.local.cloud_tasks_emulator import CloudTasksEmulator, TaskLimits

LOCATION = "projects/test-project/locations/us-central1"


@dataclass(frozen=True)
class Arrival:
    at: float
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers.items() if k.lower() == name.lower()), None)


@dataclass(frozen=True)
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay_seconds: float = 0.0


class _TargetServer(ThreadingHTTPServer):
    daemon_threads = True
    # The default backlog of 5 drops connections in a burst, and the kernel retries them a second later.
    request_queue_size = 256


class RecordingTarget:
    """An HTTP server on 127.0.0.1 that records every request and answers with `reply(attempt_index)`."""

    def __init__(self) -> None:
        self.arrivals: list[Arrival] = []
        self.reply: Callable[[int], Reply] = lambda index: Reply()
        self.max_in_flight = 0
        self._in_flight = 0
        self._lock = threading.Lock()
        self._server = _TargetServer(("127.0.0.1", 0), self._handler_class())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/task"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        body = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        arrival = Arrival(time.time(), handler.command, handler.path, dict(handler.headers.items()), body)
        with self._lock:
            self.arrivals.append(arrival)
            index = len(self.arrivals) - 1
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
        reply = self.reply(index)
        time.sleep(reply.delay_seconds)
        with self._lock:
            self._in_flight -= 1
        try:
            handler.send_response(reply.status)
            for name, value in reply.headers.items():
                handler.send_header(name, value)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
        except OSError:
            pass  # the emulator gave up on a slow reply (dispatch deadline) and closed the connection

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        target = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                target._handle(self)

            do_GET = do_PUT = do_PATCH = do_DELETE = do_POST

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler


@pytest.fixture(scope="session")
def shared_tasks_emulator() -> Iterator[CloudTasksEmulator]:
    # Deadlines below the service's 15 s floor keep the deadline test short.
    with CloudTasksEmulator(task_limits=TaskLimits(min_dispatch_deadline=timedelta(seconds=0.1))) as running:
        yield running


@pytest.fixture
def tasks_emulator(shared_tasks_emulator: CloudTasksEmulator) -> Iterator[CloudTasksEmulator]:
    shared_tasks_emulator.reset()
    yield shared_tasks_emulator
    shared_tasks_emulator.reset()


@pytest.fixture
def tasks_client(tasks_emulator: CloudTasksEmulator) -> Iterator[tasks_v2.CloudTasksClient]:
    channel = grpc.insecure_channel(tasks_emulator.address)
    yield tasks_v2.CloudTasksClient(transport=CloudTasksGrpcTransport(channel=channel))
    channel.close()


@pytest.fixture
def task_target() -> Iterator[RecordingTarget]:
    server = RecordingTarget()
    yield server
    server.stop()
