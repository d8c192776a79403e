"""The front end's request path: TLS in, ingress, IAM, limits, headers, the function, the answer out.

One HTTPS listener per function (each deployed service has a host of its own), a thread per client
connection, HTTP/1.1 with keep-alive on both sides. Requests are read whole (at most 32 MiB) before they
are forwarded, as Cloud Run's HTTP/1 limit implies; answers are read whole and sent with a Content-Length.

What a request meets, in Google's order (docs cited in infra/local/front_end/__init__.py):
  1. ingress: an `ALLOW_INTERNAL_ONLY` function answers 404 to anything but the Google-internal callers
     (here: a connection that presented the local CA's internal client certificate);
  2. IAM (iam.py): 401/403 with Google's HTML page, the container never sees the request;
  3. the body limit: 413 over 32 MiB;
  4. the function, with X-Forwarded-For/-Proto, Forwarded, X-Cloud-Trace-Context and traceparent added
     and the original Host kept; 504 when it outlives its timeout, 503 when nothing listens.
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import secrets
import select
import socket
import ssl
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from infra.local.front_end.iam import TokenVerifier, authorize
from infra.local.front_end.pages import Page, error_page, reason_phrase
from infra.local.front_end.table import INTERNAL_ONLY
from infra.local.local_ca import is_internal_caller

log = logging.getLogger(__name__)

# Cloud Run quotas: "Maximum HTTP/1 request size: 32 MiB per request" (https://cloud.google.com/run/quotas).
MAX_BODY_BYTES = 32 * 1024 * 1024
MAX_HEADER_BYTES = 64 * 1024
# A body announced up to this large is read and thrown away before the 413, so the client sees the answer
# instead of a connection reset halfway through its upload; anything larger is cut off at once.
_DRAIN_LIMIT_BYTES = 2 * MAX_BODY_BYTES
_HANDSHAKE_SECONDS = 10.0
# An idle kept-alive client connection is closed after this long.
_IDLE_SECONDS = 120.0
# How long a closing connection keeps reading what the client still sends (see _lingering_close).
_LINGER_SECONDS = 2.0
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
        "expect",
    }
)
# Set by the front end itself; a caller's own values are replaced.
_FRONT_END_HEADERS = frozenset({"x-forwarded-proto", "forwarded", "x-cloud-trace-context", "traceparent"})


class BadRequest(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


@dataclass(frozen=True)
class Route:
    name: str
    upstream_port: int
    ingress: str
    public: bool
    invokers: tuple[str, ...]
    timeout_seconds: float
    # The URLs an ID token for this service may name as `aud` (its public URL).
    audiences: tuple[str, ...] = field(default=())
    listen_port: int = 0


@dataclass
class _Request:
    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]
    body: bytes = b""

    def header(self, name: str) -> str | None:
        found = [v for k, v in self.headers if k.lower() == name]
        return found[-1] if found else None

    @property
    def keep_alive(self) -> bool:
        connection = (self.header("connection") or "").lower()
        if self.version == "HTTP/1.0":
            return "keep-alive" in connection
        return "close" not in connection


class Listener:
    """One function's HTTPS endpoint. Threads: one accepting, one per client connection."""

    def __init__(
        self, route: Route, context: ssl.SSLContext, verifier: TokenVerifier, host: str = "127.0.0.1"
    ) -> None:
        self.route = route
        self._context = context
        self._verifier = verifier
        self._socket = socket.create_server((host, route.listen_port), reuse_port=False)
        self.port: int = self._socket.getsockname()[1]
        # Without configured audiences the service's URL is the listener's own (as a run.app URL is).
        self.audiences = route.audiences or (f"https://{host}:{self.port}",)
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, name=f"front-end-{route.name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        # close() alone does not wake a thread blocked in accept() on Linux; shutdown() does.
        with contextlib.suppress(OSError):
            self._socket.shutdown(socket.SHUT_RDWR)
        self._socket.close()
        with self._lock:
            for conn in list(self._connections):
                _close_quietly(conn)
        self._thread.join(timeout=5)

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                conn, address = self._socket.accept()
            except OSError:
                return
            threading.Thread(
                target=self._serve,
                args=(conn, address[0]),
                name=f"front-end-{self.route.name}-conn",
                daemon=True,
            ).start()

    def _serve(self, raw: socket.socket, client_ip: str) -> None:
        with self._lock:
            self._connections.add(raw)
        upstream: http.client.HTTPConnection | None = None
        conn: ssl.SSLSocket | None = None
        try:
            raw.settimeout(_HANDSHAKE_SECONDS)
            # wrap_socket detaches `raw`: from here on `conn` owns the file descriptor.
            conn = self._context.wrap_socket(raw, server_side=True)
            with self._lock:
                self._connections.discard(raw)
                self._connections.add(conn)
            conn.settimeout(_IDLE_SECONDS)
            internal = is_internal_caller(conn.getpeercert())  # type: ignore[arg-type]
            reader = conn.makefile("rb", buffering=65536)
            while not self._stopping.is_set():
                try:
                    request = _read_head(reader)
                except BadRequest as bad:
                    _send_page(conn, error_page(bad.status, "/"), keep_alive=False)
                    return
                if request is None:
                    return
                try:
                    upstream, keep_alive = self._handle(conn, reader, request, internal, client_ip, upstream)
                except BadRequest as bad:
                    _send_page(conn, error_page(bad.status, request.target), keep_alive=False)
                    return
                if not keep_alive:
                    return
        except (OSError, ssl.SSLError):
            return
        finally:
            if upstream is not None:
                upstream.close()
            if conn is not None:
                _lingering_close(conn)
            _close_quietly(raw)
            with self._lock:
                self._connections.discard(raw)
                if conn is not None:
                    self._connections.discard(conn)

    def _handle(
        self,
        conn: ssl.SSLSocket,
        reader: socket.SocketIO | object,
        request: _Request,
        internal: bool,
        client_ip: str,
        upstream: http.client.HTTPConnection | None,
    ) -> tuple[http.client.HTTPConnection | None, bool]:
        """Answer one request; returns the upstream connection to keep and whether to keep the client's."""
        route = self.route
        refusal = self._refusal(request, internal)
        expects_continue = (request.header("expect") or "").lower() == "100-continue"
        length = _content_length(request)
        if refusal is not None:
            # The body is read and thrown away first: closing a socket with unread bytes in its receive
            # buffer sends a TCP reset, which can destroy the answer before the client reads it.
            keep_alive = request.keep_alive and length is not None and length <= _DRAIN_LIMIT_BYTES
            if keep_alive and length:
                _drain(reader, length)
            _send_page(conn, refusal, keep_alive=keep_alive)
            return upstream, keep_alive
        if length is not None and length > MAX_BODY_BYTES:
            if not expects_continue and length <= _DRAIN_LIMIT_BYTES:
                _drain(reader, length)
            _send_page(conn, error_page(413, request.target), keep_alive=False)
            return upstream, False
        if expects_continue:
            conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        try:
            request.body = _read_body(reader, request, length)
        except BadRequest as bad:
            _send_page(conn, error_page(bad.status, request.target), keep_alive=False)
            return upstream, False
        headers = _forwarded_headers(request, client_ip)
        if upstream is not None and _closed_by_server(upstream):
            # gunicorn closes a kept-alive connection after 2 idle seconds: a request on it would fail
            # although the function never saw it.
            upstream.close()
            upstream = None
        reused = upstream is not None
        if upstream is None:
            upstream = _connect(route)
        try:
            try:
                status, reason, answer_headers, body = _forward(upstream, request, headers)
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                if not reused:
                    raise
                # The server closed the idle connection as the request went out, before reading it.
                upstream.close()
                upstream = _connect(route)
                status, reason, answer_headers, body = _forward(upstream, request, headers)
        except TimeoutError:
            upstream.close()
            _send_page(conn, error_page(504, request.target), keep_alive=request.keep_alive)
            return None, request.keep_alive
        except (OSError, http.client.HTTPException):
            # Nothing listens (an instance restarting) or it hung up mid-answer.
            upstream.close()
            _send_page(conn, error_page(503, request.target), keep_alive=request.keep_alive)
            return None, request.keep_alive
        _send(
            conn,
            status,
            reason,
            answer_headers,
            body,
            head=request.method == "HEAD",
            keep_alive=request.keep_alive,
        )
        return upstream, request.keep_alive

    def _refusal(self, request: _Request, internal: bool) -> Page | None:
        route = self.route
        if route.ingress == INTERNAL_ONLY and not internal:
            return error_page(404, request.target)
        decision = authorize(
            request.headers,
            public=route.public,
            audiences=self.audiences,
            invokers=route.invokers,
            verifier=self._verifier,
        )
        if decision.status is not None:
            log.info("front end refused %s %s: %s", route.name, decision.status, decision.reason)
            return error_page(decision.status, request.target)
        if decision.rewrite is not None:
            name, value = decision.rewrite
            request.headers = [(k, v) for k, v in request.headers if k.lower() != name] + [(name, value)]
        return None


