"""The campaign page's analytics and the per-recipient CSV through the dashboard, on real PostgreSQL."""

from __future__ import annotations

import csv
import html as html_module
import io
import re
from datetime import timedelta

from sqlalchemy import Engine, text

from tests.functions.dashboard_client import DashboardClient, operator, visitor
from tests.functions.test_api_campaign_analytics import seed_ledger
from tests.seeding import T0

__all__ = ["operator", "visitor"]


def test_the_campaign_page_shows_the_analytics_and_a_per_minute_chart(
    operator: DashboardClient, engine: Engine
) -> None:
    campaign_id, phones = seed_ledger(engine)
    with engine.begin() as conn:  # a third send two minutes later, a rate-limit deferral, a reply
        conn.execute(
            text(
                "UPDATE messages SET status = 'SENT', provider_sid = 'SMc', sent_at = :at,"
                " rate_limit_deferrals = 1, rate_limit_wait_seconds = 90 WHERE recipient_phone = :p"
            ),
            {"at": T0 + timedelta(minutes=2, seconds=5), "p": phones[3]},
        )
        conn.execute(
            text(
                "INSERT INTO events_inbound (message_sid, from_phone, body, raw_payload, outcome, received_at)"
                " VALUES ('SMreply', :p, 'thanks', '{}', 'none', :at)"
            ),
            {"p": phones[1], "at": T0 + timedelta(minutes=3)},
        )

    response = operator.get(f"/ui/campaigns/{campaign_id}")
    assert response.status_code == 200
    page = html_module.unescape(response.get_data(as_text=True))

    assert re.search(r'id="funnel-audience">4<', page)
    assert re.search(r'id="funnel-sent">3<', page)
    assert re.search(r'id="funnel-delivered">2<', page) and "66.7% of sent" in page
    assert re.search(r'id="funnel-read">1<', page) and "33.3% of sent" in page
    # The chart: one bar per minute from the first send's minute to the last's, the empty one drawn as none.
    chart = page[page.index('id="send-rate"') :]
    chart = chart[: chart.index("</figure>")]
    assert "<svg" in chart and chart.count('class="bar"') == 2 and "Sends per minute" in chart
    assert "12:00:00 UTC: 2 sent" in chart and "12:02:00 UTC: 1 sent" in chart
    assert re.search(r"median 20\.0 s · p90 28\.0 s \(2 messages\)", page)
    assert re.search(r'id="opted-out">1 · 33\.3% of sent', page)
    assert re.search(r'id="replied">1 recipients · 1 messages', page)
    deferrals = page[page.index('id="deferrals"') :]
    assert re.search(r"<td>rate limit</td><td>1</td><td>1</td><td>1\.5 min</td>", deferrals)
    errors = page[page.index('id="error-codes"') :]
    assert "<td>21211</td><td>1</td><td>25.0%</td>" in errors
    assert f'href="/ui/campaigns/{campaign_id}/messages.csv"' in page


def test_the_dashboard_download_is_the_per_recipient_csv_for_operators_only(
    operator: DashboardClient, engine: Engine
) -> None:
    campaign_id, phones = seed_ledger(engine)
    path = f"/ui/campaigns/{campaign_id}/messages.csv"

    response = operator.get(path)

    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [row["recipient_phone"] for row in rows] == phones
    assert operator.get("/ui/campaigns/424242/messages.csv").status_code == 404


def test_a_visitor_cannot_download_the_csv(visitor: DashboardClient, engine: Engine) -> None:
    campaign_id, _ = seed_ledger(engine)
    response = visitor.get(f"/ui/campaigns/{campaign_id}/messages.csv")
    assert response.status_code == 302 and response.headers["Location"].startswith("/ui/signin")
