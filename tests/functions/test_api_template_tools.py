"""Templates beyond CRUD through the `api` function on real PostgreSQL: previews (missing variables,
defaults, length against WhatsApp's limit), locale and channel validation, and test sends to one opted-in
user through the Twilio emulator, refused for anyone else with nothing sent, and audited."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, insert, select, update

from infra.local.twilio_emulator import TwilioEmulator
from shared.config import Settings
from shared.db.models import AuditEvent, TemplateTestSend, User
from shared.domain.templates import WHATSAPP_BODY_LIMIT
from tests.functions.api_client import ApiClient, error_of
from tests.functions.apps import function_client
from tests.functions.sending import sending_settings, twilio
from tests.seeding import add_users, phone

__all__ = ["sending_settings", "twilio"]

ADA = "+14155550100"


@pytest.fixture
def api(sending_settings: Settings) -> ApiClient:
    return ApiClient(function_client("api"))


@pytest.fixture
def db(database_url: str) -> Iterator[Engine]:
    engine = create_engine(database_url)
    yield engine
    engine.dispose()


def _template(api: ApiClient, content: str, **extra: Any) -> dict[str, Any]:
    response = api.post("/v1/templates", json={"name": f"t{abs(hash(content))}", "content": content, **extra})
    assert response.status_code == 201, response.get_json()
    return dict(response.get_json())


def _user(db: Engine, number: str, consent: str = "OPT_IN", **attributes: Any) -> None:
    with db.begin() as conn:
        conn.execute(
            insert(User).values(
                phone_e164=number,
                consent_state=consent,
                attributes=attributes,
                last_inbound_at=datetime.now(UTC),
            )
        )


# --- preview ---


def test_preview_for_a_user_lists_missing_and_defaulted_variables(api: ApiClient, db: Engine) -> None:
    template = _template(api, "Hola {first_name|amigo}, tu pedido {order_id} sale de {city}.")
    _user(db, ADA, city="Lima")
    response = api.post(f"/v1/templates/{template['id']}/preview", json={"phone": "(415) 555-0100"})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["text"] == "Hola amigo, tu pedido {order_id} sale de Lima."
    assert body["missing"] == ["order_id"]
    assert body["defaulted"] == ["first_name"]
    assert body["length"] == len(body["text"])
    assert (body["limit"], body["over_limit"], body["error"]) == (1600, False, None)


def test_preview_with_typed_attributes_and_unsaved_content(api: ApiClient) -> None:
    response = api.post(
        "/v1/templates/preview", json={"content": "Hi {first_name}!", "attributes": {"first_name": "Ana"}}
    )
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["text"] == "Hi Ana!"
    assert response.get_json()["missing"] == []


def test_preview_over_whatsapp_limit_is_an_error(api: ApiClient) -> None:
    template = _template(api, "{essay}")
    long_text = "x" * (WHATSAPP_BODY_LIMIT + 1)
    response = api.post(f"/v1/templates/{template['id']}/preview", json={"attributes": {"essay": long_text}})
    body = response.get_json()
    assert (body["length"], body["over_limit"]) == (WHATSAPP_BODY_LIMIT + 1, True)
    assert "1600" in body["error"] and "1601" in body["error"]


def test_preview_for_an_unknown_user_is_404_and_both_sources_400(api: ApiClient) -> None:
    template = _template(api, "Hi {first_name}")
    unknown = api.post(f"/v1/templates/{template['id']}/preview", json={"phone": "+14155550999"})
    assert unknown.status_code == 404
    both = api.post(
        f"/v1/templates/{template['id']}/preview", json={"phone": ADA, "attributes": {"first_name": "A"}}
    )
    assert both.status_code == 400
    assert "phone or attributes" in error_of(both)["message"] + str(error_of(both)["details"])


# --- locale and channel ---


def test_locale_is_normalized_and_channel_defaults_to_whatsapp(api: ApiClient) -> None:
    template = _template(api, "Hola", locale="es-pe")
    assert (template["locale"], template["channel"]) == ("es-PE", "whatsapp")
    changed = api.patch(f"/v1/templates/{template['id']}", json={"locale": "pt_BR"})
    assert changed.get_json()["locale"] == "pt-BR"


@pytest.mark.parametrize("locale", ["spanish", "e", "es-", "es_PE_x"])
def test_bad_locale_is_400_naming_the_field(api: ApiClient, locale: str) -> None:
    response = api.post("/v1/templates", json={"name": "t", "content": "Hola", "locale": locale})
    assert response.status_code == 400
    error = error_of(response)
    assert error["details"]["field"] == "locale", error


@pytest.mark.parametrize("channel", ["sms", "email", ""])
def test_a_channel_the_send_path_cannot_honour_is_400_naming_the_field(api: ApiClient, channel: str) -> None:
    response = api.post("/v1/templates", json={"name": "t", "content": "Hola", "channel": channel})
    assert response.status_code == 400
    fields = [e["field"] for e in error_of(response)["details"]["errors"]]
    assert fields == ["body.channel"]


# --- test send ---


def test_test_send_reaches_twilio_and_the_audit_trail(
    api: ApiClient, db: Engine, twilio: TwilioEmulator
) -> None:
    template = _template(api, "Hola {first_name|amigo} de {city}")
    _user(db, ADA, city="Lima")
    response = api.post(f"/v1/templates/{template['id']}/test-send", json={"phone": "+1 415 555 0100"})
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert (body["outcome"], body["body"], body["phone"]) == ("ACCEPTED", "Hola amigo de Lima", ADA)
    sent = twilio.messages()
    assert [(m["to"], m["body"], m["sid"]) for m in sent] == [
        (f"whatsapp:{ADA}", "Hola amigo de Lima", body["provider_sid"])
    ]
    with db.connect() as conn:
        audit = conn.execute(select(AuditEvent).where(AuditEvent.kind == "template.test_send")).one()
        record = conn.execute(select(TemplateTestSend)).one()
    assert audit.detail["template_id"] == template["id"]
    assert audit.detail["outcome"] == "ACCEPTED"
    assert audit.detail["phone"] == "+***0100"
    assert audit.detail["operator"].startswith("api:")
    assert ADA not in str(audit.detail)
    assert (record.outcome, record.provider_sid) == ("ACCEPTED", body["provider_sid"])


@pytest.mark.parametrize("consent", ["STOP", "OPT_OUT"])
def test_test_send_to_a_user_not_opted_in_is_refused_and_nothing_sent(
    api: ApiClient, db: Engine, twilio: TwilioEmulator, consent: str
) -> None:
    template = _template(api, "Hola")
    _user(db, ADA, consent=consent)
    response = api.post(f"/v1/templates/{template['id']}/test-send", json={"phone": ADA})
    assert response.status_code == 409
    error = error_of(response)
    assert error["code"] == "not_opted_in" and consent in error["message"]
    assert ADA not in error["message"]
    assert twilio.messages() == []
    with db.connect() as conn:
        assert conn.execute(select(TemplateTestSend)).all() == []


def test_test_send_to_an_unknown_or_invalid_phone_is_refused(api: ApiClient, twilio: TwilioEmulator) -> None:
    template = _template(api, "Hola")
    unknown = api.post(f"/v1/templates/{template['id']}/test-send", json={"phone": "+14155550999"})
    assert unknown.status_code == 404
    invalid = api.post(f"/v1/templates/{template['id']}/test-send", json={"phone": "12"})
    assert invalid.status_code == 400 and error_of(invalid)["details"]["field"] == "phone"
    assert twilio.messages() == []


def test_test_send_outside_the_window_without_content_sid_is_refused(
    api: ApiClient, db: Engine, twilio: TwilioEmulator
) -> None:
    template = _template(api, "Hola")
    [number] = add_users(db, 1)  # never wrote to the sender
    response = api.post(f"/v1/templates/{template['id']}/test-send", json={"phone": number})
    assert response.status_code == 409
    assert "24-hour" in error_of(response)["message"]
    assert twilio.messages() == []


def test_test_send_with_a_missing_variable_is_refused(
    api: ApiClient, db: Engine, twilio: TwilioEmulator
) -> None:
    template = _template(api, "Hola {order_id}")
    _user(db, ADA)
    response = api.post(f"/v1/templates/{template['id']}/test-send", json={"phone": ADA})
    assert response.status_code == 400
    assert error_of(response)["details"]["missing"] == ["order_id"]
    assert twilio.messages() == []


def test_a_twilio_refusal_is_recorded_audited_and_explained(
    api: ApiClient, db: Engine, twilio: TwilioEmulator
) -> None:
    template = _template(api, "Hola")
    _user(db, ADA)
    twilio.set_faults({"to": ADA, "http_status": 400, "error_code": 63003})
    response = api.post(f"/v1/templates/{template['id']}/test-send", json={"phone": ADA})
    assert response.status_code == 502
    body = response.get_json()
    assert (body["outcome"], body["error_code"]) == ("FAILED", 63003)
    assert "not a WhatsApp user" in body["error"]
    with db.connect() as conn:
        audit = conn.execute(select(AuditEvent).where(AuditEvent.kind == "template.test_send")).one()
    assert (audit.detail["outcome"], audit.detail["error_code"]) == ("FAILED", 63003)


def test_a_twilio_opt_out_error_records_stop(api: ApiClient, db: Engine, twilio: TwilioEmulator) -> None:
    template = _template(api, "Hola")
    _user(db, ADA)
    twilio.set_faults({"to": ADA, "http_status": 400, "error_code": 21610})
    assert api.post(f"/v1/templates/{template['id']}/test-send", json={"phone": ADA}).status_code == 502
    with db.connect() as conn:
        assert conn.execute(select(User.consent_state).where(User.phone_e164 == ADA)).scalar_one() == "STOP"


def test_test_send_of_a_stopped_user_after_opt_in_changes(
    api: ApiClient, db: Engine, twilio: TwilioEmulator
) -> None:
    """The consent read is the current one: a user who STOPs after one test send gets no second."""
    template = _template(api, "Hola")
    _user(db, phone(7))
    assert api.post(f"/v1/templates/{template['id']}/test-send", json={"phone": phone(7)}).status_code == 201
    with db.begin() as conn:
        conn.execute(update(User).where(User.phone_e164 == phone(7)).values(consent_state="STOP"))
    assert api.post(f"/v1/templates/{template['id']}/test-send", json={"phone": phone(7)}).status_code == 409
    assert len(twilio.messages()) == 1