def _read_head(reader: object) -> _Request | None:
    readline = reader.readline  # type: ignore[attr-defined]
    line = readline(MAX_HEADER_BYTES + 1)
    while line in (b"\r\n", b"\n"):  # tolerated before a request line (RFC 9112 2.2)
        line = readline(MAX_HEADER_BYTES + 1)
    if not line:
        return None
    try:
        method, target, version = line.decode("latin-1").rstrip("\r\n").split(" ")
    except ValueError:
        raise BadRequest(400) from None
    if not version.startswith("HTTP/1."):
        raise BadRequest(400)
    headers: list[tuple[str, str]] = []
    size = len(line)
    while True:
        line = readline(MAX_HEADER_BYTES + 1)
        size += len(line)
        if size > MAX_HEADER_BYTES:
            raise BadRequest(431)
        if line in (b"\r\n", b"\n", b""):
            break
        name, sep, value = line.decode("latin-1").partition(":")
        if not sep or not name or name != name.strip():
            raise BadRequest(400)
        headers.append((name, value.strip()))
    return _Request(method, target, version, headers)


def _content_length(request: _Request) -> int | None:
    if "chunked" in (request.header("transfer-encoding") or "").lower():
        return None
    values = {v for k, v in request.headers if k.lower() == "content-length"}
    if not values:
        return 0
    if len(values) > 1 or not next(iter(values)).isdigit():
        raise BadRequest(400)
    return int(next(iter(values)))


