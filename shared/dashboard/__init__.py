"""The operator dashboard, served by the `api` function under /ui/: server-rendered pages (Jinja2, inline
SVG charts) with a little plain JavaScript, every asset shipped in the bundle (no CDN, so it works offline
and behind IAP). Its views call the same services and queries as the REST API.

The `api` entry point hands it every request whose path `serves` claims:

    if dashboard.serves(request.path):
        return dashboard.handle(request)
"""

from __future__ import annotations

import threading
import time

from flask import Flask, Request, Response
from flask.ctx import RequestContext

PREFIX = "/ui"

_lock = threading.Lock()
_app: Flask | None = None


def serves(path: str) -> bool:
    return path == PREFIX or path.startswith(PREFIX + "/")


def get_app() -> Flask:
    """Built on the first dashboard request, never at import (cold starts of the API stay lean)."""
    global _app
    if _app is None:
        with _lock:
            if _app is None:
                from shared.dashboard.app import create_dashboard_app

                _app = create_dashboard_app()
    return _app


def handle(request: Request) -> Response:
    """Dispatch functions-framework's request (reused, so an upload is not read twice) to the dashboard.

    The response says how long the dashboard spent on it (`Server-Timing: app;dur=<ms>`, a standard header
    browsers' developer tools show): `make bench` reads the server time of each page from it, apart from
    the network and the client."""
    started = time.perf_counter()
    app = get_app()
    with RequestContext(app, request.environ, request=request):
        response = app.full_dispatch_request()
    response.headers["Server-Timing"] = f"app;dur={1000 * (time.perf_counter() - started):.1f}"
    return response
