"""JSON in and out of the emulator's endpoints."""

from __future__ import annotations

import json
from typing import Any

from werkzeug.wrappers import Request, Response


def json_response(data: Any, status: int = 200) -> Response:
    return Response(json.dumps(data), status=status, mimetype="application/json")


def json_object(request: Request) -> dict[str, Any]:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object body")
    return data
