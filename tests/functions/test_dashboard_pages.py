"""Dashboard pages and forms through the `api` function, on real PostgreSQL: what an operator sees and
what each form changes."""

from __future__ import annotations

import base64
import csv
import io
import json
import re
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, text

from infra.bench.figures.dashboard import PAGES_TO_BENCH
from shared import bootstrap
from shared.bootstrap import Runtime
from shared.config import Settings
from tests.functions.dashboard_client import DashboardClient, operator, visitor

__all__ = ["operator", "visitor"]

PHONE = "+14155550100"
HOSTILE = '"><script>alert("owned")</script><img src=x onerror=alert(1)>'


def execute(engine: Engine, sql: str, **params: Any) -> Any:
    with engine.begin() as conn:
        return conn.execute(text(sql), params)


def seed_campaign(engine: Engine, *, status: str = "DRAFT", name: str = "Spring sale") -> int:
    template = execute(
        engine,
        "INSERT INTO templates (name, content) VALUES (:n, 'Hi {first_name|there}') RETURNING id",
        n=name,
    ).scalar_one()
    segment = execute(
        engine,
        "INSERT INTO segments (name, definition) VALUES (:n, CAST(:d AS jsonb)) RETURNING id",
        n=name,
        d=json.dumps({"attribute": "city", "operator": "equals", "value": "Lima"}),
    ).scalar_one()
    return int(
        execute(
            engine,
            "INSERT INTO campaigns (name, template_id, segment_id, status) VALUES (:n, :t, :s, :st) RETURNING id",
            n=name,
            t=template,
            s=segment,
            st=status,
        ).scalar_one()
    )


def seed_user(engine: Engine, phone: str = PHONE, consent: str = "OPT_IN", **attributes: Any) -> None:
    execute(
        engine,
        "INSERT INTO users (phone_e164, consent_state, attributes) VALUES (:p, :c, CAST(:a AS jsonb))",
        p=phone,
        c=consent,
        a=json.dumps(attributes),
    )


def seed_message(engine: Engine, campaign_id: int, phone: str, status: str, **values: Any) -> int:
    columns = ", ".join(["campaign_id", "recipient_phone", "status", *values])
    params = ", ".join([":campaign_id", ":phone", ":status", *(f":{k}" for k in values)])
    return int(
        execute(
            engine,
            f"INSERT INTO messages ({columns}) VALUES ({params}) RETURNING id",
            campaign_id=campaign_id,
            phone=phone,
            status=status,
            **values,
        ).scalar_one()
    )


def page_text(response: Any) -> str:
    assert response.status_code == 200, response.get_data(as_text=True)[:2000]
    return str(response.get_data(as_text=True))


def test_hostile_attribute_value_is_shown_as_text(operator: DashboardClient, engine: Engine) -> None:
    seed_user(engine, city=HOSTILE, **{"<b>name</b>": "x"})
    for path in (f"/ui/users/{PHONE}", "/ui/users"):
        html = page_text(operator.get(path))
        assert "<script>alert" not in html
        assert "<img src=x" not in html
        assert "&lt;script&gt;alert(&#34;owned&#34;)&lt;/script&gt;" in html
        assert "&lt;b&gt;name&lt;/b&gt;" in html


def test_every_benchmarked_page_renders(operator: DashboardClient, engine: Engine) -> None:
    seed_user(engine, city="Lima")
    campaign_id = seed_campaign(engine, status="RUNNING")
    message_id = seed_message(engine, campaign_id, PHONE, "SENT", sent_at=datetime.now(UTC))
    ids = {"campaign_id": campaign_id, "message_id": message_id, "phone": PHONE}
    for path in PAGES_TO_BENCH:
        response = operator.get(path.format(**ids))
        assert "Event Stream Engine" in page_text(response), path
        # make bench reads each page's server time from this header.
        assert re.fullmatch(r"app;dur=\d+\.\d", response.headers["Server-Timing"]), path


