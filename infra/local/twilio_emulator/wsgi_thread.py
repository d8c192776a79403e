"""A WSGI app served on a background thread: HTTP/1.1 with keep-alive, one handler thread per connection.

Werkzeug's development server closes the connection after every response, so each send cost a TCP
connect and a new thread on both sides, a large share of a send at a few hundred a second. This
server keeps connections open the way Twilio's front end does; the app's responses always carry a
Content-Length (werkzeug sets it for the byte bodies the emulator returns; it is added here otherwise).
"""

from __future__ import annotations

import contextlib
import io
import socket
import struct
import sys
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

# When the request's first bytes reached this host (the environ key holds a datetime): what a Message's
# `date_created` is stamped with (messages_endpoint.py).
RECEIVED_AT = "emulator.received_at"
# Linux stamps each received packet with the wall clock when the kernel takes it in, and hands the stamp
# to recvmsg() as a control message once the socket asks for it (socket(7), SO_TIMESTAMPNS; the TCP
# stack passes the stamp of the data it returns since Linux 4.x). Twilio stamps a message on its own
# servers, whose CPUs our stack does not share; the emulator's threads do share this machine's two cores
# with the stack it measures, and under load get to a request tens of milliseconds after it arrived. The
# kernel's stamp is the arrival itself. Python does not name the constant; 35 is SO_TIMESTAMPNS (the
# 64-bit `struct timespec` form) in Linux's asm-generic/socket.h, also its SCM_ control message type.
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
_TIMESPEC = struct.Struct("qq")
# An idle kept-alive connection is closed after this long, as servers do, so its thread ends.
IDLE_TIMEOUT_SECONDS = 30.0


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], app: Any) -> None:
        super().__init__(address, _KeepAliveHandler)
        self.app = app
        self.open_connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()

    def server_bind(self) -> None:
        # On the listening socket, so that accepted sockets inherit it: a request that arrives before its
        # handler thread has run would otherwise have come in unstamped (the kernel stamps packets only
        # once some socket has asked for stamps).
        with contextlib.suppress(OSError):  # not Linux: stamped when read
            self.socket.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        super().server_bind()

    def close_open_connections(self) -> None:
        """Stopped means stopped: a kept-alive client must not be answered by a leftover handler thread."""
        with self.connections_lock:
            for connection in self.open_connections:
                with contextlib.suppress(OSError):  # already closed by the client
                    connection.shutdown(socket.SHUT_RDWR)


class _ArrivalStampedReader(io.RawIOBase):
    """The socket's bytes, keeping the kernel's arrival stamp of the first read since `arrival` was reset.

    The handler buffers its reads (one read takes a whole small request); a request whose bytes were already
    buffered with the one before it (a pipelining client; none of ours pipelines) has no stamp of its own,
    and is stamped when read."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__()
        self._sock = sock
        self._control = socket.CMSG_SPACE(_TIMESPEC.size)
        self.arrival: datetime | None = None

    def readable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._sock.fileno()

    def readinto(self, buffer: Any) -> int:
        size, control, _flags, _address = self._sock.recvmsg_into([buffer], self._control)
        if self.arrival is None:
            for level, kind, data in control:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= _TIMESPEC.size:
                    seconds, nanoseconds = _TIMESPEC.unpack_from(data)
                    self.arrival = datetime.fromtimestamp(seconds + nanoseconds / 1e9, UTC)
        return size


class _KeepAliveHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = IDLE_TIMEOUT_SECONDS
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Headers and body leave in two writes: without this, Nagle holds the body back for the client's
        # delayed ACK, 40 ms per request.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.rfile.close()  # the socket's own buffered file, replaced by one that keeps arrival stamps
        self._reader = _ArrivalStampedReader(self.connection)
        self.rfile = io.BufferedReader(self._reader)
        with self.server.connections_lock:
            self.server.open_connections.add(self.connection)

    def handle_one_request(self) -> None:
        self._reader.arrival = None
        super().handle_one_request()

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.open_connections.discard(self.connection)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        """A log line per request would cost more than the request at a few hundred sends a second."""

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def _serve(self) -> None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            # No client of the emulator streams a request body; refusing keeps the framing simple.
            self.send_error(411, "Length Required")
            return
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        received = self._reader.arrival or datetime.now(UTC)
        status, headers, chunks = self._call_app(body, received)
        code, _, reason = status.partition(" ")
        payload = b"".join(chunks)
        self.send_response(int(code), reason)
        for name, value in headers:
            if name.lower() not in ("content-length", "connection"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _call_app(self, body: bytes, received: datetime) -> tuple[str, list[tuple[str, str]], list[bytes]]:
        started: list[Any] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            started[:] = [status, headers]
            return lambda data: chunks.append(data)

        chunks: list[bytes] = []
        result = self.server.app({**self._environ(body), RECEIVED_AT: received}, start_response)
        try:
            chunks.extend(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        return started[0], started[1], chunks

    def _environ(self, body: bytes) -> dict[str, Any]:
        path, _, query = self.path.partition("?")
        host, port = self.server.server_address[:2]
        environ: dict[str, Any] = {
            "REQUEST_METHOD": self.command,
            "SCRIPT_NAME": "",
            "PATH_INFO": unquote(path, encoding="latin-1"),
            "QUERY_STRING": query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "SERVER_NAME": str(host),
            "SERVER_PORT": str(port),
            "SERVER_PROTOCOL": self.request_version,
            "REMOTE_ADDR": self.client_address[0],
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        for name, value in self.headers.items():
            key = "HTTP_" + name.upper().replace("-", "_")
            if key not in ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"):
                environ[key] = f"{environ[key]},{value}" if key in environ else value
        return environ


class WsgiThread:
    def __init__(self, app: Any, host: str, port: int) -> None:
        self._app, self._host, self._port = app, host, port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._server = _Server((self._host, self._port), self._app)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name="wsgi-thread", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server.close_open_connections()
        if self._thread is not None:
            self._thread.join()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("server is not started")
        return f"http://{self._host}:{self._server.server_port}"
