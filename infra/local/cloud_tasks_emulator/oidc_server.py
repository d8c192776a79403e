"""Serves the emulator's OpenID discovery document, JWKS and PEM certificates over plain HTTP."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from infra.local.cloud_tasks_emulator.oidc_tokens import OidcIssuer

DISCOVERY_PATH = "/.well-known/openid-configuration"
JWKS_PATH = "/jwks"
CERTS_PATH = "/certs"


class OidcServer:
    def __init__(self, host: str, port: int) -> None:
        self._httpd = _DocumentServer((host, port), _Handler)
        self.base_url = f"http://{host}:{self._httpd.server_port}"
        self.issuer = OidcIssuer(self.base_url)
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


class _Handler(BaseHTTPRequestHandler):
    server: _DocumentServer

    def do_GET(self) -> None:
        document = self.server.documents.get(self.path.split("?", 1)[0])
        body = json.dumps(document if document is not None else {"error": "not found"}).encode()
        self.send_response(200 if document is not None else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        # Verifiers fetch certs on every token; per-request access lines would drown the emulator's output.
        pass
