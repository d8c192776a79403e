"""The OpenAPI document matches the routes the app serves, and the responses it documents are the ones
the routes give."""

from __future__ import annotations

from typing import Any

from flask import Flask

from shared.api.app import create_api_app
from shared.api.registry import ROUTES
from tests.functions.api_client import ApiClient, api

__all__ = ["api"]


def _served(app: Flask) -> set[tuple[str, str]]:
    served = set()
    for rule in app.url_map.iter_rules():
        path = rule.rule.replace("<", "{").replace(">", "}")
        served |= {(method, path) for method in rule.methods or () if method not in ("HEAD", "OPTIONS")}
    return served - {("GET", "/static/{path:filename}")}


def test_every_served_route_is_documented_and_every_documented_one_is_served(api: ApiClient) -> None:
    document = api.get("/v1/openapi.json").get_json()
    documented = {(method.upper(), path) for path, item in document["paths"].items() for method in item}

    assert documented == _served(create_api_app())
    assert len(documented) == len(ROUTES)


def test_document_is_openapi_3_1_with_bearer_security(api: ApiClient) -> None:
    document = api.get("/v1/openapi.json").get_json()

    assert document["openapi"] == "3.1.0"
    assert document["security"] == [{"bearer": []}]
    assert document["components"]["securitySchemes"]["bearer"] == {"type": "http", "scheme": "bearer"}


def test_every_reference_resolves(api: ApiClient) -> None:
    document = api.get("/v1/openapi.json").get_json()
    schemas = document["components"]["schemas"]

    def refs(node: Any) -> list[str]:
        if isinstance(node, dict):
            own = [node["$ref"]] if "$ref" in node else []
            return own + [ref for value in node.values() for ref in refs(value)]
        if isinstance(node, list):
            return [ref for value in node for ref in refs(value)]
        return []

    missing = {ref for ref in refs(document) if ref.rsplit("/", 1)[1] not in schemas}
    assert not missing


def test_every_operation_documents_auth_and_server_errors_and_path_routes_404(api: ApiClient) -> None:
    document = api.get("/v1/openapi.json").get_json()
    for path, item in document["paths"].items():
        for method, operation in item.items():
            codes = set(operation["responses"])
            assert {"400", "401", "500", "503"} <= codes, (method, path)
            assert ("404" in codes) == ("{" in path), (method, path)


def test_query_parameters_come_from_the_models(api: ApiClient) -> None:
    document = api.get("/v1/openapi.json").get_json()
    parameters = {p["name"]: p for p in document["paths"]["/v1/users"]["get"]["parameters"]}

    assert set(parameters) == {"limit", "cursor", "consent_state", "q"}
    assert parameters["limit"]["schema"]["maximum"] == 500
    assert "anyOf" not in parameters["q"]["schema"]  # a query string cannot carry null
