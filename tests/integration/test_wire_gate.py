"""The last-moment check of shared/adapters/wire_gate.py, through requests and urllib3 against a raw socket
server that records when each byte arrived (the kernel's order of events, nothing mocked)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import requests

from shared.adapters.wire_gate import GatedAdapter, Withheld, gate

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


@dataclass
class Recorder:
    """Accepts connections; answers each request (one recv) with 200, noting when its bytes arrived."""

    sock: socket.socket
    accepted: list[float] = field(default_factory=list)
    arrivals: list[tuple[float, bytes]] = field(default_factory=list)

    def serve(self) -> None:
        while True:
            try:
                connection, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(time.monotonic())
            threading.Thread(target=self._answer, args=(connection,), daemon=True).start()

    def _answer(self, connection: socket.socket) -> None:
        with connection:
            while data := connection.recv(65536):
                self.arrivals.append((time.monotonic(), data))
                if b"\r\n\r\n" in data:
                    connection.sendall(RESPONSE)


@pytest.fixture
def server() -> Iterator[tuple[Recorder, str]]:
    sock = socket.create_server(("127.0.0.1", 0))
    recorder = Recorder(sock)
    threading.Thread(target=recorder.serve, daemon=True).start()
    yield recorder, f"http://127.0.0.1:{sock.getsockname()[1]}/"
    sock.close()


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as gated:
        gated.mount("http://", GatedAdapter())
        yield gated


def test_a_withheld_request_writes_not_a_byte(
    server: tuple[Recorder, str], session: requests.Session
) -> None:
    recorder, url = server
    with pytest.raises(Withheld), gate(lambda: False):
        session.post(url, data=b"body", timeout=5)
    time.sleep(0.2)  # anything written would have arrived by now
    assert recorder.accepted  # the connection was opened before the check
    assert recorder.arrivals == []
    # The connection left mid-request was closed, not pooled: the next request works on a new one.
    assert session.post(url, data=b"body", timeout=5).text == "ok"
    assert len(recorder.accepted) == 2


def test_the_check_runs_after_the_connection_opened_and_before_the_first_byte(
    server: tuple[Recorder, str], session: requests.Session
) -> None:
    recorder, url = server
    checked: list[float] = []

    def slow_check() -> bool:
        time.sleep(0.2)  # waiting for a slot
        checked.append(time.monotonic())
        return True

    with gate(slow_check):
        assert session.post(url, data=b"body", timeout=5).text == "ok"

    (passed,) = checked
    assert recorder.accepted[0] < passed - 0.15
    assert passed <= recorder.arrivals[0][0]


def test_the_check_runs_once_for_the_next_request_only(
    server: tuple[Recorder, str], session: requests.Session
) -> None:
    recorder, url = server
    calls: list[str] = []

    def check() -> bool:
        calls.append("checked")
        return True

    with gate(check):
        session.post(url, data=b"first", timeout=5)
        session.post(url, data=b"second", timeout=5)
    session.post(url, data=b"third", timeout=5)

    assert calls == ["checked"]
    assert len(recorder.accepted) == 1  # all three on one kept-alive connection
