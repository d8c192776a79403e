"""Hostile input at every dashboard form and page: each field gets values an attacker would send, and each
must be answered 4xx naming the field, with nothing written; after every one, the same process (one
pooled connection) must still read each user back as itself."""

from __future__ import annotations

import base64
import io
import json
import re
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from sqlalchemy import Engine, text
from werkzeug.test import TestResponse

from shared.config import Settings
from tests.functions.api_client import ApiClient
from tests.functions.apps import function_client
from tests.functions.dashboard_client import DashboardClient
from tests.functions.hostile import DEEP, PHONE_A, RAW_TEXT, answers_normally, hostile_settings, path_info

__all__ = ["hostile_settings"]

_DEFINITION = json.dumps({"operator": "AND", "conditions": []})
# Each form as a browser sends it (the page it is on, its fields with valid values).
_FORMS: dict[str, tuple[str, dict[str, str]]] = {
    "/ui/signin": ("/ui/signin", {"token": "x" * 40, "next": "/ui/"}),
    "/ui/templates": (
        "/ui/templates",
        {"name": "t", "content": "Hi", "content_sid": "", "content_variables": ""},
    ),
    "/ui/templates/variables": ("/ui/templates", {"content": "Hi {name}"}),
    "/ui/segments": ("/ui/segments", {"name": "s", "definition": _DEFINITION}),
    "/ui/segments/preview": ("/ui/segments", {"definition": _DEFINITION, "topic": ""}),
    f"/ui/users/{PHONE_A}/consent": (f"/ui/users/{PHONE_A}", {"consent_state": "OPT_IN", "reason": "asked"}),
    "/ui/campaigns/new": (
        "/ui/campaigns/new",
        {
            "name": "c",
            "template_id": "1",
            "segment_id": "1",
            "rate_limit_per_second": "80",
            "timezone": "UTC",
        },
    ),
}
# Typed into a JSON field: each is refused under that field, by the same rule as the API's bodies.
_JSON_VALUES = {
    "nested 100,000 deep": DEEP,
    "lone surrogate escape": '{"a": "\\ud800"}',
    "NUL escape": '{"a": "\\u0000"}',
    "beyond 1.8e308": '{"a": 1' + "0" * 400 + "}",
    "5000-digit number": '{"a": ' + "9" * 5000 + "}",
    "NaN": '{"a": NaN}',
}
_JSON_FIELDS = [
    ("/ui/templates", "content_variables"),
    ("/ui/segments", "definition"),
    ("/ui/segments/preview", "definition"),
]


@pytest.fixture
def api(hostile_settings: Settings) -> ApiClient:
    return ApiClient(function_client("api"))


@pytest.fixture
def browser(api: ApiClient) -> Iterator[DashboardClient]:
    client = DashboardClient(function_client("api"))
    assert client.sign_in().status_code == 302
    yield client


def _post_raw(
    browser: DashboardClient, path: str, fields: dict[str, str], raw: dict[str, str]
) -> TestResponse:
    """The form urlencoded by hand, with `raw` values put in as they are (percent-escapes included)."""
    form_page, _ = _FORMS[path]
    pairs = {**fields, "csrf_token": browser.csrf_from(form_page)}
    body = "&".join(
        f"{name}={raw[name] if name in raw else quote(value, safe='')}" for name, value in pairs.items()
    )
    return browser.post(path, data=body, content_type="application/x-www-form-urlencoded")


def _names(response: TestResponse, field: str) -> bool:
    """The page or the answer puts the problem under `field`: its error slot, or a message naming it (or a
    part of it, such as definition.conditions[0])."""
    page = response.get_data(as_text=True)
    return (
        f'id="{field}-error"' in page or re.search(rf'(^|[>\s"]){re.escape(field)}[.\[:]', page) is not None
    )


def _counts(engine: Engine) -> tuple[int, ...]:
    with engine.connect() as conn:
        return tuple(
            conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
            for table in ("templates", "segments", "campaigns", "audit_events")
        )


@pytest.mark.parametrize("path", list(_FORMS))
def test_every_form_field_refuses_bytes_the_database_cannot_hold_naming_the_field(
    api: ApiClient, browser: DashboardClient, engine: Engine, path: str
) -> None:
    before = _counts(engine)
    _, fields = _FORMS[path]
    for field in fields:
        for kind, raw in RAW_TEXT.items():
            response = _post_raw(browser, path, fields, {field: raw})
            assert response.status_code == 400, f"{field} {kind}: {response.status_code}"
            assert _names(response, field), f"{field} {kind}: {response.get_data(as_text=True)[:500]}"
            answers_normally(api, f"{path} {field} {kind}")
    assert _counts(engine) == before


