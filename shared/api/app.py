"""The Flask app behind the `api` function: routes from the registry, bearer auth in front of all of
them, and one place that turns every failure into the API's JSON error shape."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, request
from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from shared.api import routes
from shared.api.auth import is_authorized, unauthorized
from shared.api.errors import ApiError, BadRequest, domain_status, error_response, validation_details
from shared.api.registry import ROUTES, Context, Route
from shared.bootstrap import runtime
from shared.boundary import Refused, TooLarge, check_url, check_value, read_body
from shared.db.errors import is_transient
from shared.domain.errors import DomainError
from shared.log import set_trace

log = logging.getLogger(__name__)

# How long a client should wait before retrying after a transient database failure.
RETRY_AFTER_SECONDS = 2
# The largest JSON body any route needs is a segment definition, and 5000 values take ~100 KB.
JSON_BODY_MAX_BYTES = 1024 * 1024


def create_api_app() -> Flask:
    routes.register_all()
    app = Flask("event_stream_engine_api")
    for entry in ROUTES:
        app.add_url_rule(
            entry.path.replace("{", "<").replace("}", ">"),
            endpoint=entry.endpoint,
            view_func=_view(entry),
            methods=[entry.method],
            provide_automatic_options=False,
        )
    app.before_request(_authenticate)
    app.register_error_handler(Exception, _error)
    return app


def _authenticate() -> Response | None:
    settings = runtime().settings
    set_trace(request.headers.get("X-Cloud-Trace-Context"), settings.gcp_project)
    return None if is_authorized(request, settings) else unauthorized()


def _view(entry: Route) -> Any:
    def view(**raw_params: str) -> Response:
        check_url(request.environ.get("PATH_INFO", ""), request.query_string)
        context = Context(runtime=runtime(), request=request)
        kwargs: dict[str, Any] = {
            name: _validated(f"path.{name}", adapter.validate_python, raw_params[name])
            for name, adapter in entry.path_params.items()
        }
        if entry.query is not None:
            kwargs["query"] = _validated("query", entry.query.model_validate, request.args.to_dict())
        if entry.body is not None:
            body = read_body(request, JSON_BODY_MAX_BYTES)
            if entry.body_optional and not body.strip():
                body = b"{}"
            kwargs["body"] = _validated("body", entry.body.model_validate_json, body)
        return _reply(entry, entry.handler(context, **kwargs))

    return view


def _validated(location: str, parse: Callable[[Any], Any], raw: Any) -> Any:
    try:
        parsed = parse(raw)
    except ValidationError as exc:
        details = validation_details(exc, location)
        first = details["errors"][0]
        raise BadRequest("validation_error", f"{first['field']}: {first['message']}", **details) from None
    check_value(parsed.model_dump() if isinstance(parsed, BaseModel) else parsed, location)
    return parsed


def _reply(entry: Route, result: BaseModel | tuple[BaseModel, int] | Response | None) -> Response:
    if result is None:
        return Response(status=204)
    if isinstance(result, Response):
        return result
    model, status = result if isinstance(result, tuple) else (result, entry.status)
    return Response(model.model_dump_json(), status=status, mimetype="application/json")


def _error(exc: Exception) -> Response:
    if isinstance(exc, ApiError):
        return error_response(exc.status, exc.code, exc.message, exc.details)
    if isinstance(exc, Refused):
        # In the shape of the models' own validation errors, so a client reads both the same way.
        error = {"field": exc.field, "message": exc.reason, "type": exc.code}
        status = 413 if isinstance(exc, TooLarge) else 400
        return error_response(status, "validation_error", exc.message, {"errors": [error]})
    if isinstance(exc, DomainError):
        return error_response(domain_status(exc), exc.code, exc.message, exc.details)
    if isinstance(exc, HTTPException):
        return _http_error(exc)
    if isinstance(exc, PoolTimeout) or (isinstance(exc, DBAPIError) and is_transient(exc)):
        log.warning("transient database failure", exc_info=exc)
        response = error_response(503, "unavailable", "the database is briefly unavailable; retry shortly")
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
    log.error("unhandled error in %s %s", request.method, request.path, exc_info=exc)
    return error_response(500, "internal_error", "something went wrong on our side; it has been logged")


def _http_error(exc: HTTPException) -> Response:
    status = exc.code or 500
    if status == 404:
        return error_response(404, "not_found", f"no route {request.path}; see /v1/openapi.json")
    response = error_response(status, (exc.name or "error").lower().replace(" ", "_"), exc.description or "")
    if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
        response.headers["Allow"] = ", ".join(sorted(exc.valid_methods))
    return response
