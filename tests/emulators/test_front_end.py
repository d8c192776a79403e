"""The front-end emulator does to a request what Google's front end does: TLS, ingress, IAM, limits and the
headers the function sees. Real TLS with the local CA, real ID tokens from the Cloud Tasks emulator's
issuer, a recording HTTP server as the function."""

from __future__ import annotations

import base64
import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from infra.local.cloud_tasks_emulator.oidc_server import OidcServer
from infra.local.front_end import FrontEnd, Route
from infra.local.front_end.iam import SIGNATURE_REMOVED
from infra.local.front_end.table import ALLOW_ALL, INTERNAL_ONLY, load_entry_points
from infra.local.local_ca import LocalCa, ensure_local_ca
from tests.emulators.conftest import RecordingTarget, Reply

INVOKER = "ese-tasks-invoker@local-project.iam.gserviceaccount.com"
STRANGER = "someone-else@local-project.iam.gserviceaccount.com"


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> LocalCa:
    return ensure_local_ca(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def issuer() -> Iterator[OidcServer]:
    server = OidcServer("127.0.0.1", 0)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def function() -> Iterator[RecordingTarget]:
    target = RecordingTarget()
    yield target
    target.stop()


@pytest.fixture
def front_end(ca: LocalCa, issuer: OidcServer, function: RecordingTarget) -> Iterator[FrontEnd]:
    port = int(function.url.split(":")[2].split("/")[0])
    routes = [
        Route("public", port, ALLOW_ALL, public=True, invokers=(), timeout_seconds=5),
        Route("private", port, ALLOW_ALL, public=False, invokers=(INVOKER,), timeout_seconds=5),
        Route("internal", port, INTERNAL_ONLY, public=False, invokers=(INVOKER,), timeout_seconds=1),
    ]
    with FrontEnd(routes, ca, issuer.certs_url) as running:
        yield running


def post(
    front_end: FrontEnd, ca: LocalCa, name: str, *, internal: bool = False, **kwargs: Any
) -> requests.Response:
    cert_file, key_file = ca.internal_cert
    cert = (str(cert_file), str(key_file)) if internal else None
    return requests.post(
        front_end.url(name) + "/task?x=1", verify=str(ca.bundle_file), cert=cert, timeout=30, **kwargs
    )


def claims_of(header_value: str) -> dict[str, object]:
    payload = header_value.removeprefix("Bearer ").split(".")[1]
    decoded: dict[str, object] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return decoded


def test_function_sees_plain_http_with_the_forwarded_headers_and_the_original_host(
    front_end: FrontEnd, ca: LocalCa, function: RecordingTarget
) -> None:
    answer = post(front_end, ca, "public", data=b"hello", headers={"X-Forwarded-For": "203.0.113.9"})

    assert answer.status_code == 200
    (seen,) = function.arrivals
    assert seen.path == "/task?x=1" and seen.body == b"hello"
    assert seen.header("Host") == f"127.0.0.1:{front_end.port('public')}"
    assert seen.header("X-Forwarded-Proto") == "https"
    # The caller's own value first, then the address the front end saw.
    assert seen.header("X-Forwarded-For") == "203.0.113.9, 127.0.0.1"
    trace_id, rest = str(seen.header("X-Cloud-Trace-Context")).split("/")
    assert len(trace_id) == 32 and rest.endswith(";o=1")
    assert str(seen.header("traceparent")).split("-")[1] == trace_id


def test_a_callers_trace_is_continued(front_end: FrontEnd, ca: LocalCa, function: RecordingTarget) -> None:
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    post(front_end, ca, "public", headers={"traceparent": f"00-{trace}-00f067aa0ba902b7-01"})
    assert str(function.arrivals[0].header("X-Cloud-Trace-Context")).startswith(trace + "/")


def test_plain_http_is_not_served(front_end: FrontEnd) -> None:
    with socket.create_connection(("127.0.0.1", front_end.port("public")), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.settimeout(5)
        try:
            answer = sock.recv(100)
        except ConnectionResetError:
            answer = b""
    assert not answer.startswith(b"HTTP/1.1 200")


def test_internal_ingress_refuses_an_outside_caller_with_404_before_the_function(
    front_end: FrontEnd, ca: LocalCa, issuer: OidcServer, function: RecordingTarget
) -> None:
    token = issuer.issuer.mint(INVOKER, front_end.url("internal"))
    answer = post(front_end, ca, "internal", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 404
    assert "<h1>Error: Not Found</h1>" in answer.text
    assert function.arrivals == []


@pytest.mark.parametrize("body_bytes", [16, 256 * 1024])
def test_every_refusal_reaches_the_caller_even_with_a_body_the_front_end_never_forwards(
    front_end: FrontEnd, ca: LocalCa, function: RecordingTarget, body_bytes: int
) -> None:
    # Closing a connection with the body unread resets it, and a reset can destroy the refusal before
    # the caller reads it ("Remote end closed connection without response"). Fresh connections and one
    # kept-alive session, as callers use both.
    body = b"x" * body_bytes
    statuses = [post(front_end, ca, "internal", data=body).status_code for _ in range(30)]
    with requests.Session() as session:
        for _ in range(30):
            answer = session.post(
                front_end.url("private") + "/", data=body, verify=str(ca.bundle_file), timeout=10
            )
            statuses.append(answer.status_code)
    assert statuses == [404] * 30 + [403] * 30
    assert function.arrivals == []


def test_a_malformed_content_length_gets_400_not_a_dropped_connection(
    front_end: FrontEnd, ca: LocalCa
) -> None:
    context = ssl.create_default_context(cafile=str(ca.bundle_file))
    host, port = front_end.url("public").removeprefix("https://").split(":")
    with (
        socket.create_connection((host, int(port)), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=host) as conn,
    ):
        conn.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 12abc\r\n\r\n")
        answer = conn.recv(65536)
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:80]


@pytest.mark.parametrize(
    ("authorization", "status"),
    [
        (None, 403),  # no token
        ("Bearer not-a-jwt", 401),
        ("Basic dXNlcjpwYXNz", 401),
    ],
)
def test_restricted_function_without_a_valid_token_is_refused_by_the_front_end(
    front_end: FrontEnd, ca: LocalCa, function: RecordingTarget, authorization: str | None, status: int
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    answer = post(front_end, ca, "private", headers=headers)
    assert answer.status_code == status
    assert answer.headers["Content-Type"].startswith("text/html")
    assert function.arrivals == []


def test_a_token_for_another_audience_gets_401(
    front_end: FrontEnd, ca: LocalCa, issuer: OidcServer, function: RecordingTarget
) -> None:
    token = issuer.issuer.mint(INVOKER, "https://some-other-service.example")
    answer = post(front_end, ca, "private", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 401
    assert "Error: Unauthorized" in answer.text
    assert function.arrivals == []


def test_an_identity_without_the_invoker_role_gets_403(
    front_end: FrontEnd, ca: LocalCa, issuer: OidcServer, function: RecordingTarget
) -> None:
    token = issuer.issuer.mint(STRANGER, front_end.url("private"))
    answer = post(front_end, ca, "private", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 403
    assert "Error: Forbidden" in answer.text
    assert function.arrivals == []


def test_a_forged_signature_gets_401(
    front_end: FrontEnd, ca: LocalCa, issuer: OidcServer, function: RecordingTarget
) -> None:
    header, payload, _ = issuer.issuer.mint(INVOKER, front_end.url("private")).split(".")
    answer = post(front_end, ca, "private", headers={"Authorization": f"Bearer {header}.{payload}.Zm9yZ2Vk"})
    assert answer.status_code == 401
    assert function.arrivals == []


def test_an_accepted_token_reaches_the_function_with_its_signature_removed(
    front_end: FrontEnd, ca: LocalCa, issuer: OidcServer, function: RecordingTarget
) -> None:
    token = issuer.issuer.mint(INVOKER, front_end.url("private"))
    answer = post(front_end, ca, "private", headers={"Authorization": f"Bearer {token}"})

    assert answer.status_code == 200
    forwarded = str(function.arrivals[0].header("Authorization"))
    assert forwarded.endswith("." + SIGNATURE_REMOVED)
    assert forwarded.removeprefix("Bearer ").split(".")[:2] == token.split(".")[:2]
    assert claims_of(forwarded)["email"] == INVOKER


def test_x_serverless_authorization_is_checked_and_stripped_and_authorization_passes_untouched(
    front_end: FrontEnd, ca: LocalCa, issuer: OidcServer, function: RecordingTarget
) -> None:
    token = issuer.issuer.mint(INVOKER, front_end.url("private"))
    headers = {"X-Serverless-Authorization": f"Bearer {token}", "Authorization": "Bearer app-own-token"}
    answer = post(front_end, ca, "private", headers=headers)

    assert answer.status_code == 200
    (seen,) = function.arrivals
    assert seen.header("Authorization") == "Bearer app-own-token"
    assert str(seen.header("X-Serverless-Authorization")).endswith("." + SIGNATURE_REMOVED)


def test_internal_caller_with_a_valid_token_reaches_an_internal_function(
    front_end: FrontEnd, ca: LocalCa, issuer: OidcServer, function: RecordingTarget
) -> None:
    token = issuer.issuer.mint(INVOKER, front_end.url("internal"))
    answer = post(front_end, ca, "internal", internal=True, headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200
    assert len(function.arrivals) == 1


def test_a_body_over_32_mib_gets_413_and_never_reaches_the_function(
    front_end: FrontEnd, ca: LocalCa, function: RecordingTarget
) -> None:
    answer = post(front_end, ca, "public", data=b"x" * (33 * 1024 * 1024))
    assert answer.status_code == 413
    assert "Request Entity Too Large" in answer.text
    assert function.arrivals == []


def test_a_body_of_exactly_32_mib_is_forwarded(
    front_end: FrontEnd, ca: LocalCa, function: RecordingTarget
) -> None:
    answer = post(front_end, ca, "public", data=b"x" * (32 * 1024 * 1024))
    assert answer.status_code == 200
    assert len(function.arrivals[0].body) == 32 * 1024 * 1024


def test_a_function_outliving_its_timeout_gets_504(
    front_end: FrontEnd, ca: LocalCa, issuer: OidcServer, function: RecordingTarget
) -> None:
    function.reply = lambda index: Reply(delay_seconds=2.5)
    token = issuer.issuer.mint(INVOKER, front_end.url("internal"))
    started = time.monotonic()
    answer = post(front_end, ca, "internal", internal=True, headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 504
    assert "maximum request timeout" in answer.text
    assert time.monotonic() - started < 2.5


def test_kept_alive_connection_serves_many_requests(
    front_end: FrontEnd, ca: LocalCa, function: RecordingTarget
) -> None:
    with requests.Session() as session:
        for _ in range(5):
            response = session.post(
                front_end.url("public") + "/", data=b"x", verify=str(ca.bundle_file), timeout=10
            )
            assert response.status_code == 200
    assert len(function.arrivals) == 5


def test_tls_certificate_is_trusted_through_the_bundle_only(front_end: FrontEnd, ca: LocalCa) -> None:
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(front_end.url("public"), timeout=10)  # certifi's roots alone
    context = ssl.create_default_context(cafile=str(ca.ca_file))
    with (
        socket.create_connection(("127.0.0.1", front_end.port("public"))) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        assert tls.version() in ("TLSv1.2", "TLSv1.3")


def test_table_is_the_one_terraform_reads() -> None:
    entry_points = load_entry_points()
    assert entry_points["send_message"].ingress == INTERNAL_ONLY
    assert entry_points["send_message"].invokers == ("tasks_invoker",)
    assert entry_points["inbound_webhook"].public
    assert entry_points["send_message"].timeout_seconds == 60


def test_an_upstream_that_closed_its_idle_keep_alive_connection_is_reconnected(
    ca: LocalCa, issuer: OidcServer
) -> None:
    """gunicorn closes a kept-alive connection after 2 idle seconds; the next request must not fail."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = 0.2  # the server drops a connection idle this long

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    route = Route("idle", server.server_address[1], ALLOW_ALL, public=True, invokers=(), timeout_seconds=5)
    try:
        with FrontEnd([route], ca, issuer.certs_url) as front_end, requests.Session() as session:
            answers = []
            for _ in range(3):
                answers.append(
                    session.post(front_end.url("idle"), data=b"x", verify=str(ca.bundle_file), timeout=10)
                )
                time.sleep(0.5)
        assert [a.status_code for a in answers] == [200, 200, 200]
    finally:
        server.shutdown()
        server.server_close()
