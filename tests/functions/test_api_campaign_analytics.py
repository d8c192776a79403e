"""Campaign analytics through the `api` function: the summary's `analytics` and the streamed per-recipient
CSV (its headers, its rows, its errors, its place in the OpenAPI document)."""

from __future__ import annotations

import csv
import io
import logging
from datetime import timedelta

import pytest
from sqlalchemy import Engine, text

from tests.functions.api_client import ApiClient, api, error_of
from tests.seeding import T0, add_campaign, add_users

__all__ = ["api"]


def seed_ledger(engine: Engine) -> tuple[int, list[str]]:
    """Two delivered messages (10 s and 30 s after sent, one read after 60 s), one failed, one queued,
    and a STOP from the first recipient an hour after its message."""
    phones = add_users(engine, 4)
    campaign_id = add_campaign(engine, status="RUNNING")
    rows = [
        (phones[0], "READ", "SMa", None, T0, T0 + timedelta(seconds=10), T0 + timedelta(seconds=60)),
        (phones[1], "DELIVERED", "SMb", None, T0, T0 + timedelta(seconds=30), None),
        (phones[2], "FAILED", None, 21211, None, None, None),
        (phones[3], "QUEUED", None, None, None, None, None),
    ]
    with engine.begin() as conn:
        for phone, status, sid, code, sent, delivered, read in rows:
            conn.execute(
                text(
                    "INSERT INTO messages (campaign_id, recipient_phone, status, provider_sid, error_code,"
                    " sent_at, delivered_at, read_at) VALUES (:c, :p, :s, :sid, :e, :sent, :d, :r)"
                ),
                {
                    "c": campaign_id,
                    "p": phone,
                    "s": status,
                    "sid": sid,
                    "e": code,
                    "sent": sent,
                    "d": delivered,
                    "r": read,
                },
            )
        conn.execute(
            text(
                "INSERT INTO audit_events (occurred_at, kind, user_phone, source, detail) VALUES"
                ' (:at, \'consent.changed\', :p, \'inbound_keyword\', \'{"from": "OPT_IN", "to": "STOP"}\')'
            ),
            {"at": T0 + timedelta(hours=1), "p": phones[0]},
        )
    return campaign_id, phones


def test_the_summary_carries_the_campaign_analytics(api: ApiClient, engine: Engine) -> None:
    campaign_id, _ = seed_ledger(engine)

    analytics = api.get(f"/v1/campaigns/{campaign_id}/summary").get_json()["analytics"]

    assert analytics["audience"] == 4
    statuses = {s["status"]: (s["count"], s["share_of_audience"]) for s in analytics["statuses"]}
    assert statuses["READ"] == (1, 0.25) and statuses["SKIPPED"] == (0, 0.0)
    (error,) = analytics["error_codes"]
    assert (error["error_code"], error["count"], error["share_of_audience"]) == (21211, 1, 0.25)
    assert "not a valid phone number" in error["meaning"]
    assert analytics["time_to_deliver"] == {"messages": 2, "median_seconds": 20.0, "p90_seconds": 28.0}
    assert analytics["time_to_read"] == {"messages": 1, "median_seconds": 60.0, "p90_seconds": 60.0}
    assert analytics["funnel"] == [
        {"step": "sent", "count": 2, "share_of_sent": 1.0},
        {"step": "delivered", "count": 2, "share_of_sent": 1.0},
        {"step": "read", "count": 1, "share_of_sent": 0.5},
    ]
    assert (analytics["opted_out"], analytics["replied"], analytics["attribution_window_hours"]) == (
        1,
        0,
        72.0,
    )
    assert analytics["sends_per_minute"] == [{"minute": T0.isoformat().replace("+00:00", "Z"), "sent": 2}]
    assert analytics["deferrals"] == []


def test_the_csv_export_streams_one_row_per_recipient_with_full_phones_never_logged(
    api: ApiClient, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    campaign_id, phones = seed_ledger(engine)
    caplog.set_level(logging.DEBUG)

    response = api.get(f"/v1/campaigns/{campaign_id}/messages.csv")

    assert response.status_code == 200
    assert response.mimetype == "text/csv" and response.is_streamed
    assert (
        response.headers["Content-Disposition"]
        == f'attachment; filename="campaign-{campaign_id}-messages.csv"'
    )
    assert response.headers["Cache-Control"] == "no-store"
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [row["recipient_phone"] for row in rows] == phones
    assert rows[0]["opted_out_within_72h"] == "yes" and rows[0]["seconds_to_read"] == "60"
    assert rows[2]["error_code"] == "21211" and rows[3]["status"] == "QUEUED"
    assert any(record.getMessage() == "campaign messages exported" for record in caplog.records)
    assert not any(
        phone in record.getMessage() or phone in str(record.__dict__)
        for phone in phones
        for record in caplog.records
    )


def test_the_csv_export_of_an_unknown_campaign_is_a_404_and_needs_a_token(
    api: ApiClient, engine: Engine
) -> None:
    response = api.get("/v1/campaigns/424242/messages.csv")
    assert response.status_code == 404 and error_of(response)["code"] == "not_found"
    assert api.get("/v1/campaigns/0/messages.csv").status_code in (400, 404)
    campaign_id, _ = seed_ledger(engine)
    unauthenticated = api.raw.get(f"/v1/campaigns/{campaign_id}/messages.csv")
    assert unauthenticated.status_code == 401


def test_the_openapi_document_describes_the_csv_export(api: ApiClient) -> None:
    document = api.get("/v1/openapi.json").get_json()
    operation = document["paths"]["/v1/campaigns/{campaign_id}/messages.csv"]["get"]
    assert "recipient_phone" in operation["responses"]["200"]["content"]["text/csv"]["example"]
    summary = document["paths"]["/v1/campaigns/{campaign_id}/summary"]["get"]
    assert summary["responses"]["200"]["content"]["application/json"]
