"""The users pages in a real browser on the whole local stack: an operator adds a user through the form,
edits an attribute, changes consent with a reason and sees the audit entry; a campaign message reaches a
user, who answers on WhatsApp through the Twilio emulator (signed, with WaId and ProfileName, as Twilio
sends it), and the user page shows both in one timeline, the answer linked to the message it answers."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from playwright.sync_api import Page, expect
from sqlalchemy import Engine, text

from shared.domain.consent_rules import operator_id
from tests.e2e.browser import browser, context, page, shot, sign_in
from tests.seeding import add_campaign, add_users

__all__ = ["browser", "context", "page"]

pytestmark = pytest.mark.e2e

DEADLINE_SECONDS = 60.0
CONTENT_SID = "HX" + "1" * 32


def test_an_operator_adds_a_user_edits_an_attribute_and_changes_consent_with_a_reason(
    page: Page, clean_stack: dict[str, str], stack_engine: Engine
) -> None:
    sign_in(page, clean_stack)
    page.goto(clean_stack["DASHBOARD_URL"] + "users")
    page.click("a:has-text('Add a user')")
    form = page.locator("#user-add")
    form.locator("input[name=phone]").fill("(415) 555-0311")
    form.locator("textarea[name=attributes]").fill('{"first_name": "Ada", "city": "Lima"}')
    form.locator("select[name=consent_state]").select_option("OPT_IN")
    form.locator("input[name=reason]").fill("signed up in store")
    shot(page, "user-add")
    form.locator("button[type=submit]").click()

    expect(page.locator("h1")).to_contain_text("+14155550311")
    expect(page.locator("#consent-badge")).to_have_text("OPT_IN")

    attribute = page.locator("#attribute-form")
    attribute.locator("input[name=key]").fill("city")
    attribute.locator("input[name=value]").fill("Cusco")
    attribute.locator("button[type=submit]").click()
    expect(page.locator("#attributes")).to_contain_text("Cusco")
    expect(page.locator("#attributes")).not_to_contain_text("Lima")

    consent = page.locator("#consent-form")
    consent.locator("select[name=consent_state]").select_option("OPT_OUT")
    consent.locator("button[type=submit]").click()  # no reason: refused, naming it
    expect(page.locator("#reason-error")).to_be_visible()
    expect(page.locator("#consent-badge")).to_have_text("OPT_IN")
    consent = page.locator("#consent-form")
    consent.locator("select[name=consent_state]").select_option("OPT_OUT")
    consent.locator("input[name=reason]").fill("asked by phone")
    consent.locator("button[type=submit]").click()

    expect(page.locator("#consent-badge")).to_have_text("OPT_OUT")
    newest = page.locator("#consent-history tbody tr").first
    for cell in ("OPT_IN", "OPT_OUT", "dashboard", operator_id(clean_stack["API_TOKEN"]), "asked by phone"):
        expect(newest).to_contain_text(cell)
    with stack_engine.connect() as conn:
        audits = conn.execute(
            text("SELECT source, detail FROM audit_events WHERE kind = 'consent.changed' ORDER BY id")
        ).all()
    assert [(a.source, a.detail["from"], a.detail["to"], a.detail["reason"]) for a in audits] == [
        ("dashboard", "OPT_OUT", "OPT_IN", "signed up in store"),
        ("dashboard", "OPT_IN", "OPT_OUT", "asked by phone"),
    ]
    assert all(a.detail["phone"] == "+***0311" for a in audits)


def _wait_until_sent(engine: Engine, campaign_id: int) -> int:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            row = conn.execute(
                text("SELECT id, status, sent_at FROM messages WHERE campaign_id = :c"), {"c": campaign_id}
            ).first()
        if row is not None and row.sent_at is not None and row.status in ("SENT", "DELIVERED", "READ"):
            return int(row.id)
        time.sleep(0.3)
    raise AssertionError(f"campaign {campaign_id}'s message was not sent within {DEADLINE_SECONDS} s")


def test_a_whatsapp_answer_through_the_emulator_appears_in_the_timeline_linked_to_the_campaign_message(
    page: Page, clean_stack: dict[str, str], stack_engine: Engine
) -> None:
    (phone,) = add_users(stack_engine, 1, start=420)
    campaign_id = add_campaign(
        stack_engine,
        name="autumn offer",
        content="Hi {first_name}, autumn offer inside",
        content_sid=CONTENT_SID,
        content_variables={"1": "first_name"},
    )
    response = requests.post(
        f"{clean_stack['API_URL']}/v1/campaigns/{campaign_id}/trigger",
        headers={"Authorization": f"Bearer {clean_stack['API_TOKEN']}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    message_id = _wait_until_sent(stack_engine, campaign_id)

    answer: dict[str, Any] = requests.post(
        clean_stack["TWILIO_API_URL"] + "/_emulator/inbound",
        json={"from": phone, "body": "  When does it END? ", "profile_name": "Ana María"},
        timeout=20,
    ).json()
    assert answer["status"] == 200, answer

    with stack_engine.connect() as conn:
        event = conn.execute(
            text(
                "SELECT wa_id, profile_name, body_normalized, channel, in_reply_to_message_id, received_at"
                " FROM events_inbound"
            )
        ).one()
    assert tuple(event)[:5] == (phone[1:], "Ana María", "when does it end?", "whatsapp", message_id)
    assert datetime.now(UTC) - event.received_at < timedelta(minutes=5)

    sign_in(page, clean_stack)
    page.goto(clean_stack["DASHBOARD_URL"] + f"users/{phone}")
    rows = page.locator("#conversation tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_have_class(re.compile("inbound"))
    expect(rows.nth(0)).to_contain_text("When does it END?")
    expect(rows.nth(0)).to_contain_text(f"answers message {message_id}")
    expect(rows.nth(0)).to_contain_text("autumn offer")
    expect(rows.nth(1)).to_have_class(re.compile("outbound"))
    expect(rows.nth(1)).to_contain_text("autumn offer")
    expect(rows.nth(1)).to_contain_text(f"message {message_id}")
    shot(page, "user-conversation-timeline")
