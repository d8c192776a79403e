"""The dashboard in a real browser: Debian's chromium, headless, driven by Playwright, trusting the local
CA as an operator's browser trusts Google's certificate. Fixtures and helpers for every browser test:
`browser` (one per module), `context` and `page` (one per test), `sign_in`, and `shot`, which saves a
page under artifacts/screenshots/."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Dialog, Page, expect, sync_playwright

from infra.local.stack import LocalStack

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
# Without the background-networking flags chromium keeps dialing Google on a machine with no network.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser(local_stack: LocalStack) -> Iterator[Browser]:
    assert local_stack.ca is not None
    # The dashboard is served over HTTPS by the front-end emulator: the browser trusts the local CA (by
    # its key), as an operator's browser trusts Google's certificate; it ignores no other error.
    trust = f"--ignore-certificate-errors-spki-list={local_stack.ca.spki_sha256()}"
    # Playwright's own request context (context.request) runs in its Node.js driver, which trusts what
    # NODE_EXTRA_CA_CERTS adds to its roots; the driver starts with sync_playwright() and reads it then.
    os.environ["NODE_EXTRA_CA_CERTS"] = str(local_stack.ca.ca_file)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, trust])
        yield chromium
        chromium.close()


def new_context(browser: Browser) -> BrowserContext:
    return browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 900})


def watched_page(context: BrowserContext) -> Page:
    page = context.new_page()
    # A hostile attribute value that ran as script would open a dialog: fail loudly if anything does.
    page.on("dialog", _no_dialogs)
    return page


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    context = new_context(browser)
    yield context
    context.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return watched_page(context)


def _no_dialogs(dialog: Dialog) -> None:
    dialog.dismiss()
    raise AssertionError(f"a page opened a dialog: {dialog.message!r}")


def shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def sign_in(page: Page, env: dict[str, str]) -> None:
    page.goto(env["DASHBOARD_URL"] + "signin")
    page.fill("input[name=token]", env["API_TOKEN"])
    page.click("button:has-text('Sign in')")
    expect(page.locator("h1")).to_have_text("Overview")
