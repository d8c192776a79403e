"""The `api` function: the operator dashboard under /ui/, the API's reference page at /v1/docs, and the
REST API's own Flask app for the rest.

The app is built on the first request, not at import. The same Request object is reused (not rebuilt
from the environ) so that a body the API streamed is not read a second time by functions-framework.
"""

from __future__ import annotations

import threading

from flask import Flask, Request, Response
from flask.ctx import RequestContext

from shared import dashboard
from shared.api import docs
from shared.api.app import create_api_app

_lock = threading.Lock()
_app: Flask | None = None


def _get_app() -> Flask:
    global _app
    if _app is None:
        with _lock:
            if _app is None:
                _app = create_api_app()
    return _app


def api(request: Request) -> Response:
    if dashboard.serves(request.path):
        return dashboard.handle(request)
    if docs.serves(request.path):
        return docs.handle(request)
    app = _get_app()
    with RequestContext(app, request.environ, request=request):
        return app.full_dispatch_request()
