"""GET /v1/docs: an interactive reference to this API, rendered in the browser from /v1/openapi.json by a
small script of our own (shared/api/docs_assets/): every operation with its parameters, body and
responses, the schemas, and a "try it" form per operation.

Served by the `api` function beside the API and the dashboard, without the bearer token: the page and its
assets hold nothing but the renderer. What it shows comes from /v1/openapi.json, which needs the token like
every /v1 route, so the page asks for the token, keeps it in the page's memory only, and sends it as
`Authorization: Bearer` on each request. Nothing comes from another origin, and a strict
Content-Security-Policy (no inline script or style) says so to the browser.
"""

from __future__ import annotations

from pathlib import Path

from flask import Request, Response

PAGE = "/v1/docs"
ASSETS = PAGE + "/assets/"
_HERE = Path(__file__).parent / "docs_assets"
# Each file the page uses, and its media type; nothing else is served.
_FILES = {
    "docs.js": "text/javascript; charset=utf-8",
    "docs.css": "text/css; charset=utf-8",
    # Named by the page, so the browser does not ask the API for /favicon.ico (a 404 in its console).
    "favicon.svg": "image/svg+xml",
}
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
    "form-action 'none'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)


def serves(path: str) -> bool:
    return path == PAGE or path.startswith(PAGE + "/")


def handle(request: Request) -> Response:
    if request.method not in ("GET", "HEAD"):
        response = _answer(405, "text/plain; charset=utf-8", b"the reference is read with GET\n")
        response.headers["Allow"] = "GET, HEAD"
        return response
    if request.path == PAGE:
        return _answer(200, "text/html; charset=utf-8", (_HERE / "index.html").read_bytes())
    name = request.path.removeprefix(ASSETS) if request.path.startswith(ASSETS) else None
    if name in _FILES:
        response = _answer(200, _FILES[name], (_HERE / name).read_bytes())
        response.headers["Cache-Control"] = "no-cache"
        return response
    return _answer(404, "text/plain; charset=utf-8", b"no such page; the reference is at /v1/docs\n")


def _answer(status: int, mimetype: str, body: bytes) -> Response:
    response = Response(body, status=status, content_type=mimetype)
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers.setdefault("Cache-Control", "no-store")
    return response
