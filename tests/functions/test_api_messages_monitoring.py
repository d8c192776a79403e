"""Messages, the inbound feed and the dashboard through the `api` function, on rows written the way the
pipeline and webhooks write them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, text

from tests.functions.api_client import ApiClient, api, error_of

__all__ = ["api"]


def _campaign(engine: Engine, status: str = "RUNNING") -> int:
    with engine.begin() as conn:
        template = conn.execute(
            text("INSERT INTO templates (name, content) VALUES (gen_random_uuid()::text, 'hi') RETURNING id")
        ).scalar()
        segment = conn.execute(
            text(
                "INSERT INTO segments (name, definition) VALUES (gen_random_uuid()::text, '{}') RETURNING id"
            )
        ).scalar()
        return int(
            conn.execute(
                text(
                    "INSERT INTO campaigns (name, template_id, segment_id, status, started_at)"
                    " VALUES ('c', :t, :s, :st, now()) RETURNING id"
                ),
                {"t": template, "s": segment, "st": status},
            ).scalar_one()
        )


def _message(engine: Engine, campaign_id: int, phone: str, status: str, **times: datetime) -> int:
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO users (phone_e164) VALUES (:p) ON CONFLICT DO NOTHING"), {"p": phone})
        columns = "".join(f", {name}" for name in times)
        values = "".join(f", :{name}" for name in times)
        return int(
            conn.execute(
                text(
                    f"INSERT INTO messages (campaign_id, recipient_phone, status{columns})"
                    f" VALUES (:c, :p, :s{values}) RETURNING id"
                ),
                {"c": campaign_id, "p": phone, "s": status, **times},
            ).scalar_one()
        )


def test_messages_filter_by_campaign_and_status_and_paginate(api: ApiClient, engine: Engine) -> None:
    campaign_id = _campaign(engine)
    ids = [
        _message(engine, campaign_id, f"+1415555{2671 + n}", "DELIVERED" if n % 2 else "QUEUED")
        for n in range(5)
    ]

    delivered = api.get(f"/v1/messages?campaign_id={campaign_id}&status=DELIVERED").get_json()
    assert [m["id"] for m in delivered["items"]] == [ids[1], ids[3]]
    first = api.get("/v1/messages?limit=3").get_json()
    rest = api.get(f"/v1/messages?limit=3&cursor={first['next_cursor']}").get_json()
    assert [m["id"] for m in first["items"] + rest["items"]] == ids
    assert api.get("/v1/messages?campaign_id=999").get_json() == {"items": [], "next_cursor": None}
    assert error_of(api.get("/v1/messages?status=LOST"))["details"]["errors"][0]["field"] == "query.status"


def test_message_detail_carries_its_receipts_and_audit_events(api: ApiClient, engine: Engine) -> None:
    campaign_id = _campaign(engine)
    message_id = _message(engine, campaign_id, "+14155552671", "DELIVERED")
    with engine.begin() as conn:
        for status in ("sent", "delivered"):
            conn.execute(
                text(
                    "INSERT INTO delivery_receipts (message_sid, message_status, message_id, raw_payload)"
                    " VALUES ('SM1', :s, :m, jsonb_build_object('MessageStatus', CAST(:s AS text)))"
                ),
                {"s": status, "m": message_id},
            )
        conn.execute(
            text(
                "INSERT INTO audit_events (kind, message_id, source) VALUES ('message.claimed', :m, 'send_message')"
            ),
            {"m": message_id},
        )

    detail = api.get(f"/v1/messages/{message_id}").get_json()
    assert [r["message_status"] for r in detail["receipts"]] == ["sent", "delivered"]
    assert detail["receipts"][0]["raw_payload"] == {"MessageStatus": "sent"}
    assert [(a["kind"], a["source"]) for a in detail["audit_events"]] == [("message.claimed", "send_message")]
    assert api.get("/v1/messages/999999").status_code == 404


def _inbound(engine: Engine, phone: str | None, body: str, received_at: datetime) -> None:
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO events_inbound (message_sid, from_phone, body, raw_payload, outcome, received_at)"
                " VALUES (gen_random_uuid()::text, :p, :b, '{}', 'none', :at)"
            ),
            {"p": phone, "b": body, "at": received_at},
        )


def test_inbound_feed_is_newest_first_with_phones_masked(api: ApiClient, engine: Engine) -> None:
    now = datetime.now(UTC)
    _inbound(engine, "+14155552671", "call me at +14155550000", now - timedelta(minutes=5))
    _inbound(engine, "+14155552672", "STOP", now)

    page = api.get("/v1/monitoring/inbound?limit=1").get_json()
    assert [(i["from_phone"], i["body"]) for i in page["items"]] == [("+***2672", "STOP")]
    older = api.get(f"/v1/monitoring/inbound?limit=1&cursor={page['next_cursor']}").get_json()
    assert older["items"][0]["from_phone"] == "+***2671"
    assert "4155550000" not in older["items"][0]["body"]
    assert older["next_cursor"] is None


def test_dashboard_counts_today_active_campaigns_and_recent_inbound(api: ApiClient, engine: Engine) -> None:
    now = datetime.now(UTC)
    yesterday = now - timedelta(days=2)
    campaign_id = _campaign(engine, "RUNNING")
    _campaign(engine, "COMPLETED")
    _message(engine, campaign_id, "+14155552671", "DELIVERED", sent_at=now, delivered_at=now)
    _message(engine, campaign_id, "+14155552672", "SENT", sent_at=now)
    _message(engine, campaign_id, "+14155552673", "FAILED", failed_at=now)
    _message(engine, campaign_id, "+14155552674", "DELIVERED", sent_at=yesterday, delivered_at=yesterday)
    api.put("/v1/users/+14155552671/consent", json={"consent_state": "OPT_IN", "reason": "test"})
    _inbound(engine, "+14155552671", "hi", now - timedelta(minutes=10))
    _inbound(engine, "+14155552671", "old", now - timedelta(hours=3))

    dashboard = api.get("/v1/monitoring/dashboard").get_json()
    assert [c["id"] for c in dashboard["active_campaigns"]] == [campaign_id]
    assert dashboard["opted_in_users"] == 1
    # Midnight UTC may fall between the inserts and the request only in the first seconds of a day.
    assert (dashboard["sent_today"], dashboard["delivered_today"], dashboard["failed_today"]) == (2, 1, 1)
    assert dashboard["inbound_last_hour"] == 1
