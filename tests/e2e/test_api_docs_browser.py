"""The API reference (/v1/docs) in a real browser (Debian's chromium, headless, through the front-end
emulator's HTTPS): it loads under its Content-Security-Policy with no violation and no console error,
asks for the token, lists every operation from /v1/openapi.json, marks the replaced system's aliases
deprecated, and its "try it" sends a request with the token. Screenshots under artifacts/screenshots/."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import ConsoleMessage, Page, Response, expect

from tests.e2e.browser import browser, context, page, shot

__all__ = ["browser", "context", "page"]

pytestmark = pytest.mark.e2e

# Recorded before any script of the page runs (an init script is not subject to the page's CSP).
RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", function (event) {
  window.__cspViolations.push(event.violatedDirective + " " + event.blockedURI);
});
"""


class Watch:
    """What the page reports: console errors, uncaught exceptions, CSP violations, requests it made."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.console_errors: list[str] = []
        self.page_errors: list[str] = []
        self.requests: list[str] = []
        self.failed: list[str] = []
        page.add_init_script(RECORD_VIOLATIONS)
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.page_errors.append(str(error)))
        page.on("request", lambda request: self.requests.append(request.url))
        page.on("response", self._response)

    def _response(self, response: Response) -> None:
        if not response.ok:
            self.failed.append(f"{response.status} {response.url}")

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.console_errors.append(message.text)

    def violations(self) -> list[Any]:
        return list(self.page.evaluate("window.__cspViolations || []"))


def _load(page: Page, env: dict[str, str], token: str) -> Watch:
    watch = Watch(page)
    response = page.goto(env["API_URL"] + "/v1/docs")
    assert response is not None and response.status == 200
    assert "script-src 'self'" in (response.headers.get("content-security-policy") or "")
    expect(page.locator("h1")).to_contain_text("API reference")
    page.fill("#token", token)
    page.click("button:has-text('Load the reference')")
    return watch


def test_the_reference_lists_every_operation_without_errors_or_csp_violations(
    page: Page, clean_stack: dict[str, str]
) -> None:
    watch = _load(page, clean_stack, clean_stack["API_TOKEN"])

    create = page.locator('details.operation[data-endpoint="POST /v1/campaigns"]')
    expect(create).to_be_visible()
    expect(create.locator("summary")).to_contain_text("POST")
    expect(create.locator("summary")).to_contain_text("/v1/campaigns")
    expect(page.locator("#status")).to_contain_text("Loaded")
    operations = page.locator("details.operation").count()
    assert operations > 30
    alias = page.locator('details.operation[data-endpoint="POST /v1/users/bulk"]')
    expect(alias.locator(".badge")).to_have_text("deprecated")
    alias.locator("summary").click()
    expect(alias).to_contain_text("Deprecated alias of `POST /v1/users/import`")
    create.locator("summary").click()
    expect(create).to_contain_text("DEFAULT_QUIET_HOURS")
    shot(page, "api-docs")

    assert watch.failed == []
    assert watch.console_errors == [] and watch.page_errors == []
    assert watch.violations() == []
    origin = urlsplit(clean_stack["API_URL"]).netloc
    assert {urlsplit(url).netloc for url in watch.requests} == {origin}


def test_try_it_sends_the_request_with_the_token(page: Page, clean_stack: dict[str, str]) -> None:
    watch = _load(page, clean_stack, clean_stack["API_TOKEN"])
    health = page.locator('details.operation[data-endpoint="GET /v1/monitoring/health"]')
    health.locator("summary").click()

    health.locator("button:has-text('Send GET')").click()

    expect(health.locator("pre.response")).to_contain_text("200", timeout=15_000)
    expect(health.locator("pre.response")).to_contain_text('"checks"')
    page.fill("#filter", "status-counts")
    expect(health).to_be_hidden()
    expect(page.locator('details.operation[data-endpoint="GET /v1/messages/status-counts"]')).to_be_visible()
    shot(page, "api-docs-try-it")
    assert watch.console_errors == [] and watch.page_errors == [] and watch.violations() == []


def test_a_wrong_token_is_refused_in_words(page: Page, clean_stack: dict[str, str]) -> None:
    watch = _load(page, clean_stack, "not-the-token")

    expect(page.locator("#status")).to_contain_text("refused this token (401)")
    expect(page.locator("#reference")).to_be_hidden()
    # The browser reports the refused fetch itself; nothing else may go wrong.
    assert all("401" in message for message in watch.console_errors)
    assert watch.page_errors == [] and watch.violations() == []
