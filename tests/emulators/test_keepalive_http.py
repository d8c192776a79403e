"""The emulators' kept-alive HTTP client against a real local HTTP/1.1 server."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from infra.local.keepalive_http import KeepAliveClient


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # The client port of every request, and whether to close the connection after answering (silently,
    # with no Connection: close header, as a server dropping an idle keep-alive connection does).
    close_after_answer = False

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.client_ports: list[int] = []
        self.closed_one = threading.Event()

    def shutdown_request(self, request: object) -> None:
        super().shutdown_request(request)  # type: ignore[arg-type]
        self.closed_one.set()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.client_ports.append(self.client_address[1])
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = self.server.close_after_answer

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[_Server]:
    server = _Server()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _url(server: _Server) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/echo"


def test_requests_from_one_thread_reuse_one_connection(server: _Server) -> None:
    client = KeepAliveClient()

    answers = [client.request("POST", _url(server), f"{n}".encode(), {}, timeout=5) for n in range(3)]

    assert [(a.status, a.body) for a in answers] == [(200, b"0"), (200, b"1"), (200, b"2")]
    assert len(set(server.client_ports)) == 1


def test_a_connection_the_server_closed_while_idle_is_replaced_instead_of_failing_the_request(
    server: _Server,
) -> None:
    server.close_after_answer = True
    client = KeepAliveClient()

    first = client.request("POST", _url(server), b"first", {}, timeout=5)
    # "While idle": the server has closed its end before the next request (the answer reaches the client
    # before the server thread gets to the close, so without this wait the two race).
    assert server.closed_one.wait(timeout=5)
    second = client.request("POST", _url(server), b"second", {}, timeout=5)

    assert (first.body, second.body) == (b"first", b"second")
    assert len(set(server.client_ports)) == 2


def test_a_refused_connection_raises_an_os_error() -> None:
    unused = _Server()
    port = unused.server_address[1]
    unused.server_close()

    with pytest.raises(OSError):
        KeepAliveClient().request("POST", f"http://127.0.0.1:{port}/", b"", {}, timeout=5)
