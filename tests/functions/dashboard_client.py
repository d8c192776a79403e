"""The dashboard as a browser reaches it: through the `api` function (functions-framework's app for
functions/main.py), keeping cookies, reading each form's CSRF token from the page like a browser would."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from shared.config import Settings
from tests.conftest import API_TOKEN
from tests.functions.apps import function_client

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class DashboardClient:
    def __init__(self, client: FlaskClient, base_url: str = "http://localhost") -> None:
        self.raw = client
        self.base_url = base_url

    def get(self, path: str, **kwargs: Any) -> TestResponse:
        return self.raw.get(path, base_url=self.base_url, **kwargs)

    def post(self, path: str, **kwargs: Any) -> TestResponse:
        return self.raw.post(path, base_url=self.base_url, **kwargs)

    def csrf_from(self, path: str) -> str:
        page = self.get(path)
        assert page.status_code == 200, page.status_code
        match = _CSRF.search(page.get_data(as_text=True))
        assert match is not None, "the page has no form with a CSRF token"
        return match.group(1)

    def post_form(self, path: str, data: dict[str, Any], *, form_page: str, **kwargs: Any) -> TestResponse:
        """POST `data` as the form on `form_page` would, with that page's CSRF token."""
        return self.post(path, data={**data, "csrf_token": self.csrf_from(form_page)}, **kwargs)

    def sign_in(self, token: str = API_TOKEN) -> TestResponse:
        return self.post_form("/ui/signin", {"token": token}, form_page="/ui/signin")


@pytest.fixture
def visitor(settings: Settings) -> Iterator[DashboardClient]:
    """Not signed in."""
    yield DashboardClient(function_client("api"))


@pytest.fixture
def operator(visitor: DashboardClient) -> DashboardClient:
    """Signed in with the configured API token."""
    response = visitor.sign_in()
    assert response.status_code == 302, response.get_data(as_text=True)
    return visitor
