"""The dashboard in a real browser (Debian's chromium, headless, driven by Playwright) on the whole local
stack: an operator signs in, imports users, builds a template, a segment and a campaign through the forms,
triggers it and watches it complete, pauses and resumes another, and opens a message's audit trail, one
step a test. Every page is saved as a screenshot under artifacts/screenshots/."""

from __future__ import annotations

import csv
import io
import json
import re
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from playwright.sync_api import Browser, BrowserContext, Page, expect
from sqlalchemy import Engine, text

from infra.local.stack_reset import reset_stack
from tests.e2e.browser import browser, context, new_context, page, shot, sign_in, watched_page

__all__ = ["browser", "context", "page"]

# Bounds for a broken run; a healthy one completes the campaign in a few seconds.
CAMPAIGN_DEADLINE_MS = 60_000
CALLBACK_DEADLINE_SECONDS = 30.0
CONTENT_SID = "HX" + "0" * 32
HOSTILE = "<script>alert(1)</script>"
IMPORT_CSV = (
    "phone,first_name,city,consent_state,nickname\n"
    "+14155550201,Ana,Lima,OPT_IN,\n"
    "(415) 555-0202,Bruno,Lima,OPT_IN,\n"
    f"+14155550203,Carla,Lima,OPT_IN,{HOSTILE}\n"
    "+14155550204,Dario,Quito,OPT_IN,\n"
    "12345,Eve,Lima,OPT_IN,\n"
)

pytestmark = pytest.mark.e2e


# --- The operator's scenario: one signed-in browser page on one emptied stack, in steps that build on each
# other in file order. Each step asserts its own part; after a failed step the rest are skipped (see the
# `scenario` marker in tests/e2e/conftest.py), so the first failure names the step that broke.


@pytest.fixture(scope="module")
def scenario_stack(stack_env: dict[str, str], _twilio_emulator_config: dict[str, Any]) -> dict[str, str]:
    """The stack emptied once, before the first step: each later step reads the rows earlier ones made."""
    reset_stack(stack_env, _twilio_emulator_config)
    return stack_env


@pytest.fixture(scope="module")
def operator_page(browser: Browser, scenario_stack: dict[str, str]) -> Iterator[Page]:
    context = new_context(browser)
    yield watched_page(context)
    context.close()


@pytest.fixture
def ui(scenario_stack: dict[str, str]) -> str:
    return scenario_stack["DASHBOARD_URL"]


@pytest.mark.scenario
def test_step_a_signed_out_visitor_is_sent_to_sign_in(
    operator_page: Page, scenario_stack: dict[str, str], ui: str
) -> None:
    operator_page.goto(ui + "campaigns")
    expect(operator_page).to_have_url(re.compile(r"/ui/signin\?next=/ui/campaigns$"))
    shot(operator_page, "01-signin")
    sign_in(operator_page, scenario_stack)
    shot(operator_page, "02-overview")


@pytest.mark.scenario
def test_step_the_import_reports_every_row_and_offers_the_rejects_as_csv(
    operator_page: Page, ui: str
) -> None:
    page = operator_page
    page.goto(ui + "users/import")
    page.set_input_files(
        "input[name=file]", {"name": "users.csv", "mimeType": "text/csv", "buffer": IMPORT_CSV.encode()}
    )
    page.click("button:has-text('Import')")
    expect(page.locator("#inserted")).to_have_text("4")
    expect(page.locator("#rejected")).to_have_text("1")
    expect(page.locator("#upload-progress")).to_have_attribute("value", "100")
    with page.expect_download() as download_info:
        page.click("#rejected-download")
    rejected = list(csv.reader(io.StringIO(Path(download_info.value.path()).read_text())))
    assert rejected[1][:2] == ["5", "12345"]
    shot(page, "03-import")


