"""Serves the emulator's OpenID discovery document, JWKS and PEM certificates over plain HTTP, and mints ID
tokens on request the way IAM Credentials' generateIdToken does
(`POST /v1/projects/-/serviceAccounts/EMAIL:generateIdToken` with `{"audience": ...}` answers
`{"token": ...}`), for the local stand-ins of other Google services that attach tokens (the Pub/Sub push
relay). One issuer for every local token, so one set of certificates verifies them all."""

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from infra.local.cloud_tasks_emulator.oidc_tokens import OidcIssuer

DISCOVERY_PATH = "/.well-known/openid-configuration"
JWKS_PATH = "/jwks"
CERTS_PATH = "/certs"
TOKEN_PATH_PREFIX = "/v1/projects/-/serviceAccounts/"  # noqa: S105 - a URL path, not a secret
TOKEN_PATH_SUFFIX = ":generateIdToken"  # noqa: S105


class OidcServer:
    def __init__(self, host: str, port: int) -> None:
        self._httpd = _DocumentServer((host, port), _Handler)
        self.base_url = f"http://{host}:{self._httpd.server_port}"
        self.issuer = OidcIssuer(self.base_url)
        self._httpd.mint = self.issuer.mint
        self._httpd.documents = {
            DISCOVERY_PATH: self.issuer.discovery_document(self.jwks_url),
            JWKS_PATH: self.issuer.jwks(),
            CERTS_PATH: self.issuer.pem_certificates(),
        }
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="oidc-http", daemon=True)

    @property
    def jwks_url(self) -> str:
        return self.base_url + JWKS_PATH

    @property
    def token_url_prefix(self) -> str:
        """Append `EMAIL:generateIdToken` and POST {"audience": ...}."""
        return self.base_url + TOKEN_PATH_PREFIX

    @property
    def certs_url(self) -> str:
        return self.base_url + CERTS_PATH

    @property
    def discovery_url(self) -> str:
        return self.base_url + DISCOVERY_PATH

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()


class _DocumentServer(ThreadingHTTPServer):
    daemon_threads = True
    documents: dict[str, Any]
    mint: Callable[[str, str], str]


class _Handler(BaseHTTPRequestHandler):
    server: _DocumentServer

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0]
        email = path.removeprefix(TOKEN_PATH_PREFIX).removesuffix(TOKEN_PATH_SUFFIX)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            audience = json.loads(body)["audience"]
        except (ValueError, KeyError, TypeError):
            audience = None
        if not (path.startswith(TOKEN_PATH_PREFIX) and path.endswith(TOKEN_PATH_SUFFIX)) or not isinstance(
            audience, str
        ):
            self._answer(
                400, {"error": 'POST /v1/projects/-/serviceAccounts/EMAIL:generateIdToken {"audience": ...}'}
            )
            return
        self._answer(200, {"token": self.server.mint(email, audience)})

    def do_GET(self) -> None:
        document = self.server.documents.get(self.path.split("?", 1)[0])
        self._answer(200 if document is not None else 404, document or {"error": "not found"})

    def _answer(self, status: int, document: Any) -> None:
        body = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        # Verifiers fetch certs on every token; per-request access lines would drown the emulator's output.
        pass
