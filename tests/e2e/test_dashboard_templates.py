"""The templates page and the import drop zone in a real browser on the whole local stack: a preview for a
user shows the rendered text and what is missing, a test send reaches the Twilio emulator, and a CSV
dropped on the import page's drop zone is imported through the picker's upload path."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import requests
from playwright.sync_api import Page, expect
from sqlalchemy import Engine, text

from tests.e2e.browser import browser, context, page, shot, sign_in

__all__ = ["browser", "context", "page"]

pytestmark = pytest.mark.e2e

ANA = "+14155550301"
CONTENT = "Hola {first_name|amigo}, tu pedido {order_id} sale de {city}."


def _seed(engine: Engine) -> int:
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO users (phone_e164, consent_state, attributes, last_inbound_at) "
                "VALUES (:p, 'OPT_IN', CAST(:a AS jsonb), :at)"
            ),
            {"p": ANA, "a": '{"city": "Lima"}', "at": datetime.now(UTC)},
        )
        return int(
            conn.execute(
                text(
                    "INSERT INTO templates (name, content, locale) VALUES ('pedido', :c, 'es-PE') RETURNING id"
                ),
                {"c": CONTENT},
            ).scalar_one()
        )


def test_preview_for_a_user_then_a_test_send_reaches_twilio(
    page: Page, clean_stack: dict[str, str], stack_engine: Engine
) -> None:
    template_id = _seed(stack_engine)
    sign_in(page, clean_stack)
    page.goto(clean_stack["DASHBOARD_URL"] + f"templates?edit={template_id}")
    expect(page.locator("input[name=locale]")).to_have_value("es-PE")

    # An unsaved edit is previewed: the script sends the editor's current text.
    page.fill("textarea[name=content]", CONTENT + " ¡Gracias!")
    page.fill("#preview-form input[name=phone]", "(415) 555-0301")
    page.click("#preview-form button[type=submit]")
    expect(page.locator("#preview-text")).to_have_text(
        "Hola amigo, tu pedido {order_id} sale de Lima. ¡Gracias!"
    )
    expect(page.locator("#preview-missing")).to_have_text("order_id")
    expect(page.locator("#preview-defaulted")).to_have_text("first_name")
    expect(page.locator("#preview-length")).to_contain_text("/ 1600")
    shot(page, "template-preview")

    # The saved template has a variable this user lacks: the test send is refused, nothing sent.
    page.fill("#test-send-form input[name=phone]", ANA)
    page.click("#test-send-form button[type=submit]")
    expect(page.locator("#test-send-error")).to_contain_text("order_id")
    with stack_engine.begin() as conn:
        conn.execute(
            text(
                'UPDATE users SET attributes = attributes || \'{"order_id": "A-17"}\' WHERE phone_e164 = :p'
            ),
            {"p": ANA},
        )
    page.click("#test-send-form button[type=submit]")
    expect(page.locator("#test-send-result")).to_contain_text("Twilio accepted it")

    messages = requests.get(clean_stack["TWILIO_API_URL"] + "/_emulator/messages", timeout=10).json()
    assert [(m["to"], m["body"]) for m in messages] == [
        (f"whatsapp:{ANA}", "Hola amigo, tu pedido A-17 sale de Lima.")
    ]
    with stack_engine.connect() as conn:
        audited = conn.execute(
            text("SELECT detail FROM audit_events WHERE kind = 'template.test_send'")
        ).scalar_one()
    assert (audited["outcome"], audited["template_id"], audited["phone"]) == (
        "ACCEPTED",
        template_id,
        "+***0301",
    )


def test_a_csv_dropped_on_the_import_page_is_imported(
    page: Page, clean_stack: dict[str, str], stack_engine: Engine
) -> None:
    sign_in(page, clean_stack)
    page.goto(clean_stack["DASHBOARD_URL"] + "users/import")
    zone = page.locator("#drop-zone")
    expect(zone).to_be_visible()
    csv_text = "phone,first_name,consent_state\n+14155550401,Rosa,OPT_IN\n+14155550402,Luis,OPT_IN\nnope,Bad,OPT_IN\n"
    # What a browser does when a file from the desktop is dropped: a drop event carrying it.
    page.evaluate(
        """(csvText) => {
            const transfer = new DataTransfer();
            transfer.items.add(new File([csvText], "people.csv", { type: "text/csv" }));
            const zone = document.getElementById("drop-zone");
            zone.dispatchEvent(new DragEvent("dragover", { dataTransfer: transfer, bubbles: true, cancelable: true }));
            zone.dispatchEvent(new DragEvent("drop", { dataTransfer: transfer, bubbles: true, cancelable: true }));
        }""",
        csv_text,
    )
    expect(page.locator("#rows-read")).to_have_text("3")
    expect(page.locator("#inserted")).to_have_text("2")
    expect(page.locator("#rejected")).to_have_text("1")
    expect(page.locator("#upload-progress")).to_have_attribute("value", "100")
    shot(page, "import-drag-and-drop")
    with stack_engine.connect() as conn:
        phones = conn.execute(text("SELECT phone_e164 FROM users ORDER BY 1")).scalars().all()
    assert phones == ["+14155550401", "+14155550402"]