def test_overview_counts_and_charts_the_last_hour(operator: DashboardClient, engine: Engine) -> None:
    seed_user(engine)
    seed_user(engine, "+14155550101", consent="STOP")
    campaign_id = seed_campaign(engine, status="RUNNING")
    now = datetime.now(UTC)
    seed_message(
        engine, campaign_id, PHONE, "DELIVERED", sent_at=now - timedelta(minutes=3), delivered_at=now
    )
    seed_message(engine, campaign_id, "+14155550101", "SENT", sent_at=now - timedelta(minutes=3))
    html = page_text(operator.get("/ui/"))
    assert re.search(r'id="opted-in">1<', html)
    assert re.search(r'id="active-campaigns">1<', html)
    assert "Sends per minute · peak 2 · total 2" in html
    assert html.count('class="bar"') == 1


def test_campaign_form_shows_each_problem_next_to_its_field(
    operator: DashboardClient, engine: Engine
) -> None:
    response = operator.post_form(
        "/ui/campaigns/new",
        {"name": "", "template_id": "", "segment_id": "999", "rate_limit_per_second": "0", "timezone": "UTC"},
        form_page="/ui/campaigns/new",
    )
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    for field in ("name", "template_id", "rate_limit_per_second"):
        assert f'id="{field}-error"' in html, field
    assert execute(engine, "SELECT count(*) FROM campaigns").scalar_one() == 0


def test_campaign_form_refuses_an_unknown_timezone_under_that_field(
    operator: DashboardClient, engine: Engine
) -> None:
    campaign_id = seed_campaign(engine)
    ids = execute(engine, "SELECT template_id, segment_id FROM campaigns WHERE id = :i", i=campaign_id).one()
    response = operator.post_form(
        "/ui/campaigns/new",
        {
            "name": "x",
            "template_id": ids[0],
            "segment_id": ids[1],
            "timezone": "Mars/Base",
            "rate_limit_per_second": "5",
        },
        form_page="/ui/campaigns/new",
    )
    assert response.status_code == 400
    assert re.search(r'id="timezone-error">unknown timezone', response.get_data(as_text=True))


def test_campaign_created_through_the_form_reads_its_schedule_in_its_timezone(
    operator: DashboardClient, engine: Engine
) -> None:
    existing = seed_campaign(engine)
    template_id, segment_id = execute(
        engine, "SELECT template_id, segment_id FROM campaigns WHERE id = :i", i=existing
    ).one()
    response = operator.post_form(
        "/ui/campaigns/new",
        {
            "name": "Evening push",
            "template_id": str(template_id),
            "segment_id": str(segment_id),
            "schedule_time": "2030-01-15T18:30",
            "rate_limit_per_second": "12",
            "quiet_hours_start": "22:00",
            "quiet_hours_end": "08:00",
            "timezone": "America/Lima",
        },
        form_page="/ui/campaigns/new",
    )
    assert response.status_code == 302
    row = execute(
        engine,
        "SELECT id, status, schedule_time, rate_limit_per_second, quiet_hours_start::text, timezone"
        " FROM campaigns WHERE name = 'Evening push'",
    ).one()
    assert response.headers["Location"] == f"/ui/campaigns/{row.id}?notice=created"
    assert row.status == "DRAFT"
    assert row.schedule_time == datetime(2030, 1, 15, 23, 30, tzinfo=UTC)  # Lima is UTC-5
    assert (row.rate_limit_per_second, row.quiet_hours_start, row.timezone) == (
        12,
        "22:00:00",
        "America/Lima",
    )


class NoPagesPublisher:
    """A READY campaign has no pages yet: resuming it must publish nothing."""

    def publish(self, payloads: Sequence[bytes]) -> None:
        raise AssertionError(f"published {len(payloads)} page(s) for a campaign that has not started")


@pytest.fixture
def no_publishing(settings: Settings) -> Iterator[None]:
    bootstrap.install(Runtime(publisher=NoPagesPublisher()))
    yield
    bootstrap.reset()


