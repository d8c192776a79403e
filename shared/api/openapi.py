"""The OpenAPI 3.1 document, generated from the route registry and the pydantic models: the same table
the dispatcher serves, so every documented operation exists and every served one is documented."""

from __future__ import annotations

from collections.abc import Iterable
from http import HTTPStatus
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from shared.api.models import ErrorResponse
from shared.api.registry import Route

REF_TEMPLATE = "#/components/schemas/{model}"


def openapi_document(routes: Iterable[Route]) -> dict[str, Any]:
    routes = list(routes)
    refs, components = _schemas(routes)
    paths: dict[str, dict[str, Any]] = {}
    for entry in routes:
        paths.setdefault(entry.path, {})[entry.method.lower()] = _operation(entry, refs, components)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Event Stream Engine operator API",
            "version": "1.0.0",
            "description": "WhatsApp campaigns: users, imports, templates, segments, campaigns, reports.",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }


def _schemas(routes: list[Route]) -> tuple[dict[tuple[type[Any], str], Any], dict[str, Any]]:
    wanted: list[tuple[type[BaseModel], JsonSchemaMode]] = [(ErrorResponse, "serialization")]
    for entry in routes:
        wanted += [(m, "validation") for m in (entry.body, entry.query) if m is not None]
        if entry.response is not None:
            wanted.append((entry.response, "serialization"))
    refs, top = models_json_schema(list(dict.fromkeys(wanted)), ref_template=REF_TEMPLATE)
    return {key: value for key, value in refs.items()}, dict(top.get("$defs", {}))


def _component(ref: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    return dict(components[ref["$ref"].rsplit("/", 1)[1]])


def _operation(
    entry: Route, refs: dict[tuple[type[Any], str], Any], components: dict[str, Any]
) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": entry.operation_id,
        "summary": entry.summary,
        "tags": [entry.tag],
        "parameters": [
            {
                "name": name,
                "in": "path",
                "required": True,
                "schema": adapter.json_schema(ref_template=REF_TEMPLATE),
            }
            for name, adapter in entry.path_params.items()
        ],
        "responses": _responses(entry, refs),
    }
    if entry.alias_of is not None:
        operation["deprecated"] = True
        operation["description"] = (
            f"Deprecated alias of `{entry.alias_of}`, kept so the replaced system's documented routes "
            "keep working: the same authentication, validation and responses. Use the canonical route."
        )
    if entry.query is not None:
        operation["parameters"] += _query_parameters(
            _component(refs[(entry.query, "validation")], components)
        )
    if entry.body is not None:
        schema = refs[(entry.body, "validation")]
        operation["requestBody"] = {
            "required": not entry.body_optional,
            "content": {"application/json": {"schema": schema}},
        }
    elif entry.raw_body is not None:
        operation["requestBody"] = {"required": True, "content": entry.raw_body}
    return operation


def _query_parameters(schema: dict[str, Any]) -> list[dict[str, Any]]:
    required = set(schema.get("required", ()))
    parameters = []
    for name, prop in schema.get("properties", {}).items():
        prop = _without_null(prop)
        parameter = {"name": name, "in": "query", "required": name in required, "schema": prop}
        if "description" in prop:
            parameter["description"] = prop["description"]
        parameters.append(parameter)
    return parameters


def _without_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A query string cannot carry null: an optional parameter is simply left out."""
    branches = [branch for branch in schema.get("anyOf", []) if branch != {"type": "null"}]
    if len(branches) != 1:
        return schema
    rest = {
        key: value
        for key, value in schema.items()
        if key != "anyOf" and not (key == "default" and value is None)
    }
    return {**rest, **branches[0]}


def _responses(entry: Route, refs: dict[tuple[type[Any], str], Any]) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for status in (entry.status, *entry.other_statuses):
        response: dict[str, Any] = {"description": HTTPStatus(status).phrase}
        if entry.response is not None and status != 204:
            response["content"] = {"application/json": {"schema": refs[(entry.response, "serialization")]}}
        elif entry.raw_response is not None and status != 204:
            response["content"] = entry.raw_response
        responses[str(status)] = response
    error_schema = {"application/json": {"schema": refs[(ErrorResponse, "serialization")]}}
    for status in sorted(entry.errors):
        responses[str(status)] = {"description": HTTPStatus(status).phrase, "content": error_schema}
    return responses
