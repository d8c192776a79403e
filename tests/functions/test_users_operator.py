"""Operator completeness for users, through the doors: the API (consent needs a reason, leaving STOP needs
evidence, audited with the operator; the conversation endpoint), the dashboard (add a user, edit
attributes, change consent, topics, the timeline on the user page) and the signed inbound webhook (Twilio's
WhatsApp fields, the normalised body, the channel and the message it answers), on real PostgreSQL."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, text

from shared.domain.consent_rules import operator_id
from tests.conftest import API_TOKEN
from tests.functions.api_client import ApiClient, api, error_of
from tests.functions.dashboard_client import DashboardClient, operator, visitor
from tests.functions.twilio_webhook_client import (
    TwilioWebhookClient,
    fetch_one,
    inbound,
    inbound_form,
    seed_campaign_message,
)

__all__ = ["api", "inbound", "operator", "visitor"]

PHONE = "+14155552671"
OTHER = "+14155552672"


def _execute(engine: Engine, sql: str, **params: Any) -> Any:
    with engine.begin() as conn:
        return conn.execute(text(sql), params)


def _consent_audits(engine: Engine, phone: str = PHONE) -> list[tuple[str, dict[str, Any]]]:
    rows = _execute(
        engine,
        "SELECT source, detail FROM audit_events WHERE kind = 'consent.changed' AND user_phone = :p ORDER BY id",
        p=phone,
    ).all()
    return [(r.source, r.detail) for r in rows]


def _user(engine: Engine, consent: str = "OPT_OUT", phone: str = PHONE, **attributes: Any) -> None:
    _execute(
        engine,
        "INSERT INTO users (phone_e164, consent_state, attributes) VALUES (:p, :c, CAST(:a AS jsonb))",
        p=phone,
        c=consent,
        a=__import__("json").dumps(attributes),
    )


# --- API ---


def test_api_consent_without_a_reason_is_400_naming_it_and_changes_nothing(
    api: ApiClient, engine: Engine
) -> None:
    _user(engine)
    for body in ({"consent_state": "OPT_IN"}, {"consent_state": "OPT_IN", "reason": "  "}):
        response = api.put(f"/v1/users/{PHONE}/consent", json=body)
        assert response.status_code == 400
        assert [e["field"] for e in error_of(response)["details"]["errors"]] == ["body.reason"]
    assert _consent_audits(engine) == []


def test_api_refuses_to_re_opt_in_after_stop_without_evidence_and_audits_it_with_evidence(
    api: ApiClient, engine: Engine
) -> None:
    _user(engine, consent="STOP")
    refused = api.put(f"/v1/users/{PHONE}/consent", json={"consent_state": "OPT_IN", "reason": "called us"})

    assert refused.status_code == 409
    error = error_of(refused)
    assert (error["code"], error["details"]["field"]) == ("consent_refused", "evidence")
    assert "STOP" in error["message"]
    assert api.get(f"/v1/users/{PHONE}").get_json()["consent_state"] == "STOP"

    allowed = api.put(
        f"/v1/users/{PHONE}/consent",
        json={"consent_state": "OPT_IN", "reason": "called us", "evidence": "recorded call 2026-12-01"},
    )
    assert allowed.status_code == 200 and allowed.get_json()["consent_state"] == "OPT_IN"
    assert _consent_audits(engine) == [
        (
            "api",
            {
                "from": "STOP",
                "to": "OPT_IN",
                "reason": "called us",
                "evidence": "recorded call 2026-12-01",
                "operator": operator_id(API_TOKEN),
                "phone": "+***2671",
            },
        )
    ]


def test_api_conversation_is_newest_first_paginated_and_404_for_nobody(
    api: ApiClient, engine: Engine
) -> None:
    message_id = seed_campaign_message(engine, PHONE, status="READ", provider_sid="SM" + "a" * 32)
    _execute(engine, "UPDATE messages SET sent_at = now() - interval '1 hour' WHERE id = :i", i=message_id)
    _execute(
        engine,
        "INSERT INTO events_inbound (message_sid, from_phone, body, raw_payload, outcome, channel,"
        " in_reply_to_message_id, received_at) VALUES ('SM1', :p, 'Thanks', '{}', 'none', 'whatsapp', :m, now())",
        p=PHONE,
        m=message_id,
    )

    first = api.get(f"/v1/users/{PHONE.removeprefix('+1')}/conversation?limit=1").get_json()
    second = api.get(f"/v1/users/{PHONE}/conversation?limit=1&cursor={first['next_cursor']}").get_json()

    [reply] = first["items"]
    [sent] = second["items"]
    assert (reply["kind"], reply["body"], reply["in_reply_to_message_id"], reply["channel"]) == (
        "inbound",
        "Thanks",
        message_id,
        "whatsapp",
    )
    assert (sent["kind"], sent["id"], sent["status"], sent["campaign_name"]) == (
        "outbound",
        message_id,
        "READ",
        "c",
    )
    assert second["next_cursor"] is None
    assert api.get(f"/v1/users/{OTHER}/conversation").status_code == 404
    bad = api.get(f"/v1/users/{PHONE}/conversation?cursor=nonsense")
    assert bad.status_code == 400 and error_of(bad)["details"]["field"] == "cursor"


# --- dashboard ---


def test_dashboard_adds_a_user_in_any_phone_format_with_consent_and_its_reason(
    operator: DashboardClient, engine: Engine
) -> None:
    response = operator.post_form(
        "/ui/users/new",
        {
            "phone": "(415) 555-2671",
            "attributes": '{"first_name": "Ada", "age": 36}',
            "consent_state": "OPT_IN",
            "reason": "signed up in store",
        },
        form_page="/ui/users/new",
    )

    assert response.status_code == 302 and response.headers["Location"] == f"/ui/users/{PHONE}?notice=created"
    row = fetch_one(engine, "SELECT consent_state, attributes FROM users WHERE phone_e164 = :p", p=PHONE)
    assert (row.consent_state, row.attributes) == ("OPT_IN", {"first_name": "Ada", "age": 36})
    [(source, detail)] = _consent_audits(engine)
    assert (source, detail["reason"], detail["operator"], detail["created"]) == (
        "dashboard",
        "signed up in store",
        operator_id(API_TOKEN),
        True,
    )


@pytest.mark.parametrize(
    ("form", "field", "says"),
    [
        ({"phone": "12", "consent_state": "OPT_OUT"}, "phone", "invalid phone number"),
        ({"phone": PHONE, "attributes": "[1, 2]", "consent_state": "OPT_OUT"}, "attributes", "JSON object"),
        ({"phone": PHONE, "attributes": '{"timezone": "Mars/Base"}'}, "timezone", "Mars/Base"),
        ({"phone": PHONE, "consent_state": "OPT_IN", "reason": ""}, "reason", "at least 1 character"),
    ],
    ids=["phone", "attributes", "timezone", "reason"],
)
def test_dashboard_add_user_refusals_name_the_field_and_write_nothing(
    operator: DashboardClient, engine: Engine, form: dict[str, str], field: str, says: str
) -> None:
    response = operator.post_form("/ui/users/new", form, form_page="/ui/users/new")

    assert response.status_code == 400
    html = response.get_data(as_text=True)
    match = re.search(rf'id="{field}-error">([^<]*)<', html)
    assert match is not None and says in match.group(1)
    assert _execute(engine, "SELECT count(*) FROM users").scalar_one() == 0


def test_dashboard_refuses_a_phone_already_taken(operator: DashboardClient, engine: Engine) -> None:
    _user(engine)
    response = operator.post_form("/ui/users/new", {"phone": PHONE}, form_page="/ui/users/new")
    assert response.status_code == 400 and "already exists" in response.get_data(as_text=True)


def test_dashboard_sets_changes_and_removes_attributes_as_the_api_would(
    operator: DashboardClient, engine: Engine
) -> None:
    _user(engine, city="Lima", plan="free")
    page = f"/ui/users/{PHONE}"
    for data in (
        {"key": "age", "value": "36", "type": "number"},
        {"key": "vip", "value": "true", "type": "boolean"},
        {"key": "city", "value": "Cusco"},
    ):
        assert operator.post_form(f"{page}/attributes", data, form_page=page).status_code == 302
    assert operator.post_form(f"{page}/attributes/remove", {"key": "plan"}, form_page=page).status_code == 302

    attributes = fetch_one(engine, "SELECT attributes FROM users WHERE phone_e164 = :p", p=PHONE)[0]
    assert attributes == {"city": "Cusco", "age": 36, "vip": True}
    for data, field in (
        ({"key": "timezone", "value": "Mars/Base"}, "timezone"),
        ({"key": "age", "value": "old", "type": "number"}, "value"),
        ({"key": "age", "value": "NaN", "type": "number"}, "value"),
        ({"key": "age", "value": "-inf", "type": "number"}, "value"),
        ({"key": "vip", "value": "yes", "type": "boolean"}, "value"),
        ({"key": " ", "value": "x"}, "key"),
    ):
        refused = operator.post_form(f"{page}/attributes", data, form_page=page)
        assert refused.status_code == 400 and f'id="{field}-error"' in refused.get_data(as_text=True)
    assert fetch_one(engine, "SELECT attributes FROM users WHERE phone_e164 = :p", p=PHONE)[0] == attributes


def test_dashboard_consent_needs_a_reason_refuses_leaving_stop_without_evidence_and_audits(
    operator: DashboardClient, engine: Engine
) -> None:
    _user(engine, consent="STOP")
    page = f"/ui/users/{PHONE}"

    no_reason = operator.post_form(f"{page}/consent", {"consent_state": "OPT_IN"}, form_page=page)
    no_evidence = operator.post_form(
        f"{page}/consent", {"consent_state": "OPT_IN", "reason": "asked"}, form_page=page
    )
    assert no_reason.status_code == 400 and 'id="reason-error"' in no_reason.get_data(as_text=True)
    assert no_evidence.status_code == 409
    assert re.search(r'id="evidence-error">[^<]*STOP', no_evidence.get_data(as_text=True))
    assert _consent_audits(engine) == []

    done = operator.post_form(
        f"{page}/consent",
        {"consent_state": "OPT_IN", "reason": "asked", "evidence": "form #9"},
        form_page=page,
    )
    assert done.status_code == 302
    history = operator.get(page).get_data(as_text=True).split('id="consent-history"')[1].split("</table>")[0]
    assert all(
        text in history for text in (">STOP<", ">OPT_IN<", ">dashboard<", operator_id(API_TOKEN), "form #9")
    )


def test_dashboard_subscribes_and_unsubscribes_topics(operator: DashboardClient, engine: Engine) -> None:
    _user(engine)
    page = f"/ui/users/{PHONE}"
    for topic in ("news", "deals"):
        assert operator.post_form(f"{page}/topics", {"topic": topic}, form_page=page).status_code == 302
    assert operator.post_form(f"{page}/topics/remove", {"topic": "news"}, form_page=page).status_code == 302
    bad = operator.post_form(f"{page}/topics", {"topic": " padded "}, form_page=page)

    assert bad.status_code == 400 and 'id="topic-error"' in bad.get_data(as_text=True)
    topics = (
        _execute(engine, "SELECT topic FROM subscriptions WHERE user_phone = :p", p=PHONE).scalars().all()
    )
    assert topics == ["deals"]


def test_every_user_form_needs_the_csrf_token(operator: DashboardClient, engine: Engine) -> None:
    _user(engine)
    for path, data in (
        ("/ui/users/new", {"phone": OTHER}),
        (f"/ui/users/{PHONE}/attributes", {"key": "a", "value": "b"}),
        (f"/ui/users/{PHONE}/attributes/remove", {"key": "a"}),
        (f"/ui/users/{PHONE}/topics", {"topic": "news"}),
        (f"/ui/users/{PHONE}/topics/remove", {"topic": "news"}),
    ):
        assert operator.post(path, data=data).status_code == 403, path
    assert _execute(engine, "SELECT count(*) FROM users").scalar_one() == 1


def test_the_user_page_shows_the_conversation_newest_first_and_pages_it(
    operator: DashboardClient, engine: Engine
) -> None:
    message_id = seed_campaign_message(engine, PHONE, status="DELIVERED", provider_sid="SM" + "b" * 32)
    _execute(engine, "UPDATE messages SET sent_at = now() - interval '2 hours' WHERE id = :i", i=message_id)
    for n in range(55):
        _execute(
            engine,
            "INSERT INTO events_inbound (message_sid, from_phone, body, raw_payload, outcome, profile_name,"
            " in_reply_to_message_id, received_at)"
            " VALUES (:s, :p, :b, '{}', 'none', 'Ana', :m, now() - :n * interval '1 second')",
            s=f"SM{n}",
            p=PHONE,
            b=f"reply {n}",
            m=message_id,
            n=n,
        )

    html = operator.get(f"/ui/users/{PHONE}").get_data(as_text=True)
    timeline = html.split('id="conversation"')[1]
    assert timeline.index("reply 0 <") < timeline.index("reply 1 <") and "reply 50 <" not in timeline
    assert f'answers <a href="/ui/messages/{message_id}">message {message_id}</a>' in timeline
    older = re.search(r'href="(/ui/users/[^"]+before=[^"]+)">Older', html)
    assert older is not None
    rest = (
        operator.get(older.group(1).replace("&amp;", "&"))
        .get_data(as_text=True)
        .split('id="conversation"')[1]
    )
    assert "reply 54 <" in rest and f'data-message-id="{message_id}"' in rest and "reply 49 <" not in rest


# --- the signed inbound webhook ---


def _form(body: str, sender: str = f"whatsapp:{PHONE}", **extra: str) -> dict[str, str]:
    return inbound_form(body, sender, **extra)


def _event(engine: Engine, sid: str) -> Any:
    return fetch_one(
        engine,
        "SELECT wa_id, profile_name, body, body_normalized, channel, in_reply_to_message_id"
        " FROM events_inbound WHERE message_sid = :s",
        s=sid,
    )


def test_signed_whatsapp_inbound_stores_wa_id_profile_name_normalised_body_and_the_answered_message(
    inbound: TwilioWebhookClient, engine: Engine
) -> None:
    answered = seed_campaign_message(engine, PHONE, status="READ", provider_sid="SM" + "c" * 32)
    older = seed_campaign_message(engine, PHONE, status="READ", provider_sid="SM" + "d" * 32)
    too_old = seed_campaign_message(engine, OTHER, status="READ", provider_sid="SM" + "e" * 32)
    for message_id, ago in (
        (answered, timedelta(hours=1)),
        (older, timedelta(hours=5)),
        (too_old, timedelta(hours=73)),
    ):
        _execute(
            engine,
            "UPDATE messages SET sent_at = now() - CAST(:a AS interval) WHERE id = :i",
            a=ago,
            i=message_id,
        )

    mine = _form("  When does the SALE end?  ", WaId=PHONE[1:], ProfileName="Ana María")
    theirs = _form("hello", sender=f"whatsapp:{OTHER}", WaId=OTHER[1:], ProfileName="Bo")
    assert inbound.post(mine).status_code == 200 and inbound.post(theirs).status_code == 200

    assert tuple(_event(engine, mine["MessageSid"])) == (
        PHONE[1:],
        "Ana María",
        "When does the SALE end?",
        "when does the sale end?",
        "whatsapp",
        answered,
    )
    assert tuple(_event(engine, theirs["MessageSid"]))[4:] == ("whatsapp", None)


def test_signed_sms_inbound_has_the_sms_channel_and_no_whatsapp_fields(
    inbound: TwilioWebhookClient, engine: Engine
) -> None:
    form = _form("Hi", sender=PHONE)
    assert inbound.post(form).status_code == 200
    assert tuple(_event(engine, form["MessageSid"])) == (None, None, "Hi", "hi", "sms", None)