@pytest.mark.usefixtures("no_publishing")
def test_pause_and_resume_buttons_move_a_ready_campaign(operator: DashboardClient, engine: Engine) -> None:
    campaign_id = seed_campaign(engine, status="READY")
    detail = f"/ui/campaigns/{campaign_id}"
    response = operator.post_form(f"{detail}/pause", {}, form_page=detail)
    assert response.headers["Location"] == f"{detail}?notice=paused"
    assert execute(engine, "SELECT status FROM campaigns").scalar_one() == "PAUSED"
    assert "action-resume" in page_text(operator.get(detail))
    operator.post_form(f"{detail}/resume", {}, form_page=detail)
    assert execute(engine, "SELECT status FROM campaigns").scalar_one() == "READY"


def test_refused_transition_says_why(operator: DashboardClient, engine: Engine) -> None:
    campaign_id = seed_campaign(engine, status="COMPLETED")
    detail = f"/ui/campaigns/{campaign_id}"
    response = operator.post_form(f"{detail}/pause", {}, form_page=detail)
    assert response.status_code == 409
    assert "cannot pause a campaign that is COMPLETED" in response.get_data(as_text=True)


def seed_half_done_campaign(engine: Engine) -> int:
    """A running campaign to 4 recipients: 1 delivered, 1 failed, 1 queued, 1 not fanned out yet."""
    campaign_id = seed_campaign(engine, status="RUNNING")
    execute(
        engine,
        "INSERT INTO campaign_pages (campaign_id, page_no, first_phone, last_phone, size)"
        " VALUES (:c, 0, '+14155550100', '+14155550103', 4)",
        c=campaign_id,
    )
    for n, status in enumerate(("DELIVERED", "FAILED", "QUEUED")):
        phone = f"+1415555010{n}"
        seed_user(engine, phone)
        sid = None if status == "QUEUED" else f"SM{n:032d}"
        seed_message(engine, campaign_id, phone, status, provider_sid=sid)
    return campaign_id


def test_campaign_list_shows_progress_and_delivery_rate(operator: DashboardClient, engine: Engine) -> None:
    seed_half_done_campaign(engine)
    html = page_text(operator.get("/ui/campaigns"))
    assert 'value="50.0"' in html  # 2 of 4 recipients done
    assert "2 / 4 · RUNNING" in html
    assert "50.0%" in html  # 1 delivered of 2 handed to Twilio


def test_campaign_detail_shows_the_same_progress_as_the_list(
    operator: DashboardClient, engine: Engine
) -> None:
    campaign_id = seed_half_done_campaign(engine)
    html = page_text(operator.get(f"/ui/campaigns/{campaign_id}"))
    assert 'value="50.0"' in html  # 2 of 4 recipients done
    assert "2 / 4 · RUNNING" in html


def test_campaign_detail_explains_failures_and_links_each_message(
    operator: DashboardClient, engine: Engine
) -> None:
    campaign_id = seed_campaign(engine, status="COMPLETED")
    seed_user(engine)
    seed_user(engine, "+14155550101")
    failed = seed_message(engine, campaign_id, PHONE, "FAILED", error_code=63016)
    seed_message(
        engine,
        campaign_id,
        "+14155550101",
        "SKIPPED",
        status_reason="missing template variable(s): first_name",
    )
    html = page_text(operator.get(f"/ui/campaigns/{campaign_id}"))
    assert "outside the 24-hour window: only an approved template (content_sid) may be sent" in html
    assert "skipped: missing template variable(s): first_name" in html
    assert f'href="/ui/messages/{failed}"' in html
    filtered = page_text(operator.get(f"/ui/campaigns/{campaign_id}?status=SKIPPED"))
    assert f'href="/ui/messages/{failed}"' not in filtered


def test_message_page_shows_receipts_and_audit_trail(operator: DashboardClient, engine: Engine) -> None:
    campaign_id = seed_campaign(engine, status="RUNNING")
    seed_user(engine)
    message_id = seed_message(engine, campaign_id, PHONE, "DELIVERED", provider_sid="SM" + "1" * 32)
    execute(
        engine,
        "INSERT INTO delivery_receipts (message_sid, message_status, message_id, raw_payload)"
        " VALUES (:s, 'delivered', :m, '{}'::jsonb)",
        s="SM" + "1" * 32,
        m=message_id,
    )
    execute(
        engine,
        "INSERT INTO audit_events (kind, campaign_id, message_id, source, detail)"
        " VALUES ('message.deferred', :c, :m, 'fanout', '{\"reason\": \"quiet hours\"}'::jsonb)",
        c=campaign_id,
        m=message_id,
    )
    html = page_text(operator.get(f"/ui/messages/{message_id}"))
    trail = html.split('id="audit-trail"')[1].split("</table>")[0]
    assert "message.deferred" in trail and "quiet hours" in trail
    receipts = html.split('id="receipts"')[1].split("</table>")[0]
    assert "delivered" in receipts


