"""The dashboard as the bench's browser sees it: signed in through the form (the session cookie kept, the
CSRF token read from the page), and each page's server time read from its `Server-Timing: app;dur=<ms>`
header beside the client's round trip. Used by the dashboard figure and the 1M-recipient figure."""

from __future__ import annotations

import re
import time

import requests

from infra.bench.context import BenchContext

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
_SERVER_TIMING = re.compile(r"(?:^|,)\s*app;dur=([0-9.]+)")


def signed_in(ctx: BenchContext) -> requests.Session:
    """A cookie-keeping client signed in through the form, with the CSRF token read from the page."""
    browser = requests.Session()
    form = browser.get(ctx.env["API_URL"] + "/ui/signin", timeout=60)
    form.raise_for_status()
    match = _CSRF.search(form.text)
    if match is None:
        raise RuntimeError("the sign-in page has no CSRF token")
    answer = browser.post(
        ctx.env["API_URL"] + "/ui/signin",
        data={"token": ctx.env["API_TOKEN"], "csrf_token": match.group(1)},
        allow_redirects=False,
        timeout=60,
    )
    if answer.status_code != 302:
        raise RuntimeError(f"sign-in answered {answer.status_code}: {answer.text[:300]}")
    return browser


def page_times(browser: requests.Session, ctx: BenchContext, page: str) -> tuple[float, float]:
    """(server ms from Server-Timing, client round-trip ms) of one GET, which must render the page."""
    start = time.perf_counter()
    response = browser.get(ctx.env["API_URL"] + page, allow_redirects=False, timeout=60)
    round_trip_ms = 1000 * (time.perf_counter() - start)
    if response.status_code != 200:
        raise RuntimeError(f"GET {page} answered {response.status_code}: {response.text[:300]}")
    match = _SERVER_TIMING.search(response.headers.get("Server-Timing", ""))
    if match is None:
        raise RuntimeError(f"GET {page} carries no Server-Timing app;dur=")
    return float(match.group(1)), round_trip_ms
