"""API errors and their one JSON shape: `{"error": {"code", "message", "details"}}`.

Handlers raise these for what only HTTP can get wrong (a body's media type, a missing multipart part);
the services' refusals are `DomainError`s. `shared.api.app` turns both into a response, so no handler
builds an error body itself.
"""

from __future__ import annotations

from typing import Any, ClassVar

from flask import Response, json
from pydantic import ValidationError

from shared.domain.errors import Conflict, DomainError, NotFound


class ApiError(Exception):
    status: ClassVar[int] = 400

    def __init__(self, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details


class BadRequest(ApiError):
    status = 400


class UnsupportedMediaType(ApiError):
    status = 415


def domain_status(exc: DomainError) -> int:
    """The HTTP status of a refusal by the rules, for the API's JSON and the dashboard's pages alike: what
    it names is missing (404), the current state refuses it (409), or the request itself is wrong (400)."""
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, Conflict):
        return 409
    return 400


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