@pytest.mark.scenario
def test_step_a_national_format_search_opens_the_user_with_hostile_text_shown_as_text(
    operator_page: Page, ui: str
) -> None:
    page = operator_page
    page.goto(ui + "users")
    page.fill("input[name=q]", "(415) 555-0203")
    page.click("button:has-text('Search')")
    expect(page.locator("#consent-badge")).to_have_text("OPT_IN")
    expect(page.locator("#attributes")).to_contain_text(HOSTILE)
    shot(page, "04-user")
    page.goto(ui + "users")
    shot(page, "05-users")


@pytest.mark.scenario
def test_step_the_template_form_lists_variables_as_the_content_is_typed(operator_page: Page, ui: str) -> None:
    page = operator_page
    page.goto(ui + "templates")
    page.fill("input[name=name]", "Lima greeting")
    page.fill("textarea[name=content]", "Hola {first_name|amigo}, from {city}")
    expect(page.locator("#template-variables")).to_have_text("first_name, city")
    # Imported users never wrote to us, so only an approved Content template may reach them (63016).
    page.fill("input[name=content_sid]", CONTENT_SID)
    page.fill("input[name=content_variables]", json.dumps({"1": "first_name|amigo"}))
    page.click("button:has-text('Create template')")
    expect(page.locator(".notice")).to_have_text("Created.")
    shot(page, "06-templates")


@pytest.mark.scenario
def test_step_the_segment_preview_counts_the_opted_in_audience_before_saving(
    operator_page: Page, ui: str
) -> None:
    page = operator_page
    page.goto(ui + "segments")
    page.fill("input[name=name]", "Lima")
    page.fill(
        "textarea[name=definition]", json.dumps({"attribute": "city", "operator": "equals", "value": "Lima"})
    )
    page.click("#segment-preview")
    expect(page.locator("#preview-size")).to_have_text("3 opted-in users")
    page.click("button:has-text('Create segment')")
    expect(page.locator(".notice")).to_have_text("Created.")
    shot(page, "07-segments")


@pytest.mark.scenario
def test_step_a_triggered_campaign_is_followed_until_it_completes(operator_page: Page, ui: str) -> None:
    page = operator_page
    create_campaign(page, ui, "Lima launch")
    expect(page.locator("#audience-size")).to_have_text("3 opted-in users")
    shot(page, "08-campaign-form")
    page.click("button:has-text('Create campaign')")
    expect(page.locator("#campaign-status")).to_have_text("DRAFT")
    page.click("button.action-trigger")
    expect(page.locator(".notice")).to_contain_text("Campaign triggered")
    expect(page.locator("#campaign-status")).to_have_text("COMPLETED", timeout=CAMPAIGN_DEADLINE_MS)
    expect(page.locator("progress[data-status=COMPLETED]")).to_have_attribute("value", "100.0")
    page.reload()
    expect(page.locator(".message-link")).to_have_count(3)
    shot(page, "09-campaign-detail")
    page.goto(ui + "campaigns")
    expect(page.locator("tr", has_text="Lima launch")).to_contain_text("COMPLETED")
    shot(page, "10-campaigns")


@pytest.mark.scenario
def test_step_one_click_leads_from_a_message_to_its_receipts_and_audit_trail(
    operator_page: Page, ui: str
) -> None:
    page = operator_page
    page.goto(ui + "campaigns")
    page.click("a:has-text('Lima launch')")
    page.locator(".message-link").first.click()
    expect(page.locator("h1")).to_contain_text("Message")
    # COMPLETED means every send is over; Twilio's delivery callbacks may still be on their way.
    reload_until(page, "#receipts", "delivered")
    expect(page.locator("#audit-trail")).to_be_visible()
    shot(page, "11-message")