@pytest.mark.parametrize(
    ("path", "field"), _JSON_FIELDS, ids=[f"{path} {field}" for path, field in _JSON_FIELDS]
)
def test_a_json_field_refuses_what_its_api_body_would_naming_the_field(
    api: ApiClient, browser: DashboardClient, engine: Engine, path: str, field: str
) -> None:
    before = _counts(engine)
    _, fields = _FORMS[path]
    for kind, value in _JSON_VALUES.items():
        response = _post_raw(browser, path, fields, {field: quote(value, safe="")})
        assert response.status_code == 400, f"{kind}: {response.status_code}"
        assert _names(response, field), f"{kind}: {response.get_data(as_text=True)[:500]}"
        answers_normally(api, f"{path} {field} {kind}")
    assert _counts(engine) == before


def test_a_segment_name_with_nul_is_refused_and_not_saved(browser: DashboardClient, engine: Engine) -> None:
    # From the issue: this was a 500.
    response = _post_raw(browser, "/ui/segments", _FORMS["/ui/segments"][1], {"name": "a%00b"})
    assert response.status_code == 400
    assert "name: contains a NUL character" in response.get_data(as_text=True)
    assert _counts(engine)[1] == 0


def test_a_form_over_its_cap_is_a_413(browser: DashboardClient, api: ApiClient) -> None:
    fields = {**_FORMS["/ui/templates"][1], "content": "x" * (1024 * 1024)}
    response = _post_raw(browser, "/ui/templates", fields, {})
    assert response.status_code == 413
    answers_normally(api, "a form over its cap")


_SURROGATE, _NUL = "\ud800", "\x00"


def _cursor(key: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")


_ADDRESSES = [
    *(f"/ui/users?q={raw}" for raw in RAW_TEXT.values()),
    *(f"/ui/campaigns?status={raw}" for raw in RAW_TEXT.values()),
    "/ui/users?cursor=" + _cursor([_SURROGATE]),
    "/ui/users?cursor=" + _cursor([_NUL]),
    "/ui/templates?cursor=" + _cursor([10**30]),
    "/ui/segments?cursor=" + _cursor([[[]]]),
    "/ui/campaigns?cursor=" + _cursor(["x"]),
    "/ui/campaigns/1?cursor=" + _cursor([_SURROGATE]),
    "/ui/users/not-a-phone",
    "/ui/users/%2B1415%00",
    "/ui/users/%ED%A0%80",
    "/ui/campaigns/1/%00",
    "/ui/campaigns/" + "9" * 5000,
    "/ui/messages/" + "9" * 30,
    "/ui/templates?edit=" + "9" * 30,
]


def test_a_hostile_address_is_a_4xx_page_and_the_next_request_is_served(
    api: ApiClient, browser: DashboardClient
) -> None:
    for path in _ADDRESSES:
        response = browser.get(path, environ_overrides={"PATH_INFO": path_info(path)})
        assert 400 <= response.status_code < 500, f"{path}: {response.status_code}"
        answers_normally(api, path)


def test_an_upload_without_a_declared_length_is_refused(browser: DashboardClient) -> None:
    csrf = browser.csrf_from("/ui/users/import")
    boundary = "b0undary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n{csrf}\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="u.csv"\r\n'
        f"Content-Type: text/csv\r\n\r\nphone\n+14155550300\n\r\n--{boundary}--\r\n"
    ).encode()
    response = browser.raw.post(
        "/ui/users/import",
        base_url=browser.base_url,
        input_stream=io.BytesIO(body),
        content_type=f"multipart/form-data; boundary={boundary}",
        headers={"Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert response.status_code == 400
    assert "body: an upload must state its length" in response.get_data(as_text=True)


def test_a_nul_in_the_query_of_any_page_is_refused_naming_it(browser: DashboardClient) -> None:
    response = browser.get("/ui/monitoring?x=%00")
    assert response.status_code == 400
    assert "query.x: contains a NUL character" in response.get_data(as_text=True)
    assert re.search(r"<h1>400</h1>", response.get_data(as_text=True))
