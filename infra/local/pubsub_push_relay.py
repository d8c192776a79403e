"""What Google's Pub/Sub emulator leaves out of a push: the OIDC token, and the origin inside Google.

A push subscription configured with `oidc_token` makes Pub/Sub send "Authorization: Bearer <JWT>" with the
push endpoint as the default audience (https://cloud.google.com/pubsub/docs/authenticate-push-subscriptions),
and Pub/Sub counts as internal traffic at Cloud Run's front end for `internal` ingress
(https://cloud.google.com/run/docs/securing/ingress). The emulator sends neither, so locally its push
subscription points here, and this relay forwards each push unchanged to the function's front-end URL with
both: a token for the push service account (minted by the local issuer, infra/local/cloud_tasks_emulator/
oidc_server.py) and the Google-internal client certificate (infra/local/local_ca.py). The function's answer
goes back to the emulator as is: only 102, 200, 201, 202 and 204 acknowledge a push.

    python -m infra.local.pubsub_push_relay --port N --target https://127.0.0.1:M \\
        --service-account EMAIL --audience URL --token-url URL --tls-dir DIR
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any

from infra.local.keepalive_http import REQUEST_ERRORS, KeepAliveClient
from infra.local.local_ca import LocalCa

# As terraform's push subscription: the ack deadline (fanout_recipients' timeout) is the push timeout.
PUSH_TIMEOUT_SECONDS = 540.0
# Tokens last an hour; a fresh one well before that.
_TOKEN_REUSE_SECONDS = 600.0
_FORWARDED_HEADERS = ("content-type", "user-agent")


class PushRelay:
    def __init__(
        self,
        port: int,
        target: str,
        service_account: str,
        audience: str,
        token_url: str,
        client: KeepAliveClient,
    ) -> None:
        self._target = target.rstrip("/")
        self._service_account, self._audience, self._token_url = service_account, audience, token_url
        self._client = client
        self._token: tuple[float, str] | None = None
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", port), _handler(self))
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="push-relay", daemon=True)

    def start(self) -> PushRelay:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def forward(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        outgoing = {k: v for k, v in headers.items() if k.lower() in _FORWARDED_HEADERS}
        outgoing["Authorization"] = f"Bearer {self._id_token()}"
        try:
            answer = self._client.request("POST", self._target + path, body, outgoing, PUSH_TIMEOUT_SECONDS)
        except REQUEST_ERRORS as error:
            # No answer is a nack, exactly as Pub/Sub treats an unreachable endpoint.
            return 502, f"push relay: {type(error).__name__}: {error}".encode()
        return answer.status, answer.body

    def _id_token(self) -> str:
        with self._lock:
            if self._token is not None and time.monotonic() - self._token[0] < _TOKEN_REUSE_SECONDS:
                return self._token[1]
        request = urllib.request.Request(  # noqa: S310 - the local issuer on 127.0.0.1
            f"{self._token_url}{self._service_account}:generateIdToken",
            data=json.dumps({"audience": self._audience, "includeEmail": True}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            token = str(json.loads(response.read())["token"])
        with self._lock:
            self._token = (time.monotonic(), token)
        return token


class _Server(ThreadingHTTPServer):
    daemon_threads = True


def _handler(relay: PushRelay) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status, answer = relay.forward(self.path, dict(self.headers.items()), body)
            self.send_response(status)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.local.pubsub_push_relay", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--target", required=True, help="the function's front-end URL")
    parser.add_argument("--service-account", required=True, help="the push subscription's oidc_token account")
    parser.add_argument("--audience", required=True)
    parser.add_argument("--token-url", required=True, help="the local issuer's .../serviceAccounts/ prefix")
    parser.add_argument("--tls-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    client = KeepAliveClient(LocalCa(args.tls_dir).internal_client_context())
    relay = PushRelay(args.port, args.target, args.service_account, args.audience, args.token_url, client)
    relay.start()
    stopping = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    print(f"PUBSUB_PUSH_RELAY=http://127.0.0.1:{relay.port} -> {args.target}", flush=True)
    stopping.wait()
    relay.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