def _read_body(reader: object, request: _Request, length: int | None) -> bytes:
    read = reader.read  # type: ignore[attr-defined]
    if length is not None:
        body: bytes = read(length) if length else b""
        if len(body) != length:
            raise BadRequest(400)
        return body
    readline = reader.readline  # type: ignore[attr-defined]
    chunks: list[bytes] = []
    total = 0
    while True:
        size_line = readline(1024)
        try:
            size = int(size_line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise BadRequest(400) from None
        if size == 0:
            while readline(MAX_HEADER_BYTES) not in (b"\r\n", b"\n", b""):
                pass  # trailers: dropped, as the forwarded request carries a Content-Length
            return b"".join(chunks)
        total += size
        if total > MAX_BODY_BYTES:
            raise BadRequest(413)
        chunk = read(size)
        readline(2)
        if len(chunk) != size:
            raise BadRequest(400)
        chunks.append(chunk)


def _drain(reader: object, length: int) -> None:
    read = reader.read  # type: ignore[attr-defined]
    remaining = length
    while remaining > 0:
        chunk = read(min(remaining, 1 << 20))
        if not chunk:
            return
        remaining -= len(chunk)


def _forwarded_headers(request: _Request, client_ip: str) -> list[tuple[str, str]]:
    forwarded_for = request.header("x-forwarded-for")
    trace_id, span_id = _trace_ids(request)
    kept = [
        (k, v)
        for k, v in request.headers
        if k.lower() not in _HOP_BY_HOP
        and k.lower() not in _FRONT_END_HEADERS
        and k.lower() != "x-forwarded-for"
    ]
    return [
        *kept,
        ("X-Forwarded-For", f"{forwarded_for}, {client_ip}" if forwarded_for else client_ip),
        ("X-Forwarded-Proto", "https"),
        ("Forwarded", f'for="{client_ip}";proto=https'),
        ("X-Cloud-Trace-Context", f"{trace_id}/{int(span_id, 16)};o=1"),
        ("traceparent", f"00-{trace_id}-{span_id}-01"),
    ]


def _trace_ids(request: _Request) -> tuple[str, str]:
    """The caller's trace continues under a new span; a request without one starts a trace."""
    span_id = secrets.token_hex(8)
    parent = (request.header("traceparent") or "").split("-")
    if len(parent) == 4 and len(parent[1]) == 32:
        return parent[1], span_id
    cloud = (request.header("x-cloud-trace-context") or "").split("/", 1)[0]
    if len(cloud) == 32:
        return cloud, span_id
    return secrets.token_hex(16), span_id


def _connect(route: Route) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", route.upstream_port, timeout=route.timeout_seconds)


def _closed_by_server(upstream: http.client.HTTPConnection) -> bool:
    """An idle kept-alive socket that is readable was closed by the server (urllib3 checks the same)."""
    if upstream.sock is None:
        return False
    readable, _, _ = select.select([upstream.sock], [], [], 0)
    return bool(readable)


def _forward(
    upstream: http.client.HTTPConnection, request: _Request, headers: Sequence[tuple[str, str]]
) -> tuple[int, str, list[tuple[str, str]], bytes]:
    upstream.putrequest(request.method, request.target, skip_host=True, skip_accept_encoding=True)
    for name, value in headers:
        upstream.putheader(name, value)
    if request.body or request.method in ("POST", "PUT", "PATCH"):
        upstream.putheader("Content-Length", str(len(request.body)))
    upstream.endheaders(request.body or None)
    response = upstream.getresponse()
    body = response.read()
    answer_headers = [(k, v) for k, v in response.getheaders() if k.lower() not in _HOP_BY_HOP]
    if response.will_close:
        upstream.close()
    return response.status, response.reason, answer_headers, body


def _send(
    conn: ssl.SSLSocket,
    status: int,
    reason: str,
    headers: Sequence[tuple[str, str]],
    body: bytes,
    *,
    head: bool = False,
    keep_alive: bool,
) -> None:
    lines = [f"HTTP/1.1 {status} {reason or reason_phrase(status)}"]
    lines += [f"{k}: {v}" for k, v in headers]
    if not head:
        lines.append(f"Content-Length: {len(body)}")
    if not keep_alive:
        lines.append("Connection: close")
    head_bytes = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    conn.sendall(head_bytes if head else head_bytes + body)


def _send_page(conn: ssl.SSLSocket, page: Page, *, keep_alive: bool) -> None:
    headers = [("Content-Type", "text/html; charset=UTF-8"), ("Server", "Google Frontend"), *page.headers]
    _send(conn, page.status, page.reason, headers, page.body, keep_alive=keep_alive)


def _lingering_close(conn: ssl.SSLSocket) -> None:
    """Half-close, then read what the client still sends for a moment before closing (as Apache's
    lingering close): a close with unread bytes would reset the connection and could destroy an answer
    already sent, a refusal or a 413 whose body was not read."""
    deadline = time.monotonic() + _LINGER_SECONDS
    with contextlib.suppress(OSError, ValueError):
        conn.shutdown(socket.SHUT_WR)  # ends TLS use of the socket: what follows reads raw bytes
        while (left := deadline - time.monotonic()) > 0:
            conn.settimeout(left)
            if not conn.recv(65536):
                break
    _close_quietly(conn)


def _close_quietly(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.close()
