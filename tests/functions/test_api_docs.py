"""GET /v1/docs: the API reference page and its assets through the `api` function: HTML under a strict
Content-Security-Policy, every asset from this origin and served, nothing inline, and the page public
while the document it renders (/v1/openapi.json) keeps needing the token."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import pytest

from tests.functions.api_client import ApiClient, api

__all__ = ["api"]

PAGE_URL = "http://localhost/v1/docs"
NO_TOKEN = {"Authorization": ""}


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.references: list[str] = []
        self.inline_scripts = 0
        self.style_tags = 0
        self.style_attributes: list[str] = []
        self.handlers: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        self.references += [v for k, v in attrs if k in ("src", "href", "action") and v is not None]
        self.style_attributes += [tag for k, _ in attrs if k == "style"]
        self.handlers += [k for k, _ in attrs if k.startswith("on")]
        self.style_tags += tag == "style"
        self._in_script = tag == "script" and "src" not in values

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline_scripts += 1


def _directives(csp: str) -> dict[str, str]:
    return {part.split()[0]: part.strip() for part in csp.split(";") if part.strip()}


def _parsed(api: ApiClient) -> _Page:
    page = _Page()
    page.feed(api.get("/v1/docs", headers=NO_TOKEN).get_data(as_text=True))
    return page


def test_the_page_is_html_under_a_strict_csp_without_the_token(api: ApiClient) -> None:
    response = api.get("/v1/docs", headers=NO_TOKEN)

    assert response.status_code == 200
    assert response.mimetype == "text/html"
    directives = _directives(response.headers["Content-Security-Policy"])
    assert directives["default-src"] == "default-src 'none'"
    assert directives["script-src"] == "script-src 'self'"
    assert directives["style-src"] == "style-src 'self'"
    assert directives["connect-src"] == "connect-src 'self'"
    assert directives["frame-ancestors"] == "frame-ancestors 'none'"
    assert "unsafe" not in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_the_page_has_nothing_inline(api: ApiClient) -> None:
    page = _parsed(api)

    assert (page.inline_scripts, page.style_tags, page.style_attributes, page.handlers) == (0, 0, [], [])


def test_every_asset_the_page_names_is_from_this_origin_and_served(api: ApiClient) -> None:
    page = _parsed(api)

    assert len(page.references) == 3  # the script, the stylesheet and the icon
    for reference in page.references:
        url = urljoin(PAGE_URL, reference)
        assert urlsplit(url).netloc == "localhost", reference
        asset = api.get(urlsplit(url).path, headers=NO_TOKEN)
        assert asset.status_code == 200, reference
        assert asset.mimetype in ("text/javascript", "text/css", "image/svg+xml"), reference
        assert "Content-Security-Policy" in asset.headers


def test_the_script_loads_nothing_from_another_origin(api: ApiClient) -> None:
    script = api.get("/v1/docs/assets/docs.js", headers=NO_TOKEN).get_data(as_text=True)
    css = api.get("/v1/docs/assets/docs.css", headers=NO_TOKEN).get_data(as_text=True)

    assert not re.search(r"https?://", script + css)
    assert "innerHTML" not in script and "eval(" not in script
    assert "openapi.json" in script


def test_the_document_the_page_renders_still_needs_the_token(api: ApiClient) -> None:
    assert api.get("/v1/openapi.json", headers=NO_TOKEN).status_code == 401
    assert api.get("/v1/openapi.json").status_code == 200


@pytest.mark.parametrize(
    "path", ["/v1/docs/", "/v1/docs/assets/", "/v1/docs/assets/missing.js", "/v1/docs/assets/../docs.py"]
)
def test_nothing_else_is_served_under_docs(api: ApiClient, path: str) -> None:
    response = api.get(path, headers=NO_TOKEN)

    assert response.status_code == 404
    assert "Content-Security-Policy" in response.headers


def test_the_page_is_read_only(api: ApiClient) -> None:
    response = api.post("/v1/docs", headers=NO_TOKEN, data=b"x")

    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, HEAD"