def test_consent_change_is_audited_and_listed_in_the_history(
    operator: DashboardClient, engine: Engine
) -> None:
    seed_user(engine)
    page = f"/ui/users/{PHONE}"
    response = operator.post_form(
        f"{page}/consent", {"consent_state": "OPT_OUT", "reason": "asked by phone"}, form_page=page
    )
    assert response.headers["Location"] == f"/ui/users/{PHONE}?notice=consent"
    html = page_text(operator.get(page))
    assert re.search(r'id="consent-badge">OPT_OUT<', html)
    history = html.split('id="consent-history"')[1]
    assert "OPT_IN" in history and "asked by phone" in history and ">dashboard<" in history


def test_search_by_phone_in_national_format_opens_the_user(operator: DashboardClient, engine: Engine) -> None:
    seed_user(engine)
    response = operator.get("/ui/users?q=(415) 555-0100")
    assert response.status_code == 302
    assert response.headers["Location"] == "/ui/users/+14155550100"


def test_search_by_attribute_lists_matching_users(operator: DashboardClient, engine: Engine) -> None:
    seed_user(engine, city="Lima")
    seed_user(engine, "+14155550101", city="Quito")
    html = page_text(operator.get("/ui/users?q=lima"))
    assert PHONE in html and "+14155550101" not in html


def test_import_reports_rejected_rows_as_a_downloadable_csv(
    operator: DashboardClient, engine: Engine
) -> None:
    upload = b"phone,first_name,consent_state\n+14155550100,Ana,OPT_IN\nnot-a-phone,Bo,OPT_IN\n=cmd(),Cy,\n"
    response = operator.post(
        "/ui/users/import",
        data={
            "file": (io.BytesIO(upload), "users.csv", "text/csv"),
            "csrf_token": operator.csrf_from("/ui/users/import"),
        },
        content_type="multipart/form-data",
    )
    html = page_text(response)
    assert re.search(r'id="inserted">1<', html) and re.search(r'id="rejected">2<', html)
    link = re.search(r'id="rejected-download"', html) and re.search(
        r'href="data:text/csv;base64,([^"]+)"', html
    )
    assert link
    rows = list(csv.reader(io.StringIO(base64.b64decode(link.group(1)).decode())))
    assert rows[0] == ["row", "value", "reason"]
    assert [row[:2] for row in rows[1:]] == [["2", "not-a-phone"], ["3", "'=cmd()"]]
    assert execute(engine, "SELECT attributes->>'first_name' FROM users").scalar_one() == "Ana"


