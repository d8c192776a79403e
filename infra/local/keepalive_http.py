"""HTTP requests from the local emulators over kept-alive connections, one per thread and host (http.client).

The Cloud Tasks emulator's dispatches and the Twilio emulator's status callbacks run at hundreds a second on
the machine that also runs the functions they call. Through requests, each cost more CPU (environment and
.netrc lookups, adapters, header models) than the rest of the emulator's work for it; http.client on a
kept-alive connection costs a fraction of that, and the emulators behave exactly as before.
"""

from __future__ import annotations

import http.client
import select
import ssl
import threading
from dataclasses import dataclass
from email.message import Message
from urllib.parse import urlsplit

# What a request can fail with before an answer arrives: refused, reset, timed out (TimeoutError is an
# OSError), or a malformed answer.
REQUEST_ERRORS = (OSError, http.client.HTTPException)


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Message  # case-insensitive lookups, as HTTP headers need
    body: bytes


class KeepAliveClient:
    """Thread-safe: each thread keeps its own connections. Never follows redirects."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        """`ssl_context` for https URLs: None is the default one (SSL_CERT_FILE's roots, no client certificate)."""
        self._local = threading.local()
        self._ssl_context = ssl_context

    def request(
        self, method: str, url: str, body: bytes | None, headers: dict[str, str], timeout: float
    ) -> Answer:
        """Raises one of REQUEST_ERRORS when no answer arrived; the connection is then discarded."""
        parts = urlsplit(url)
        key = (parts.scheme, parts.netloc)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        conn = self._connection(key, timeout)
        try:
            conn.request(method, target, body, headers)
            response = conn.getresponse()
            answer = Answer(response.status, response.msg, response.read())
        except REQUEST_ERRORS:
            self._drop(key)
            raise
        if response.will_close:
            self._drop(key)
        return answer

    def _connections(self) -> dict[tuple[str, str], http.client.HTTPConnection]:
        connections: dict[tuple[str, str], http.client.HTTPConnection] | None = getattr(
            self._local, "connections", None
        )
        if connections is None:
            connections = self._local.connections = {}
        return connections

    def _connection(self, key: tuple[str, str], timeout: float) -> http.client.HTTPConnection:
        connections = self._connections()
        conn = connections.get(key)
        if conn is not None and _closed_by_server(conn):
            self._drop(key)
            conn = None
        if conn is None:
            scheme, netloc = key
            if scheme == "https":
                conn = http.client.HTTPSConnection(netloc, timeout=timeout, context=self._ssl_context)
            else:
                conn = http.client.HTTPConnection(netloc, timeout=timeout)
            connections[key] = conn
        conn.timeout = timeout
        if conn.sock is not None:
            conn.sock.settimeout(timeout)
        return conn

    def _drop(self, key: tuple[str, str]) -> None:
        conn = self._connections().pop(key, None)
        if conn is not None:
            conn.close()


def _closed_by_server(conn: http.client.HTTPConnection) -> bool:
    """An idle kept-alive socket that is readable was closed by the server (urllib3 checks the same before
    reusing one): a request on it would fail although the server never saw it."""
    if conn.sock is None:
        return False
    readable, _, _ = select.select([conn.sock], [], [], 0)
    return bool(readable)
