"""A stand-in for Google's front end: what happens to every request between a caller and a deployed
function (Cloud Run / Cloud Functions gen2), done locally, between every caller and every function.

    with FrontEnd(routes, LocalCa(tls_dir), certs_url) as front_end:
        front_end.url("send_message")       # https://127.0.0.1:PORT, the service's "public URL"

What Google documents, and the choices made where it is silent:

- TLS ends at the front end (https://cloud.google.com/run/docs/triggering/https-request: every service is
  served over HTTPS). Each function gets a listener of its own, as each deployed service has a host of its
  own (`https://SERVICE-PROJECT_NUMBER.REGION.run.app`). The function behind it sees plain HTTP, the
  original Host, X-Forwarded-For (the caller's value first, then the caller's address),
  X-Forwarded-Proto: https, Forwarded, X-Cloud-Trace-Context and traceparent ("The standard W3C trace
  context propagation header traceparent is automatically populated for Cloud Run requests",
  https://cloud.google.com/run/docs/trace). The certificate comes from the local CA (local_ca.py).
- Ingress (https://cloud.google.com/run/docs/securing/ingress): `internal` admits Cloud Scheduler, Cloud
  Tasks, Pub/Sub, Eventarc and Workflows of the same project "if they're using the default run.app URL",
  and VPC traffic; everything else gets 404 ("The request doesn't reach the container, leading to a 404
  error", troubleshooting). Here the Google-side emulators (the Cloud Tasks emulator, which also carries
  the local scheduler's ticks, and the Pub/Sub push relay) present the local CA's internal client
  certificate: a property of the connection, like the network path, not a header a caller could forge.
- IAM before the container (iam.py): 401/403 with Google's HTML page (pages.py); an accepted ID token is
  forwarded with its signature replaced by SIGNATURE_REMOVED_BY_GOOGLE.
- Limits (https://cloud.google.com/run/quotas): "Maximum HTTP/1 request size: 32 MiB per request": 413;
  the function's timeout (terraform's var.functions): 504 ("HTTP 504 The request has been terminated
  because it has reached the maximum request timeout").

The per-function facts (ingress, invokers, timeout) come from infra/terraform's own files (table.py), so
the local stack cannot admit a caller production would refuse, or the reverse.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType

from infra.local.front_end.iam import TokenVerifier
from infra.local.front_end.proxy import Listener, Route
from infra.local.local_ca import LocalCa

__all__ = ["FrontEnd", "Route"]


class FrontEnd:
    def __init__(self, routes: Sequence[Route], ca: LocalCa, certs_url: str, host: str = "127.0.0.1") -> None:
        context = ca.server_context()
        verifier = TokenVerifier(certs_url)
        self._listeners = {route.name: Listener(route, context, verifier, host) for route in routes}
        self._host = host

    def start(self) -> FrontEnd:
        for listener in self._listeners.values():
            listener.start()
        return self

    def stop(self) -> None:
        for listener in self._listeners.values():
            listener.stop()

    def __enter__(self) -> FrontEnd:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def port(self, name: str) -> int:
        return self._listeners[name].port

    def url(self, name: str) -> str:
        return f"https://{self._host}:{self.port(name)}"