@pytest.mark.parametrize(
    ("written", "exported"),
    [
        ("=cmd()", "'=cmd()"),
        ("+1-cmd()", "'+1-cmd()"),
        ("-2+cmd()", "'-2+cmd()"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=cmd()", "'\t=cmd()"),
        ("\r=cmd()", "'\r=cmd()"),
        ("  =cmd()", "'  =cmd()"),
        ("not a phone", "not a phone"),
    ],
)
def test_rejected_rows_export_neutralises_every_formula_start(
    operator: DashboardClient, written: str, exported: str
) -> None:
    upload = io.StringIO()
    csv.writer(upload).writerows([["phone", "first_name"], [written, "Ana"]])
    response = operator.post(
        "/ui/users/import",
        data={
            "file": (io.BytesIO(upload.getvalue().encode()), "users.csv", "text/csv"),
            "csrf_token": operator.csrf_from("/ui/users/import"),
        },
        content_type="multipart/form-data",
    )
    link = re.search(r'href="data:text/csv;base64,([^"]+)"', page_text(response))
    assert link
    rows = list(csv.reader(io.StringIO(base64.b64decode(link.group(1)).decode(), newline="")))
    assert rows[1][:2] == ["1", exported]


def test_template_form_refuses_bad_braces_under_the_content_field(
    operator: DashboardClient, engine: Engine
) -> None:
    response = operator.post_form(
        "/ui/templates", {"name": "greeting", "content": "Hi {first_name"}, form_page="/ui/templates"
    )
    assert response.status_code == 400
    assert 'id="content-error"' in response.get_data(as_text=True)
    assert execute(engine, "SELECT count(*) FROM templates").scalar_one() == 0


def test_template_created_through_the_form_lists_its_variables(operator: DashboardClient) -> None:
    response = operator.post_form(
        "/ui/templates",
        {"name": "greeting", "content": "Hi {first_name|there}, your order {order_id} ships"},
        form_page="/ui/templates",
    )
    assert response.status_code == 302
    html = page_text(operator.get("/ui/templates"))
    assert "<code>first_name</code> <code>order_id</code>" in html


def test_template_variables_are_listed_live_from_the_domain_parser(operator: DashboardClient) -> None:
    response = operator.post_form(
        "/ui/templates/variables", {"content": "{a} and {b|x} and {a}"}, form_page="/ui/templates"
    )
    assert response.get_json() == {"variables": ["a", "b"], "error": None}


def test_segment_preview_gives_size_and_sample_of_opted_in_users(
    operator: DashboardClient, engine: Engine
) -> None:
    seed_user(engine, city="Lima")
    seed_user(engine, "+14155550101", city="Lima", consent="STOP")
    seed_user(engine, "+14155550102", city="Quito")
    definition = json.dumps({"attribute": "city", "operator": "equals", "value": "Lima"})
    response = operator.post_form(
        "/ui/segments/preview", {"definition": definition}, form_page="/ui/segments"
    )
    assert response.get_json() == {"audience_size": 1, "sample": [PHONE]}


def test_segment_form_points_at_the_bad_node(operator: DashboardClient, engine: Engine) -> None:
    definition = json.dumps(
        {"operator": "AND", "conditions": [{"attribute": "a", "operator": "like", "value": 1}]}
    )
    response = operator.post_form(
        "/ui/segments", {"name": "bad", "definition": definition}, form_page="/ui/segments"
    )
    assert response.status_code == 400
    error = re.search(r'id="definition-error">([^<]*)<', response.get_data(as_text=True))
    assert error and "conditions[0]" in error.group(1)
    assert execute(engine, "SELECT count(*) FROM segments").scalar_one() == 0


def test_campaign_form_counts_the_chosen_segments_audience(operator: DashboardClient, engine: Engine) -> None:
    seed_user(engine, city="Lima")
    campaign_id = seed_campaign(engine)
    segment_id = execute(engine, "SELECT segment_id FROM campaigns WHERE id = :i", i=campaign_id).scalar_one()
    assert operator.get(f"/ui/segments/{segment_id}/audience").get_json() == {"audience_size": 1}


def test_monitoring_masks_inbound_phones_and_explains_errors(
    operator: DashboardClient, engine: Engine
) -> None:
    execute(
        engine,
        "INSERT INTO events_inbound (message_sid, from_phone, body, raw_payload, outcome)"
        " VALUES ('SM1', :p, 'call me on +14155550199', '{}'::jsonb, 'none')",
        p=PHONE,
    )
    campaign_id = seed_campaign(engine, status="RUNNING")
    seed_user(engine)
    seed_message(engine, campaign_id, PHONE, "FAILED", error_code=30005)
    html = page_text(operator.get("/ui/monitoring"))
    assert PHONE not in html and "+14155550199" not in html
    assert "+***0100" in html and "+***0199" in html
    assert "unknown destination: the number does not exist" in html


@pytest.mark.parametrize("path", ["/ui/campaigns/999999", "/ui/messages/999999", "/ui/users/+14155550177"])
def test_missing_rows_are_a_404_page(operator: DashboardClient, path: str) -> None:
    response = operator.get(path)
    assert response.status_code == 404
    assert "does not exist" in response.get_data(as_text=True)