@pytest.mark.scenario
def test_step_a_scheduled_campaign_is_marked_ready_paused_and_resumed(
    operator_page: Page, ui: str, stack_engine: Engine
) -> None:
    page = operator_page
    create_campaign(page, ui, "Lima later", schedule=datetime.now() + timedelta(days=2))
    page.click("button:has-text('Create campaign')")
    page.click("button.action-ready")
    expect(page.locator("#campaign-status")).to_have_text("READY")
    page.click("button.action-pause")
    expect(page.locator("#campaign-status")).to_have_text("PAUSED")
    shot(page, "12-campaign-paused")
    page.click("button.action-resume")
    expect(page.locator("#campaign-status")).to_have_text("READY")
    with stack_engine.connect() as conn:
        kinds = conn.execute(
            text(
                "SELECT kind FROM audit_events WHERE campaign_id ="
                " (SELECT id FROM campaigns WHERE name = 'Lima later') ORDER BY id"
            )
        ).scalars()
        assert list(kinds) == ["campaign.ready", "campaign.paused", "campaign.resumed"]


@pytest.mark.scenario
def test_step_monitoring_shows_an_inbound_message_with_the_phone_masked(
    operator_page: Page, scenario_stack: dict[str, str], ui: str
) -> None:
    requests.post(
        scenario_stack["TWILIO_API_URL"] + "/_emulator/inbound",
        json={"from": "+14155550201", "body": "gracias"},
        timeout=10,
    ).raise_for_status()
    operator_page.goto(ui + "monitoring")
    expect(operator_page.locator("#inbound")).to_contain_text("+***0201")
    expect(operator_page.locator("#inbound")).not_to_contain_text("+14155550201")
    shot(operator_page, "13-monitoring")


@pytest.mark.scenario
def test_step_the_overview_counts_the_sends_of_today(operator_page: Page, ui: str) -> None:
    operator_page.goto(ui)
    expect(operator_page.locator("#sent-today")).to_have_text("3")
    shot(operator_page, "14-overview-after")


def reload_until(page: Page, selector: str, wanted: str) -> None:
    deadline = time.monotonic() + CALLBACK_DEADLINE_SECONDS
    while wanted not in page.locator(selector).inner_text() and time.monotonic() < deadline:
        page.wait_for_timeout(300)
        page.reload()
    expect(page.locator(selector)).to_contain_text(wanted)


def create_campaign(page: Page, ui: str, name: str, schedule: datetime | None = None) -> None:
    page.goto(ui + "campaigns/new")
    page.fill("input[name=name]", name)
    page.select_option("select[name=template_id]", label="Lima greeting")
    page.select_option("select[name=segment_id]", label="Lima")
    page.fill("input[name=rate_limit_per_second]", "10")
    page.fill("input[name=timezone]", "America/Lima")
    if schedule is not None:
        page.fill("input[name=schedule_time]", schedule.strftime("%Y-%m-%dT%H:%M"))


def test_cross_site_form_cannot_change_consent(
    page: Page, context: BrowserContext, clean_stack: dict[str, str], stack_engine: Engine
) -> None:
    phone = "+14155550299"
    with stack_engine.begin() as conn:
        conn.execute(
            text("INSERT INTO users (phone_e164, consent_state) VALUES (:p, 'OPT_IN')"), {"p": phone}
        )
    sign_in(page, clean_stack)
    target = clean_stack["DASHBOARD_URL"] + f"users/{phone}/consent"

    # A signed-in operator's browser posting without the form's token (as a script on another page could).
    refused = context.request.post(target, form={"consent_state": "STOP"}, max_redirects=0)
    assert refused.status == 403

    # A page on another site that auto-submits a form at the dashboard.
    page.route(
        "http://attacker.test/",
        lambda route: route.fulfill(
            content_type="text/html",
            body=f'<form method="post" action="{target}"><input name="consent_state" value="STOP"></form>'
            "<script>document.forms[0].submit()</script>",
        ),
    )
    page.goto("http://attacker.test/")
    page.wait_for_url(re.compile(r"/ui/"))
    shot(page, "15-cross-site-post")
    with stack_engine.connect() as conn:
        assert (
            conn.execute(
                text("SELECT consent_state FROM users WHERE phone_e164 = :p"), {"p": phone}
            ).scalar_one()
            == "OPT_IN"
        )
