"""The `api` function as operators reach it: functions-framework's app for functions/main.py, on this
test's migrated PostgreSQL database, with the bearer token the `settings` fixture configures."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from shared.config import Settings
from tests.conftest import API_TOKEN
from tests.functions.apps import function_client

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


class ApiClient:
    """A test client that sends the bearer token unless told otherwise."""

    def __init__(self, client: FlaskClient) -> None:
        self.raw = client

    def request(self, method: str, path: str, **kwargs: Any) -> TestResponse:
        headers = {**AUTH, **kwargs.pop("headers", {})}
        return self.raw.open(path, method=method, headers=headers, **kwargs)

    def get(self, path: str, **kwargs: Any) -> TestResponse:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> TestResponse:
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> TestResponse:
        return self.request("PUT", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> TestResponse:
        return self.request("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> TestResponse:
        return self.request("DELETE", path, **kwargs)


@pytest.fixture
def api(settings: Settings) -> Iterator[ApiClient]:
    yield ApiClient(function_client("api"))


def error_of(response: TestResponse) -> dict[str, Any]:
    body = response.get_json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    return dict(body["error"])
