"""Hostile input at every route of the `api` function: each path parameter, query parameter and body gets
values an attacker would send, and each must be answered 4xx naming the field; after every one, the same
process (one pooled connection) must still read each user back as itself."""

from __future__ import annotations

import base64
import io
import json
import re
from typing import Any

import pytest
from sqlalchemy import Engine, text

from shared.api import routes
from shared.api.registry import ROUTES, Route
from shared.config import Settings
from shared.db import pagination
from shared.db.pagination import encode_cursor
from shared.services import import_upload
from tests.functions.api_client import AUTH, ApiClient
from tests.functions.apps import function_client
from tests.functions.hostile import (
    DEEP,
    PHONE_A,
    PHONE_B,
    RAW_TEXT,
    answers_normally,
    api_field,
    hostile_settings,
    path_info,
)

__all__ = ["hostile_settings"]

routes.register_all()
# Values that are valid where a hostile one is not being tried.
_VALID_PATH = {"phone": PHONE_A, "topic": "news"}
# Everywhere: raw bytes each door must refuse; in a text parameter, more than it holds; in a number one, more
# than its column holds.
_TEXT_VALUES = {**RAW_TEXT, "overlong": "x" * 5000}
_NUMBER_VALUES = {**RAW_TEXT, "overlong": "9" * 5000, "beyond BIGINT": str(10**30), "negative": "-1"}
# Bodies no route can take, whatever its model: each must be refused naming the body or a field of it.
_BODIES: dict[str, bytes] = {
    "nested 100,000 deep": DEEP.encode(),
    "lone surrogate escape": b'{"name": "\\ud800"}',
    "not UTF-8": b'{"name": "\xff\xfe"}',
    "5000-digit number": b'{"name": ' + b"9" * 5000 + b"}",
    "NaN": b'{"name": NaN}',
    "array, not object": b"[]",
    "string, not object": b'"text"',
    "over 1 MiB": b'{"name": "' + b"x" * (1024 * 1024 + 1) + b'"}',
    "not JSON": b"{name: 1",
}
_ROUTES = sorted(ROUTES, key=lambda route: route.endpoint)


@pytest.fixture
def api(hostile_settings: Settings) -> ApiClient:
    return ApiClient(function_client("api"))


def _path(route: Route, **values: str) -> str:
    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        return values.get(name, _VALID_PATH.get(name, "1"))

    return re.sub(r"\{(\w+)\}", fill, route.path)


def _values(schema: dict[str, Any]) -> dict[str, str]:
    kinds = {branch.get("type") for branch in schema.get("anyOf", [schema])}
    return _NUMBER_VALUES if "integer" in kinds else _TEXT_VALUES


def _hostile_requests(route: Route) -> list[tuple[str, dict[str, Any]]]:
    requests: list[tuple[str, dict[str, Any]]] = []
    for name, adapter in route.path_params.items():
        for kind, value in _values(adapter.json_schema()).items():
            path = _path(route, **{name: value})
            overrides = {"PATH_INFO": path_info(path)}
            requests.append((f"path {name} {kind}", {"path": path, "environ_overrides": overrides}))
    fields = route.query.model_json_schema()["properties"] if route.query is not None else {}
    for name, schema in fields.items():
        for kind, value in _values(schema).items():
            requests.append((f"query {name} {kind}", {"path": f"{_path(route)}?{name}={value}"}))
    # A parameter no route reads is ignored, unless its text breaks the boundary rule.
    for kind, value in RAW_TEXT.items():
        requests.append((f"query unknown {kind}", {"path": f"{_path(route)}?unknown={value}"}))
    # The import's body is a file, whose own table is below.
    if route.body is not None:
        for kind, body in _BODIES.items():
            headers = {"Content-Type": "application/json"}
            requests.append((f"body {kind}", {"path": _path(route), "data": body, "headers": headers}))
    return requests


@pytest.mark.parametrize("route", _ROUTES, ids=[route.endpoint for route in _ROUTES])
def test_every_hostile_value_at_this_route_is_a_4xx_naming_the_field_and_the_next_request_is_served(
    api: ApiClient, route: Route
) -> None:
    cases = _hostile_requests(route)
    if not cases:
        pytest.skip("takes no input")
    for case, request in cases:
        response = api.request(route.method, request.pop("path"), **request)
        assert 400 <= response.status_code < 500, (
            f"{case}: {response.status_code} {response.get_data()[:300]!r}"
        )
        assert api_field(response.get_json()), case
        answers_normally(api, case)


# Values that pass the models' own types and reach the boundary rule or a domain rule, with the field
# each must be refused under.
_NESTED_150 = "[" * 150 + "]" * 150


