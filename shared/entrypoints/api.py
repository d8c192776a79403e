"""PLACEHOLDER: replaced by the issue that builds these entry points. Answers 501 until then."""

from __future__ import annotations

from flask import Request, Response


def api(request: Request) -> Response:
    return Response("not implemented yet", status=501)
