"""The dashboard's Senders page and the campaign form's pool and cap fields through the `api` function, on
real PostgreSQL: what an operator sees, what each form changes (audited as the dashboard), and each
form's refusals next to their field or row."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import Engine, text

from tests.functions.dashboard_client import DashboardClient, operator, visitor
from tests.seeding import add_campaign, add_sender

__all__ = ["operator", "visitor"]

PAGE = "/ui/senders"
NUMBER = "whatsapp:+14155238886"


def html(response: Any) -> str:
    return str(response.get_data(as_text=True))


def rows(engine: Engine, sql: str, **params: Any) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(text(sql), params))


def test_the_page_needs_sign_in(visitor: DashboardClient) -> None:
    response = visitor.get(PAGE)
    assert response.status_code == 302 and "/ui/signin" in response.headers["Location"]


def test_the_page_shows_each_senders_state_why_and_last_error(
    operator: DashboardClient, engine: Engine
) -> None:
    add_sender(engine, NUMBER, pool="promo")
    paused = add_sender(
        engine,
        "whatsapp:+14155238887",
        pool="promo",
        state="paused",
        paused_reason="error 63018",
        paused_by="twilio",
    )
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE senders SET last_error_code = 63018, last_error_at = now() WHERE id = :id"),
            {"id": paused},
        )
    page = html(operator.get(PAGE))
    assert NUMBER in page and "whatsapp:+14155238887" in page
    row = page.split(f'id="sender-{paused}"', 1)[1].split("</tr>", 1)[0]
    assert "paused" in row and "error 63018" in row and "by twilio" in row
    assert "exceeded its rate" in row  # the error's meaning
    assert 'class="action-resume"' in row
    assert 'href="/ui/senders" aria-current="page"' in page


def test_adding_a_sender_normalises_it_and_audits_the_dashboard(
    operator: DashboardClient, engine: Engine
) -> None:
    response = operator.post_form(
        PAGE, {"address": " +14155238886 ", "pool": "promo", "rate_limit_per_second": "20"}, form_page=PAGE
    )
    assert response.status_code == 302 and "notice=sender_added" in response.headers["Location"]
    assert rows(engine, "SELECT address, pool, rate_limit_per_second FROM senders") == [(NUMBER, "promo", 20)]
    ((source, detail),) = rows(engine, "SELECT source, detail FROM audit_events WHERE kind = 'sender.added'")
    assert source == "dashboard" and detail["operator"].startswith("token:")


@pytest.mark.parametrize(
    ("form", "field"),
    [
        ({"address": "nope", "pool": "p"}, "address"),
        ({"address": NUMBER, "pool": ""}, "pool"),
        ({"address": NUMBER, "pool": "p", "rate_limit_per_second": "900"}, "rate_limit_per_second"),
    ],
)
def test_a_bad_sender_is_shown_next_to_its_field(
    operator: DashboardClient, engine: Engine, form: dict[str, str], field: str
) -> None:
    response = operator.post_form(PAGE, form, form_page=PAGE)
    assert response.status_code == 400
    assert f'id="{field}-error"' in html(response)
    assert rows(engine, "SELECT id FROM senders") == []


def test_a_duplicate_sender_is_409_under_the_address(operator: DashboardClient, engine: Engine) -> None:
    add_sender(engine, NUMBER)
    response = operator.post_form(PAGE, {"address": NUMBER, "pool": "other"}, form_page=PAGE)
    assert response.status_code == 409
    assert re.search(r'id="address-error">[^<]*already is a sender', html(response))


def test_pause_needs_a_reason_and_shows_it_then_resume_clears_it(
    operator: DashboardClient, engine: Engine
) -> None:
    sender_id = add_sender(engine, NUMBER)
    refused = operator.post_form(f"/ui/senders/{sender_id}/pause", {"reason": " "}, form_page=PAGE)
    assert refused.status_code == 400 and f'id="reason-{sender_id}-error"' in html(refused)
    assert rows(engine, "SELECT state FROM senders") == [("active",)]

    paused = operator.post_form(
        f"/ui/senders/{sender_id}/pause", {"reason": "quality rating low"}, form_page=PAGE
    )
    assert paused.status_code == 302
    page = html(operator.get(PAGE + "?notice=sender_paused"))
    assert "quality rating low" in page and "by operator" in page and "Sender paused" in page
    ((source, detail),) = rows(engine, "SELECT source, detail FROM audit_events WHERE kind = 'sender.paused'")
    assert (source, detail["reason"]) == ("dashboard", "quality rating low")

    assert operator.post_form(f"/ui/senders/{sender_id}/resume", {}, form_page=PAGE).status_code == 302
    assert rows(engine, "SELECT state, paused_reason, paused_by FROM senders") == [("active", None, None)]
    assert len(rows(engine, "SELECT id FROM audit_events WHERE kind = 'sender.resumed'")) == 1


def test_an_unknown_sender_is_404(operator: DashboardClient) -> None:
    assert operator.post_form("/ui/senders/999/resume", {}, form_page=PAGE).status_code == 404


def test_a_post_without_the_csrf_token_is_refused(operator: DashboardClient, engine: Engine) -> None:
    response = operator.post(PAGE, data={"address": NUMBER, "pool": "p"})
    assert response.status_code == 403
    assert (
        operator.post("/ui/senders/caps", data={"max_messages": "1", "window_hours": "24"}).status_code == 403
    )
    assert (
        rows(engine, "SELECT id FROM senders")
        == rows(engine, "SELECT window_seconds FROM frequency_caps")
        == []
    )


def test_caps_are_saved_from_rows_and_blank_rows_are_ignored(
    operator: DashboardClient, engine: Engine
) -> None:
    response = operator.post_form(
        "/ui/senders/caps",
        {"max_messages": ["1", "4", ""], "window_hours": ["24", "168", ""]},
        form_page=PAGE,
    )
    assert response.status_code == 302
    assert rows(engine, "SELECT max_messages, window_seconds FROM frequency_caps ORDER BY 2") == [
        (1, 86400),
        (4, 604800),
    ]
    page = html(operator.get(PAGE))
    assert 'name="max_messages" min="1" max="1000" value="4"' in page
    ((source, detail),) = rows(
        engine, "SELECT source, detail FROM audit_events WHERE kind = 'frequency_caps.changed'"
    )
    assert source == "dashboard" and detail["before"] == []


def test_bad_caps_name_their_row(operator: DashboardClient, engine: Engine) -> None:
    same_window = operator.post_form(
        "/ui/senders/caps", {"max_messages": ["1", "2"], "window_hours": ["24", "24"]}, form_page=PAGE
    )
    assert same_window.status_code == 400 and "Cap 2:" in html(same_window)
    out_of_range = operator.post_form(
        "/ui/senders/caps", {"max_messages": ["0"], "window_hours": ["24"]}, form_page=PAGE
    )
    assert out_of_range.status_code == 400 and "Cap 1, max messages" in html(out_of_range)
    assert rows(engine, "SELECT window_seconds FROM frequency_caps") == []


def test_the_campaign_form_offers_pools_and_creates_with_cap_fields(
    operator: DashboardClient, engine: Engine
) -> None:
    add_sender(engine, NUMBER, pool="promo")
    ids = rows(
        engine, "SELECT template_id, segment_id FROM campaigns WHERE id = :id", id=add_campaign(engine)
    )[0]
    form_page = "/ui/campaigns/new"
    assert '<option value="promo" >pool promo</option>' in html(operator.get(form_page))
    response = operator.post_form(
        form_page,
        {
            "name": "pooled",
            "template_id": str(ids.template_id),
            "segment_id": str(ids.segment_id),
            "rate_limit_per_second": "80",
            "timezone": "UTC",
            "quiet_hours": "none",
            "sender_pool": "promo",
            "transactional": "true",
            "frequency_cap_policy": "skip",
            "ends_at": "2099-01-01T10:00",
        },
        form_page=form_page,
    )
    assert response.status_code == 302, html(response)
    (row,) = rows(
        engine,
        "SELECT sender_pool, transactional, frequency_cap_policy, ends_at FROM campaigns WHERE name = 'pooled'",
    )
    assert (row.sender_pool, row.transactional, row.frequency_cap_policy) == ("promo", True, "skip")
    assert row.ends_at.isoformat().startswith("2099-01-01T10:00:00")
    detail = html(operator.get(response.headers["Location"]))
    assert 'id="sender-pool">pool' in detail and "exempt (transactional)" in detail


def test_the_campaign_form_refuses_a_past_end_under_its_field(
    operator: DashboardClient, engine: Engine
) -> None:
    ids = rows(
        engine, "SELECT template_id, segment_id FROM campaigns WHERE id = :id", id=add_campaign(engine)
    )[0]
    response = operator.post_form(
        "/ui/campaigns/new",
        {
            "name": "late",
            "template_id": str(ids.template_id),
            "segment_id": str(ids.segment_id),
            "timezone": "UTC",
            "ends_at": "2001-01-01T10:00",
        },
        form_page="/ui/campaigns/new",
    )
    assert response.status_code == 400 and 'id="ends_at-error"' in html(response)


def test_a_pool_campaign_page_shows_the_caps_effect_and_senders(
    operator: DashboardClient, engine: Engine
) -> None:
    add_sender(engine, NUMBER, pool="promo")
    campaign_id = add_campaign(engine, status="RUNNING", sender_pool="promo")
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO users (phone_e164, consent_state) VALUES ('+14155550100', 'OPT_IN')"))
        conn.execute(
            text(
                "INSERT INTO messages (campaign_id, recipient_phone, status, sender, frequency_cap_deferrals)"
                " VALUES (:c, '+14155550100', 'SENT', :s, 2)"
            ),
            {"c": campaign_id, "s": NUMBER},
        )
    page = html(operator.get(f"/ui/campaigns/{campaign_id}"))
    assert re.search(r'id="cap-deferred">1 messages \(2 deferrals\)', page)
    assert 'id="per-sender"' in page and NUMBER in page.split('id="per-sender"', 1)[1]
