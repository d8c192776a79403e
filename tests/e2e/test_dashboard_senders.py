"""The Senders page in a real browser on the whole local stack: an operator adds a sender to a pool (a bare
+E164, stored as whatsapp:+E164), pauses it with a reason and sees the reason and who paused it, resumes
it, and sets the frequency caps, each change landing in the database and the audit trail."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import Engine, text

from tests.e2e.browser import browser, context, page, shot, sign_in

__all__ = ["browser", "context", "page"]

pytestmark = pytest.mark.e2e


def test_an_operator_adds_pauses_and_resumes_a_sender_and_sets_the_caps(
    page: Page, clean_stack: dict[str, str], stack_engine: Engine
) -> None:
    sign_in(page, clean_stack)
    page.click("nav a:has-text('Senders')")
    expect(page.locator("h1")).to_have_text("Senders")

    form = page.locator("#add-sender")
    form.locator("input[name=address]").fill("+14155238886")
    form.locator("input[name=pool]").fill("promo")
    form.locator("input[name=rate_limit_per_second]").fill("20")
    form.locator("button[type=submit]").click()
    expect(page.locator("p.notice")).to_contain_text("Sender added")
    row = page.locator("#senders tr[data-address='whatsapp:+14155238886']")
    expect(row).to_contain_text("promo")
    expect(row).to_contain_text("active")

    row.locator("input[name=reason]").fill("quality rating dropped to low")
    shot(page, "senders-pause")
    row.locator("button.action-pause").click()
    row = page.locator("#senders tr[data-address='whatsapp:+14155238886']")
    expect(row.locator(".paused-reason")).to_contain_text("quality rating dropped to low")
    expect(row.locator(".paused-reason")).to_contain_text("by operator")
    expect(row).to_contain_text("paused")

    caps = page.locator("#caps-form")
    caps.locator("input[name=max_messages]").nth(0).fill("2")
    caps.locator("input[name=window_hours]").nth(0).fill("24")
    caps.locator("input[name=max_messages]").nth(1).fill("5")
    caps.locator("input[name=window_hours]").nth(1).fill("168")
    caps.locator("button[type=submit]").click()
    expect(page.locator("p.notice")).to_contain_text("Frequency caps saved")
    expect(page.locator("#caps-form input[name=window_hours]").nth(1)).to_have_value("168")
    shot(page, "senders-paused-and-caps")

    # Two caps with one window: refused, naming the row, and nothing changes.
    caps = page.locator("#caps-form")
    caps.locator("input[name=window_hours]").nth(1).fill("24")
    caps.locator("button[type=submit]").click()
    expect(page.locator("#frequency-caps .form-errors")).to_contain_text("Cap 2")

    page.goto(clean_stack["DASHBOARD_URL"] + "senders")
    page.locator("#senders tr[data-address='whatsapp:+14155238886'] button.action-resume").click()
    expect(page.locator("p.notice")).to_contain_text("Sender resumed")
    expect(page.locator("#senders tr[data-address='whatsapp:+14155238886'] .paused-reason")).to_have_text("—")

    with stack_engine.connect() as conn:
        caps_rows = conn.execute(
            text("SELECT max_messages, window_seconds FROM frequency_caps ORDER BY window_seconds")
        ).all()
        kinds = conn.execute(
            text(
                "SELECT kind, source FROM audit_events WHERE kind LIKE 'sender.%' OR kind LIKE 'frequency%' ORDER BY id"
            )
        ).all()
    assert [tuple(r) for r in caps_rows] == [(2, 86400), (5, 604800)]
    assert [tuple(k) for k in kinds] == [
        ("sender.added", "dashboard"),
        ("sender.paused", "dashboard"),
        ("frequency_caps.changed", "dashboard"),
        ("sender.resumed", "dashboard"),
    ]
