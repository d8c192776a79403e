"""API errors and their one JSON shape: `{"error": {"code", "message", "details"}}`.

Handlers and stores raise these (or a `DomainError`); `shared.api.app` turns each into a response, so no
handler builds an error body itself.
"""

from __future__ import annotations

from typing import Any, ClassVar

from flask import Response, json
from pydantic import ValidationError


class ApiError(Exception):
    status: ClassVar[int] = 400

    def __init__(self, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details


class BadRequest(ApiError):
    status = 400


class NotFound(ApiError):
    status = 404

    def __init__(self, resource: str, key: object) -> None:
        super().__init__("not_found", f"{resource} {key} does not exist", resource=resource, key=str(key))


class Conflict(ApiError):
    status = 409


class UnsupportedMediaType(ApiError):
    status = 415


def error_response(status: int, code: str, message: str, details: dict[str, Any] | None = None) -> Response:
    body = {"error": {"code": code, "message": message, "details": details or {}}}
    return Response(json.dumps(body), status=status, mimetype="application/json")


def validation_details(exc: ValidationError, location: str) -> dict[str, Any]:
    """Each failing field as `{"field": "body.attributes.age", "message": ..., "type": ...}`."""
    errors = []
    for error in exc.errors(include_url=False, include_context=False, include_input=False):
        path = ".".join(str(part) for part in (location, *error["loc"]))
        errors.append({"field": path, "message": error["msg"], "type": error["type"]})
    return {"errors": errors}