_PAST_THE_TYPES: list[tuple[str, str, Any, str]] = [
    ("POST", "/v1/users", {"phone": PHONE_A, "attributes": {"a": "x\u0000y"}}, "body.attributes.a"),
    ("POST", "/v1/users", {"phone": PHONE_A, "attributes": {"a\u0000": 1}}, "body.attributes.a\x00"),
    (
        "POST",
        "/v1/users",
        f'{{"phone": "{PHONE_A}", "attributes": {{"a": 1{"0" * 400}}}}}',
        "body.attributes.a",
    ),
    (
        "POST",
        "/v1/users",
        f'{{"phone": "{PHONE_A}", "attributes": {{"a": {_NESTED_150}}}}}',
        "body.attributes.a" + "[0]" * 62,
    ),
    ("POST", "/v1/users", {"phone": "+1415\u0000", "attributes": {}}, "body.phone"),
    ("PATCH", f"/v1/users/{PHONE_A}", {"attributes": {"b": "\u0000"}}, "body.attributes.b"),
    (
        "PUT",
        f"/v1/users/{PHONE_A}/consent",
        {"consent_state": "OPT_IN", "reason": "\u0000"},
        "body.reason",
    ),
    ("POST", "/v1/templates", {"name": "t\u0000", "content": "Hi"}, "body.name"),
    ("POST", "/v1/templates", {"name": "t", "content": "Hi \u0000"}, "body.content"),
    (
        "POST",
        "/v1/templates",
        {"name": "t", "content": "Hi", "content_variables": {"1": "\u0000"}},
        "body.content_variables.1",
    ),
    (
        "POST",
        "/v1/segments",
        {"name": "s\u0000", "definition": {"operator": "AND", "conditions": []}},
        "body.name",
    ),
    (
        "POST",
        "/v1/segments/preview",
        '{"definition": {"attribute": "n", "operator": "gt", "value": 1' + "0" * 400 + "}}",
        "body.definition.value",
    ),
    (
        "POST",
        "/v1/segments/preview",
        {"definition": {"attribute": "n", "operator": "equals", "value": "\u0000"}},
        "body.definition.value",
    ),
    (
        "POST",
        "/v1/segments/preview",
        {"definition": {"attribute": "n", "operator": "exists"}, "topic": "\u0000"},
        "body.topic",
    ),
    (
        "POST",
        "/v1/campaigns",
        {"name": "c", "template_id": 10**30, "segment_id": 1},
        "body.template_id",
    ),
    (
        "POST",
        "/v1/campaigns",
        {"name": "c", "template_id": 1, "segment_id": 1, "timezone": "UTC\u0000"},
        "body.timezone",
    ),
]


def test_values_past_the_models_types_are_refused_under_their_field(api: ApiClient) -> None:
    for method, path, body, field in _PAST_THE_TYPES:
        data = body if isinstance(body, str) else json.dumps(body)
        response = api.request(method, path, data=data, headers={"Content-Type": "application/json"})
        assert response.status_code == 400, f"{field}: {response.get_data(as_text=True)}"
        assert api_field(response.get_json()) == field
        answers_normally(api, field)


_FORGED_KEYS = [["\ud800"], ["\x00"], ["+14155550202\x00"], [10**30], [[[[]]]], [1, "a"], []]
_PAGED = [
    "/v1/users",
    "/v1/templates",
    "/v1/segments",
    "/v1/campaigns",
    "/v1/messages",
    "/v1/monitoring/inbound",
]


def test_a_forged_cursor_is_a_400_naming_the_cursor(api: ApiClient) -> None:
    # The first case: a lone surrogate in a cursor reached pg8000 and poisoned the connection.
    for path in _PAGED:
        for key in _FORGED_KEYS:
            forged = base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")
            response = api.get(f"{path}?cursor={forged}")
            assert response.status_code == 400, f"{path} {key!r}: {response.get_data(as_text=True)}"
            assert api_field(response.get_json()) == "cursor"
            answers_normally(api, f"{path} cursor {key!r}")


def test_a_cursor_this_api_issued_still_pages(api: ApiClient) -> None:
    page = api.get(f"/v1/users?limit=1&cursor={encode_cursor([PHONE_A])}").get_json()
    assert [item["phone"] for item in page["items"]] == [PHONE_B]


# --- import: a bad file is refused naming where; a bad row is rejected naming it, the rest imported ---


def _import(api: ApiClient, body: bytes, media_type: str) -> Any:
    return api.post("/v1/users/import", data=body, headers={"Content-Type": media_type})


_UNREADABLE: dict[str, tuple[bytes, str, str]] = {
    "5000-digit number": (
        b'[{"phone": "+14155550300", "a": ' + b"9" * 5000 + b"}]",
        "application/json",
        "element 1",
    ),
    "nested 100,000 deep": (
        b'[{"phone": "+14155550300", "a": ' + DEEP.encode() + b"}]",
        "application/json",
        "element 1",
    ),
    "Latin-1, not UTF-8": (b"phone,name\n+14155550300,Jos\xe9\n", "text/csv", "byte 27"),
    "JSON, not UTF-8": (b'[{"phone": "+14155550300"}, {"phone": "\xff"}]', "application/json", "byte 39"),
}


