"""inbound_webhook through functions-framework's HTTP interface, on a real migrated PostgreSQL database."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, text
from werkzeug.test import TestResponse

from infra.local.postgres import free_port
from shared import bootstrap
from shared.config import Settings, override_settings
from shared.db.queries.segments import audience_query
from tests.conftest import make_settings
from tests.functions.twilio_webhook_client import (
    SERVER_BASE_URL,
    TwilioWebhookClient,
    count_rows,
    fetch_one,
    inbound,
    inbound_form,
)

__all__ = ["inbound"]

PHONE = "+14155550100"


def message(body: str, *, sender: str = f"whatsapp:{PHONE}", **extra: str) -> dict[str, str]:
    return inbound_form(body, sender, **extra)


EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


def seed_user(
    engine: Engine, consent: str, phone: str = PHONE, last_inbound_at: datetime | None = None
) -> None:
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO users (phone_e164, consent_state, last_inbound_at) VALUES (:p, :c, :t)"),
            {"p": phone, "c": consent, "t": last_inbound_at},
        )


def consent_of(engine: Engine, phone: str = PHONE) -> str:
    return str(fetch_one(engine, "SELECT consent_state FROM users WHERE phone_e164 = :p", p=phone)[0])


def consent_audits(engine: Engine) -> list[tuple[str, str, dict[str, Any]]]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT user_phone, source, detail FROM audit_events WHERE kind = 'consent.changed' ORDER BY id"
            )
        )
        return [(r.user_phone, r.source, r.detail) for r in rows]


def replied_text(response: TestResponse) -> str | None:
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/xml"
    body = response.get_data(as_text=True)
    if body == EMPTY_TWIML:
        return None
    prefix = '<?xml version="1.0" encoding="UTF-8"?><Response><Message>'
    assert body.startswith(prefix) and body.endswith("</Message></Response>"), body
    return body.removeprefix(prefix).removesuffix("</Message></Response>")


# --- the lock ---


def test_forged_signature_is_refused_and_nothing_is_written(
    inbound: TwilioWebhookClient, engine: Engine
) -> None:
    params = message("STOP")
    response = inbound.post(params, signature=inbound.signature(params, token="guessed-token"))
    assert response.status_code == 403
    assert count_rows(engine, "events_inbound") == count_rows(engine, "users") == 0


def test_missing_signature_is_refused_and_nothing_is_written(
    inbound: TwilioWebhookClient, engine: Engine
) -> None:
    response = inbound.post_unsigned(message("STOP"))
    assert response.status_code == 403
    assert count_rows(engine, "events_inbound") == count_rows(engine, "users") == 0


def test_signature_replayed_from_another_url_is_refused(
    inbound: TwilioWebhookClient, settings: Settings, engine: Engine
) -> None:
    params = message("STOP")
    assert settings.status_webhook_url is not None
    status_signature = TwilioWebhookClient("status_webhook", settings.status_webhook_url).signature(params)
    response = inbound.post(params, signature=status_signature)
    assert response.status_code == 403
    assert count_rows(engine, "events_inbound") == 0


def test_no_auth_token_configured_refuses_even_a_correctly_signed_request(
    inbound: TwilioWebhookClient, database_url: str, engine: Engine
) -> None:
    override_settings(make_settings(database_url, twilio_auth_token=None))
    response = inbound.post(message("STOP"))
    assert response.status_code == 403
    assert count_rows(engine, "events_inbound") == 0


def test_signature_for_the_public_url_passes_although_the_server_sees_another_host(
    inbound: TwilioWebhookClient, settings: Settings, engine: Engine
) -> None:
    assert not str(settings.inbound_webhook_url).startswith(SERVER_BASE_URL)
    response = inbound.post(message("hello"))
    assert response.status_code == 200
    assert count_rows(engine, "events_inbound") == 1


def test_json_body_signed_with_its_body_hash_is_accepted(
    inbound: TwilioWebhookClient, engine: Engine
) -> None:
    body = json.dumps(message("hello"))
    query = f"bodySHA256={hashlib.sha256(body.encode()).hexdigest()}"
    response = inbound.raw.post(
        f"{inbound.path}?{query}",
        base_url=SERVER_BASE_URL,
        data=body,
        content_type="application/json",
        headers={"X-Twilio-Signature": inbound.signature({}, query)},
    )
    assert response.status_code == 200
    assert fetch_one(engine, "SELECT from_phone FROM events_inbound")[0] == PHONE


# --- consent keywords ---


@pytest.mark.parametrize("body", ["STOP", "stop.", " Stop ", "unsubscribe", "Cancel!"])
def test_stop_keyword_sets_stop_and_confirms(
    inbound: TwilioWebhookClient, settings: Settings, engine: Engine, body: str
) -> None:
    seed_user(engine, "OPT_IN")
    params = message(body)
    assert replied_text(inbound.post(params)) == settings.stop_reply_text
    assert consent_of(engine) == "STOP"
    [(phone, source, detail)] = consent_audits(engine)
    assert (phone, source) == (PHONE, "inbound_keyword")
    assert detail == {"from": "OPT_IN", "to": "STOP", "message_sid": params["MessageSid"]}


def test_user_who_said_stop_is_left_out_of_every_campaign_audience(
    inbound: TwilioWebhookClient, engine: Engine
) -> None:
    seed_user(engine, "OPT_IN")
    every_opted_in_user = audience_query({"operator": "AND", "conditions": []})
    with engine.connect() as conn:
        assert conn.execute(every_opted_in_user).scalars().all() == [PHONE]
    inbound.post(message("STOP"))
    with engine.connect() as conn:
        assert conn.execute(every_opted_in_user).scalars().all() == []


def test_stop_gets_only_the_confirmation_even_with_an_auto_reply_configured(
    inbound: TwilioWebhookClient, database_url: str, engine: Engine
) -> None:
    override_settings(make_settings(database_url, auto_reply_text="Thanks, we got your message"))
    assert replied_text(inbound.post(message("STOP"))) == make_settings(database_url).stop_reply_text


def test_sentence_containing_stop_is_not_an_opt_out(inbound: TwilioWebhookClient, engine: Engine) -> None:
    seed_user(engine, "OPT_IN")
    assert replied_text(inbound.post(message("please stop calling"))) is None
    assert consent_of(engine) == "OPT_IN"
    assert consent_audits(engine) == []


@pytest.mark.parametrize("body", ["START", "yes", " Unstop! "])
def test_start_keyword_opts_a_stopped_user_back_in(
    inbound: TwilioWebhookClient, settings: Settings, engine: Engine, body: str
) -> None:
    seed_user(engine, "STOP")
    assert replied_text(inbound.post(message(body))) == settings.start_reply_text
    assert consent_of(engine) == "OPT_IN"
    [(_, source, detail)] = consent_audits(engine)
    assert source == "inbound_keyword"
    assert (detail["from"], detail["to"]) == ("STOP", "OPT_IN")


@pytest.mark.parametrize("body", ["HELP", "info?"])
def test_help_keyword_replies_and_changes_nothing(
    inbound: TwilioWebhookClient, settings: Settings, engine: Engine, body: str
) -> None:
    seed_user(engine, "OPT_IN")
    assert replied_text(inbound.post(message(body))) == settings.help_reply_text
    assert consent_of(engine) == "OPT_IN"
    assert consent_audits(engine) == []


def test_twilio_opt_out_type_wins_over_the_message_text(
    inbound: TwilioWebhookClient, settings: Settings, engine: Engine
) -> None:
    seed_user(engine, "OPT_IN")
    response = inbound.post(message("arrêtez s'il vous plaît", OptOutType="STOP"))
    assert replied_text(response) == settings.stop_reply_text
    assert consent_of(engine) == "STOP"
    [(_, source, _)] = consent_audits(engine)
    assert source == "twilio_opt_out_type"


def test_reply_texts_are_configurable_and_xml_escaped(
    inbound: TwilioWebhookClient, database_url: str, engine: Engine
) -> None:
    override_settings(make_settings(database_url, help_reply_text="Call <us> & ask"))
    body = inbound.post(message("HELP")).get_data(as_text=True)
    assert "<Message>Call &lt;us&gt; &amp; ask</Message>" in body


# --- senders and the 24-hour window ---


def test_unknown_senders_first_message_creates_them_without_opting_them_in(
    inbound: TwilioWebhookClient, engine: Engine
) -> None:
    before = datetime.now(UTC)
    assert replied_text(inbound.post(message("hello there"))) is None
    user = fetch_one(
        engine, "SELECT consent_state, last_inbound_at FROM users WHERE phone_e164 = :p", p=PHONE
    )
    assert user.consent_state == "OPT_OUT"
    assert user.last_inbound_at >= before
    assert consent_audits(engine) == []


def test_unknown_sender_who_writes_start_is_opted_in(inbound: TwilioWebhookClient, engine: Engine) -> None:
    inbound.post(message("START"))
    assert consent_of(engine) == "OPT_IN"
    [(_, source, detail)] = consent_audits(engine)
    assert (source, detail["from"], detail["to"]) == ("inbound_keyword", "OPT_OUT", "OPT_IN")


def test_stopped_user_who_writes_hello_stays_stopped_but_opens_the_window(
    inbound: TwilioWebhookClient, engine: Engine
) -> None:
    seed_user(engine, "STOP")
    before = datetime.now(UTC)
    inbound.post(message("hello"))
    user = fetch_one(
        engine, "SELECT consent_state, last_inbound_at FROM users WHERE phone_e164 = :p", p=PHONE
    )
    assert user.consent_state == "STOP"
    assert user.last_inbound_at >= before


def test_a_delayed_webhook_never_moves_the_window_back(inbound: TwilioWebhookClient, engine: Engine) -> None:
    later = datetime.now(UTC) + timedelta(hours=1)
    seed_user(engine, "OPT_IN", last_inbound_at=later)
    inbound.post(message("hello"))
    assert fetch_one(engine, "SELECT last_inbound_at FROM users")[0] == later


def test_other_messages_get_the_auto_reply_only_when_one_is_configured(
    inbound: TwilioWebhookClient, database_url: str, engine: Engine
) -> None:
    assert replied_text(inbound.post(message("what time do you open?"))) is None
    override_settings(make_settings(database_url, auto_reply_text="We'll get back to you soon"))
    assert replied_text(inbound.post(message("what time do you open?"))) == "We'll get back to you soon"


# --- raw first, and idempotent ---


def test_raw_payload_and_idempotency_token_are_kept_with_the_outcome(
    inbound: TwilioWebhookClient, engine: Engine
) -> None:
    params = message("STOP", ProfileName="Ana")
    inbound.post(params, idempotency_token="token-1")
    row = fetch_one(
        engine,
        "SELECT message_sid, from_phone, body, raw_payload, idempotency_token, outcome FROM events_inbound",
    )
    assert (row.message_sid, row.from_phone, row.body) == (params["MessageSid"], PHONE, "STOP")
    assert row.raw_payload == params
    assert (row.idempotency_token, row.outcome) == ("token-1", "consent:STOP")


def test_the_same_event_delivered_twice_is_recorded_once_and_answered_the_same(
    inbound: TwilioWebhookClient, settings: Settings, engine: Engine
) -> None:
    seed_user(engine, "OPT_IN")
    params = message("STOP")
    first = inbound.post(params, idempotency_token="same")
    # Between the deliveries the user opted back in: a redelivery of the old STOP must not undo that.
    inbound.post(message("START"))
    second = inbound.post(params, idempotency_token="same")
    assert first.get_data() == second.get_data()
    assert replied_text(second) == settings.stop_reply_text
    assert count_rows(engine, "events_inbound") == 2
    assert consent_of(engine) == "OPT_IN"
    assert [d["to"] for _, _, d in consent_audits(engine)] == ["STOP", "OPT_IN"]


# --- malformed, but signed ---


def test_missing_message_sid_is_a_400_with_a_reason_and_the_raw_payload_is_kept(
    inbound: TwilioWebhookClient, engine: Engine
) -> None:
    params = message("STOP")
    del params["MessageSid"]
    response = inbound.post(params)
    assert response.status_code == 400
    assert "MessageSid" in response.get_data(as_text=True)
    row = fetch_one(engine, "SELECT message_sid, raw_payload, outcome FROM events_inbound")
    assert row.message_sid is None and row.raw_payload == params
    assert row.outcome.startswith("rejected:MessageSid")
    assert count_rows(engine, "users") == 0


def test_garbage_sender_is_a_400_with_a_reason_and_the_raw_payload_is_kept(
    inbound: TwilioWebhookClient, engine: Engine
) -> None:
    params = message("STOP", sender="whatsapp:not-a-number")
    response = inbound.post(params)
    assert response.status_code == 400
    assert response.get_data(as_text=True).startswith("From: ")
    row = fetch_one(engine, "SELECT from_phone, raw_payload, outcome FROM events_inbound")
    assert row.from_phone is None and row.raw_payload == params
    assert row.outcome.startswith("rejected:From: ")
    assert count_rows(engine, "users") == 0
    # Twilio retrying the same bad event gets the same answer, and it is still recorded once.
    assert inbound.post(params).status_code == 400
    assert count_rows(engine, "events_inbound") == 1


# --- the database briefly away ---


def test_unreachable_database_answers_503_so_twilio_retries(inbound: TwilioWebhookClient) -> None:
    override_settings(make_settings(f"postgresql+pg8000://ese:ese@127.0.0.1:{free_port()}/ese"))
    bootstrap.reset()
    response = inbound.post(message("STOP"))
    assert response.status_code == 503
