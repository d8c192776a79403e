"""The templates page's preview, locale and channel fields and test send, and the import page's drop zone,
through the `api` function on real PostgreSQL (the test send through the Twilio emulator)."""

from __future__ import annotations

import html
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, select, text

from infra.local.twilio_emulator import TwilioEmulator
from shared.config import Settings
from shared.db.models import AuditEvent
from tests.functions.apps import function_client
from tests.functions.dashboard_client import DashboardClient
from tests.functions.sending import sending_settings, twilio

__all__ = ["sending_settings", "twilio"]

ADA = "+14155550100"


@pytest.fixture
def operator(sending_settings: Settings) -> DashboardClient:
    client = DashboardClient(function_client("api"))
    assert client.sign_in().status_code == 302
    return client


def _execute(engine: Engine, sql: str, **params: Any) -> Any:
    with engine.begin() as conn:
        return conn.execute(text(sql), params)


def _template(engine: Engine, content: str) -> int:
    return int(
        _execute(
            engine, "INSERT INTO templates (name, content) VALUES ('t', :c) RETURNING id", c=content
        ).scalar_one()
    )


def _user(engine: Engine, phone: str = ADA, consent: str = "OPT_IN", **attributes: Any) -> None:
    _execute(
        engine,
        "INSERT INTO users (phone_e164, consent_state, attributes, last_inbound_at) "
        "VALUES (:p, :c, CAST(:a AS jsonb), :at)",
        p=phone,
        c=consent,
        a=json.dumps(attributes),
        at=datetime.now(UTC),
    )


def _text(response: Any) -> str:
    return html.unescape(response.get_data(as_text=True))


def test_preview_for_a_user_shows_text_missing_and_defaulted(
    operator: DashboardClient, engine: Engine
) -> None:
    template_id = _template(engine, "Hola {first_name|amigo}, pedido {order_id}")
    _user(engine)
    page = f"/ui/templates?edit={template_id}"
    response = operator.post_form(
        f"/ui/templates/preview?edit={template_id}",
        {"content": "Hola {first_name|amigo}, pedido {order_id}", "phone": "415 555 0100"},
        form_page=page,
    )
    assert response.status_code == 200
    body = _text(response)
    assert '<pre class="preview-text" id="preview-text">Hola amigo, pedido {order_id}</pre>' in body
    assert '<dd id="preview-missing"><code>order_id</code> </dd>' in body
    assert '<dd id="preview-defaulted"><code>first_name</code> </dd>' in body
    assert '<dd id="preview-length">29 / 1600</dd>' in body


def test_preview_over_the_limit_and_of_unsaved_content_with_attributes(operator: DashboardClient) -> None:
    response = operator.post_form(
        "/ui/templates/preview",
        {"content": "{x}", "attributes": '{"x": "' + "y" * 1700 + '"}'},
        form_page="/ui/templates",
    )
    assert response.status_code == 200
    assert 'id="preview-over-limit"' in _text(response)
    assert "1700 characters" in _text(response)


def test_preview_with_bad_attributes_json_is_400_with_the_reason(operator: DashboardClient) -> None:
    response = operator.post_form(
        "/ui/templates/preview", {"content": "{x}", "attributes": "{not json"}, form_page="/ui/templates"
    )
    assert response.status_code == 400
    assert 'id="preview-error"' in _text(response)
    assert "attributes" in _text(response)


def test_locale_and_channel_are_saved_and_a_bad_locale_is_shown_under_its_field(
    operator: DashboardClient, engine: Engine
) -> None:
    bad = operator.post_form(
        "/ui/templates", {"name": "g", "content": "Hola", "locale": "spanish"}, form_page="/ui/templates"
    )
    assert bad.status_code == 400
    assert 'id="locale-error"' in _text(bad)
    sms = operator.post_form(
        "/ui/templates", {"name": "g", "content": "Hola", "channel": "sms"}, form_page="/ui/templates"
    )
    assert sms.status_code == 400
    assert 'id="channel-error"' in _text(sms)
    good = operator.post_form(
        "/ui/templates", {"name": "g", "content": "Hola", "locale": "es-pe"}, form_page="/ui/templates"
    )
    assert good.status_code == 302
    row = _execute(engine, "SELECT locale, channel FROM templates").one()
    assert tuple(row) == ("es-PE", "whatsapp")


def test_test_send_reaches_twilio_and_is_audited_with_the_operator(
    operator: DashboardClient, engine: Engine, twilio: TwilioEmulator
) -> None:
    template_id = _template(engine, "Hola {first_name}")
    _user(engine, first_name="Ada")
    page = f"/ui/templates?edit={template_id}"
    response = operator.post_form(
        f"/ui/templates/{template_id}/test-send?edit={template_id}", {"phone": ADA}, form_page=page
    )
    assert response.status_code == 200, _text(response)
    assert 'id="test-send-result"' in _text(response)
    assert [(m["to"], m["body"]) for m in twilio.messages()] == [(f"whatsapp:{ADA}", "Hola Ada")]
    with engine.connect() as conn:
        audit = conn.execute(select(AuditEvent).where(AuditEvent.kind == "template.test_send")).one()
    assert audit.detail["operator"].startswith("dashboard:") and len(audit.detail["operator"]) > 10
    assert audit.detail["phone"] == "+***0100"


@pytest.mark.parametrize("consent", ["STOP", "OPT_OUT"])
def test_test_send_to_a_user_not_opted_in_is_refused_on_the_page(
    operator: DashboardClient, engine: Engine, twilio: TwilioEmulator, consent: str
) -> None:
    template_id = _template(engine, "Hola")
    _user(engine, consent=consent)
    response = operator.post_form(
        f"/ui/templates/{template_id}/test-send?edit={template_id}",
        {"phone": ADA},
        form_page=f"/ui/templates?edit={template_id}",
    )
    assert response.status_code == 409
    assert 'id="test-send-error"' in _text(response) and consent in _text(response)
    assert twilio.messages() == []


def test_a_twilio_refusal_is_shown_with_its_meaning(
    operator: DashboardClient, engine: Engine, twilio: TwilioEmulator
) -> None:
    template_id = _template(engine, "Hola")
    _user(engine)
    twilio.set_faults({"to": ADA, "http_status": 400, "error_code": 63003})
    response = operator.post_form(
        f"/ui/templates/{template_id}/test-send?edit={template_id}",
        {"phone": ADA},
        form_page=f"/ui/templates?edit={template_id}",
    )
    assert response.status_code == 502
    assert "the number is not a WhatsApp user (63003" in _text(response)


def test_import_page_has_a_drop_zone_beside_the_file_picker(operator: DashboardClient) -> None:
    body = _text(operator.get("/ui/users/import"))
    # Hidden until the script shows it: without script the file picker is the way in.
    assert '<div id="drop-zone" class="drop-zone" hidden>' in body
    assert 'type="file" name="file"' in body
