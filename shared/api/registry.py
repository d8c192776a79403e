"""The route table: each `@route` registers a handler once, and both the dispatcher (`shared.api.app`)
and the OpenAPI document (`shared.api.openapi`) read it, so the two cannot drift apart.

A handler takes the request `Context`, its path parameters by name (typed by its annotations, which are
validated and documented), and `body=` / `query=` when the route declares those models. It returns its
response model, `(model, status)` when one route answers with two success codes, None for 204, or a
Response it built itself (a route declaring `raw_response`, e.g. a streamed CSV).
"""

from __future__ import annotations

import re
import typing
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from flask import Request
from pydantic import BaseModel, TypeAdapter

from shared.adapters.pubsub import Publisher
from shared.bootstrap import Runtime
from shared.clock import Clock
from shared.config import Settings
from shared.db.unit_of_work import UnitOfWork

PATH_PARAM = re.compile(r"\{(\w+)\}")
# Every route can fail these ways; 404 is added for routes with path parameters, 413 for those with a body.
COMMON_ERRORS = frozenset({400, 401, 500, 503})

Handler = Callable[..., Any]


@dataclass(frozen=True)
class Context:
    """What a handler gets besides its parameters: the request, and the process's runtime
    (shared.bootstrap) for its settings, clock, units of work and publisher."""

    runtime: Runtime
    request: Request

    @property
    def settings(self) -> Settings:
        return self.runtime.settings

    @property
    def clock(self) -> Clock:
        return self.runtime.clock

    @property
    def publisher(self) -> Publisher:
        return self.runtime.publisher

    def uow(self) -> UnitOfWork:
        return self.runtime.uow()


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    other_statuses: tuple[int, ...] = ()
    errors: frozenset[int] = COMMON_ERRORS
    # A body the route reads itself (the import stream): OpenAPI `content` by media type.
    raw_body: dict[str, Any] | None = None
    # A response the route builds itself (a streamed CSV): OpenAPI `content` by media type.
    raw_response: dict[str, Any] | None = None
    # The body may be left out (read as `{}`): every field of its model has a default.
    body_optional: bool = False
    path_params: dict[str, TypeAdapter[Any]] = field(default_factory=dict)
    # An alias: another path for a canonical route (the same handler, models, auth and answers),
    # documented as deprecated with the canonical route named in its description.
    alias_of: str | None = None

    @property
    def endpoint(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def operation_id(self) -> str:
        if self.alias_of is None:
            return self.handler.__name__
        return f"{self.handler.__name__}_via_{re.sub(r'[^A-Za-z0-9]+', '_', self.path).strip('_')}"


ROUTES: list[Route] = []


def alias(method: str, path: str, *, canonical: str) -> None:
    """Serve the route registered as `canonical` ("POST /v1/users/import") at `path` too. Its path
    parameters must carry the same names, so the one handler serves both."""
    target = next((entry for entry in ROUTES if entry.endpoint == canonical), None)
    if target is None:
        raise LookupError(f"alias {method} {path}: no route {canonical!r} is registered")
    if sorted(PATH_PARAM.findall(path)) != sorted(target.path_params) or method != target.method:
        raise ValueError(f"alias {method} {path} must have {canonical}'s method and path parameters")
    ROUTES.append(replace(target, path=path, alias_of=canonical))


def route(
    method: str,
    path: str,
    *,
    summary: str,
    tag: str,
    body: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    response: type[BaseModel] | None = None,
    status: int = 200,
    other_statuses: tuple[int, ...] = (),
    extra_errors: tuple[int, ...] = (),
    raw_body: dict[str, Any] | None = None,
    raw_response: dict[str, Any] | None = None,
    body_optional: bool = False,
) -> Callable[[Handler], Handler]:
    if body_optional and (body is None or any(f.is_required() for f in body.model_fields.values())):
        raise ValueError(f"{method} {path}: an optional body needs a model whose every field has a default")

    def register(handler: Handler) -> Handler:
        hints = typing.get_type_hints(handler, include_extras=True)
        names = PATH_PARAM.findall(path)
        takes_body = body is not None or raw_body is not None
        errors = set(COMMON_ERRORS) | ({404} if names else set()) | ({413} if takes_body else set())
        errors |= set(extra_errors)
        ROUTES.append(
            Route(
                method=method,
                path=path,
                handler=handler,
                summary=summary,
                tag=tag,
                body=body,
                query=query,
                response=response,
                status=status,
                other_statuses=other_statuses,
                errors=frozenset(errors),
                raw_body=raw_body,
                raw_response=raw_response,
                body_optional=body_optional,
                path_params={name: TypeAdapter(hints[name]) for name in names},
            )
        )
        return handler

    return register
