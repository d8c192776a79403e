"""A campaign's analytics in a real browser on the whole local stack: a small campaign is triggered
through the API and sent through Pub/Sub, Cloud Tasks and the Twilio emulator (whose callbacks report
sent, delivered and read); a recipient then answers STOP. The campaign page must show the funnel, the
sends-per-minute chart, the delivery and read times and the attributed opt-out and reply, and its
download link must give one CSV row per recipient. The page is saved as
artifacts/screenshots/campaign-analytics.png."""

from __future__ import annotations

import csv
import io
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Page, expect
from sqlalchemy import Engine, insert

from shared.db.models import User
from tests.e2e.browser import browser, context, page, shot, sign_in
from tests.seeding import add_campaign

__all__ = ["browser", "context", "page"]

pytestmark = pytest.mark.e2e

PHONES = ["+14155550301", "+14155550302", "+14155550303", "+14155550304"]
# Bounds for a broken run; a healthy one completes and settles in a few seconds.
CAMPAIGN_DEADLINE_MS = 60_000
SETTLE_DEADLINE_SECONDS = 45.0


def _users(engine: Engine) -> None:
    """Opted-in users who wrote to us a minute ago (inside the 24-hour window: free-form Body)."""
    inbound = datetime.now(UTC) - timedelta(minutes=1)
    with engine.begin() as conn:
        conn.execute(
            insert(User),
            [
                {
                    "phone_e164": p,
                    "consent_state": "OPT_IN",
                    "attributes": {"name": "Ana"},
                    "last_inbound_at": inbound,
                }
                for p in PHONES
            ],
        )


def _reload_until(page: Page, selector: str, pattern: str) -> None:
    deadline = time.monotonic() + SETTLE_DEADLINE_SECONDS
    while not re.search(pattern, page.locator(selector).inner_text()) and time.monotonic() < deadline:
        page.wait_for_timeout(500)
        page.reload()
    expect(page.locator(selector)).to_have_text(re.compile(pattern))


def test_a_sent_campaign_shows_its_analytics_and_exports_every_recipient(
    page: Page, clean_stack: dict[str, str], stack_engine: Engine
) -> None:
    _users(stack_engine)
    campaign_id = add_campaign(stack_engine, name="Analytics launch", content="Hello {name}", rate=10)
    triggered = requests.post(
        f"{clean_stack['API_URL']}/v1/campaigns/{campaign_id}/trigger",
        headers={"Authorization": f"Bearer {clean_stack['API_TOKEN']}"},
        timeout=30,
    )
    assert triggered.status_code == 200, triggered.text

    sign_in(page, clean_stack)
    page.goto(clean_stack["DASHBOARD_URL"] + f"campaigns/{campaign_id}")
    expect(page.locator("#campaign-status")).to_have_text("COMPLETED", timeout=CAMPAIGN_DEADLINE_MS)
    # Twilio's callbacks (sent, delivered, read) arrive after the campaign completes.
    _reload_until(page, "#funnel-read", rf"^{len(PHONES)}$")
    requests.post(
        clean_stack["TWILIO_API_URL"] + "/_emulator/inbound",
        json={"from": PHONES[0], "body": "STOP"},
        timeout=10,
    ).raise_for_status()
    _reload_until(page, "#opted-out", r"^1\b")

    expect(page.locator("#funnel-audience")).to_have_text(str(len(PHONES)))
    expect(page.locator("#funnel-sent")).to_have_text(str(len(PHONES)))
    expect(page.locator("#funnel-delivered")).to_have_text(str(len(PHONES)))
    expect(page.locator("#funnel-delivered-share")).to_have_text("100.0% of sent")
    # The sends-per-minute chart: an inline SVG with a bar per minute that had sends.
    chart = page.locator("#send-rate svg")
    expect(chart).to_be_visible()
    assert chart.locator("rect.bar").count() >= 1
    expect(page.locator("#send-rate figcaption")).to_contain_text(f"total {len(PHONES)}")
    expect(page.locator("#time-to-deliver")).to_contain_text(f"({len(PHONES)} messages)")
    expect(page.locator("#time-to-read")).to_contain_text(f"({len(PHONES)} messages)")
    expect(page.locator("#replied")).to_contain_text("1 recipients · 1 messages")
    expect(page.locator("#status-shares")).to_contain_text("READ")
    shot(page, "campaign-analytics")

    with page.expect_download() as download:
        page.click("#export-csv")
    exported = Path(download.value.path()).read_text()
    rows = list(csv.DictReader(io.StringIO(exported)))
    assert [row["recipient_phone"] for row in rows] == PHONES
    assert {row["status"] for row in rows} == {"READ"}
    assert [row["opted_out_within_72h"] for row in rows] == ["yes", "no", "no", "no"]