def test_an_import_the_parser_cannot_read_is_a_400_naming_where_and_imports_nothing(
    api: ApiClient, engine: Engine
) -> None:
    for case, (body, media_type, field) in _UNREADABLE.items():
        response = _import(api, body, media_type)
        assert response.status_code == 400, f"{case}: {response.get_data(as_text=True)}"
        assert api_field(response.get_json()) == field, case
        assert _phones(engine) == [PHONE_A, PHONE_B], case
        answers_normally(api, case)


# A row of each kind the database cannot hold: (file text, its type, the value the report shows, why).
_UNSTORABLE_ROWS: dict[str, tuple[str, str, str | None, str]] = {
    "NDJSON 5000 digits": (
        '{"phone": "+14155550300", "a": ' + "9" * 5000 + "}",
        "application/x-ndjson",
        None,
        "more than 4300 digits",
    ),
    "NDJSON deep": (
        '{"phone": "+14155550300", "a": ' + DEEP + "}",
        "application/x-ndjson",
        None,
        "nested more than 64",
    ),
    "surrogate key": (
        '[{"phone": "+14155550300", "\\ud800": 1}]',
        "application/json",
        "\\ud800",
        "is not UTF-8 text",
    ),
    "surrogate phone": ('[{"phone": "+1415555\\ud800"}]', "application/json", "phone", "is not UTF-8 text"),
    "NUL": (
        '[{"phone": "+14155550300", "a": "\\u0000"}]',
        "application/json",
        "a",
        "contains a NUL character",
    ),
    "infinite": ('[{"phone": "+14155550300", "a": 1e999}]', "application/json", "a", "not finite"),
    "150 deep": (
        '[{"phone": "+14155550300", "a": ' + _NESTED_150 + "}]",
        "application/json",
        "a" + "[0]" * 63,
        "nested more than 64",
    ),
    "CSV NUL": ("phone,a\n+14155550300,\x00\n", "text/csv", "a", "contains a NUL character"),
}


def test_a_row_the_database_cannot_hold_is_rejected_naming_it_and_the_good_row_is_imported(
    api: ApiClient, engine: Engine
) -> None:
    imported = [PHONE_A, PHONE_B]
    for number, (case, (body, media_type, value, reason)) in enumerate(_UNSTORABLE_ROWS.items()):
        good = f"+1415555{310 + number:04d}"
        if media_type == "application/json":
            body = body[:-1] + ', {"phone": "' + good + '"}]'
        elif media_type == "text/csv":
            body += good + ",ok\n"
        else:
            body = '{"phone": "' + good + '"}\n' + body
        response = _import(api, body.encode(), media_type)
        assert response.status_code == 200, f"{case}: {response.get_data(as_text=True)}"
        report = response.get_json()
        assert (report["inserted"], report["rejected"]) == (1, 1), case
        (rejected,) = report["rejected_rows"]
        assert reason in rejected["reason"], case
        if value is not None:
            assert rejected["value"] == value, case
        imported.append(good)
        assert _phones(engine) == imported, case
        answers_normally(api, case)


def test_an_import_over_its_cap_is_a_413_before_anything_is_imported(
    api: ApiClient, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(import_upload, "IMPORT_MAX_BYTES", 64)
    body = b"phone\n" + b"".join(f"+1415555{n:04d}\n".encode() for n in range(300, 320))
    declared = _import(api, body, "text/csv")
    # Without a Content-Length (chunked), as a server that frames the body itself passes it on.
    streamed = api.raw.post(
        "/v1/users/import",
        input_stream=io.BytesIO(body),
        headers={**AUTH, "Content-Type": "text/csv", "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )
    for response in (declared, streamed):
        assert response.status_code == 413, response.get_data(as_text=True)
        assert api_field(response.get_json()) == "body"
    assert _phones(engine) == [PHONE_A, PHONE_B]
    answers_normally(api, "an import over its cap")


def _phones(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(text("SELECT phone_e164 FROM users ORDER BY 1")).scalars())


def test_with_the_boundary_rule_switched_off_a_lone_surrogate_fails_only_its_own_request(
    api: ApiClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The engine's rule alone, as the issue first saw it: pg8000 fails to encode the cursor's text after
    # part of the statement went out. That request fails; its connection is discarded, not pooled again.
    monkeypatch.setattr(pagination, "parse_json", lambda raw, field: json.loads(raw))
    forged = base64.urlsafe_b64encode(json.dumps(["\ud800"]).encode()).decode().rstrip("=")
    assert api.get(f"/v1/users?cursor={forged}").status_code == 500
    answers_normally(api, "a lone surrogate that reached the driver")
    assert api.get(f"/v1/users?cursor={encode_cursor([PHONE_A])}").get_json()["items"][0]["phone"] == PHONE_B
