"""Senders and frequency caps through the `api` function, on real PostgreSQL: the list with each sender's
current rate and last error, adding (addresses normalised, bad input a 400 naming the field, a duplicate a
409), pausing with a reason and resuming, the caps read and replaced, and the campaign's pool, cap policy,
transactional flag and end time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, text

from tests.functions.api_client import ApiClient, api, error_of
from tests.seeding import add_campaign, add_users

__all__ = ["api"]

NUMBER = "whatsapp:+14155238886"
SERVICE = "MG" + "0123456789abcdef" * 2


def add(api: ApiClient, **fields: Any) -> dict[str, Any]:
    response = api.post("/v1/senders", json={"address": NUMBER, "pool": "main", **fields})
    assert response.status_code == 201, response.get_json()
    return dict(response.get_json())


def audit(engine: Engine, kind: str) -> list[Any]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                text("SELECT source, detail FROM audit_events WHERE kind = :kind ORDER BY id"), {"kind": kind}
            )
        )


def test_a_sender_is_added_with_defaults_and_listed(api: ApiClient) -> None:
    sender = add(api, address="+14155238886")

    assert sender["address"] == NUMBER  # a bare +E164 is a WhatsApp number
    assert (sender["pool"], sender["rate_limit_per_second"], sender["state"]) == ("main", 80, "active")
    assert sender["paused_reason"] is sender["paused_by"] is sender["paused_at"] is None
    assert (sender["current_rate"], sender["errors_last_hour"], sender["last_error_code"]) == (0, 0, None)
    listed = api.get("/v1/senders").get_json()
    assert listed["items"] == [sender] and listed["pools"] == ["main"]
    assert api.get(f"/v1/senders/{sender['id']}").get_json() == sender


def test_a_messaging_service_is_a_sender(api: ApiClient) -> None:
    sender = add(api, address="MG" + SERVICE[2:].upper(), pool="b")
    assert sender["address"] == SERVICE


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"address": "14155238886"}, "body.address"),
        ({"address": "whatsapp:+0123"}, "body.address"),
        ({"address": "MG123"}, "body.address"),
        ({"pool": ""}, "body.pool"),
        ({"pool": "p" * 101}, "body.pool"),
        ({"rate_limit_per_second": 0}, "body.rate_limit_per_second"),
        ({"rate_limit_per_second": 501}, "body.rate_limit_per_second"),
        ({"colour": "red"}, "body.colour"),
    ],
)
def test_bad_sender_is_400_naming_the_field(api: ApiClient, fields: dict[str, Any], field: str) -> None:
    error = error_of(api.post("/v1/senders", json={"address": NUMBER, "pool": "main", **fields}))
    assert error["code"] == "validation_error"
    assert error["details"]["errors"][0]["field"] == field


def test_a_duplicate_address_is_409_naming_it(api: ApiClient) -> None:
    add(api)
    response = api.post("/v1/senders", json={"address": "+14155238886", "pool": "other"})
    assert response.status_code == 409
    error = error_of(response)
    assert (error["code"], error["details"]["field"]) == ("sender_exists", "address")
    assert len(api.get("/v1/senders").get_json()["items"]) == 1


def test_pause_with_a_reason_then_resume_each_audited(api: ApiClient, engine: Engine) -> None:
    sender = add(api)
    paused = api.post(f"/v1/senders/{sender['id']}/pause", json={"reason": "quality rating low"}).get_json()
    assert (paused["state"], paused["paused_reason"], paused["paused_by"], paused["changed"]) == (
        "paused",
        "quality rating low",
        "operator",
        True,
    )
    assert paused["paused_at"] is not None
    again = api.post(f"/v1/senders/{sender['id']}/pause", json={"reason": "other"}).get_json()
    assert (again["changed"], again["paused_reason"]) == (False, "quality rating low")

    resumed = api.post(f"/v1/senders/{sender['id']}/resume").get_json()
    assert (resumed["state"], resumed["paused_reason"], resumed["paused_by"], resumed["paused_at"]) == (
        "active",
        None,
        None,
        None,
    )
    assert resumed["changed"] is True
    assert api.post(f"/v1/senders/{sender['id']}/resume").get_json()["changed"] is False

    (added,) = audit(engine, "sender.added")
    (pause,) = audit(engine, "sender.paused")
    (resume,) = audit(engine, "sender.resumed")
    assert added.source == pause.source == resume.source == "api"
    assert pause.detail["reason"] == "quality rating low" and pause.detail["address"] == NUMBER
    assert pause.detail["operator"].startswith("token:")
    assert resume.detail["was_paused_reason"] == "quality rating low"


def test_pause_without_a_body_gives_the_default_reason(api: ApiClient) -> None:
    sender = add(api)
    paused = api.post(f"/v1/senders/{sender['id']}/pause").get_json()
    assert (paused["state"], paused["paused_reason"]) == ("paused", "paused by operator")


def test_a_blank_reason_is_400(api: ApiClient) -> None:
    sender = add(api)
    error = error_of(api.post(f"/v1/senders/{sender['id']}/pause", json={"reason": "  "}))
    assert error["details"]["errors"][0]["field"] == "body.reason"


@pytest.mark.parametrize("path", ["/v1/senders/999", "/v1/senders/999/pause", "/v1/senders/999/resume"])
def test_an_unknown_sender_is_404(api: ApiClient, path: str) -> None:
    response = api.get(path) if path.endswith("999") else api.post(path, json={})
    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/senders"),
        ("POST", "/v1/senders"),
        ("POST", "/v1/senders/1/pause"),
        ("POST", "/v1/senders/1/resume"),
        ("GET", "/v1/frequency-caps"),
        ("PUT", "/v1/frequency-caps"),
    ],
)
def test_every_route_needs_the_token(api: ApiClient, method: str, path: str) -> None:
    response = api.request(method, path, headers={"Authorization": "Bearer wrong"}, json={"caps": []})
    assert response.status_code == 401


def test_current_rate_and_recent_errors_come_from_the_senders_recent_claims(
    api: ApiClient, engine: Engine
) -> None:
    sender = add(api)
    add(api, address="+14155238887")
    campaign_id = add_campaign(engine, status="RUNNING")
    phones = add_users(engine, 5)
    now = datetime.now(UTC)
    claims = [
        timedelta(seconds=5),
        timedelta(seconds=20),
        timedelta(seconds=50),
        timedelta(minutes=5),
        timedelta(hours=2),
    ]
    with engine.begin() as conn:
        for n, (phone, ago) in enumerate(zip(phones, claims, strict=True)):
            conn.execute(
                text(
                    "INSERT INTO messages (campaign_id, recipient_phone, status, sender, claimed_at, error_code)"
                    " VALUES (:c, :p, 'SENT', :s, :at, :e)"
                ),
                {
                    "c": campaign_id,
                    "p": phone,
                    "s": NUMBER,
                    "at": now - ago,
                    "e": 63018 if n in (1, 3, 4) else None,
                },
            )
        conn.execute(
            text("UPDATE senders SET last_error_code = 63018, last_error_at = :at WHERE id = :id"),
            {"at": now, "id": sender["id"]},
        )
    listed = {item["address"]: item for item in api.get("/v1/senders").get_json()["items"]}
    mine = listed[NUMBER]
    assert mine["current_rate"] == pytest.approx(3 / 60, abs=0.001)
    assert mine["errors_last_hour"] == 2  # the one two hours ago is out of the window
    assert mine["last_error_code"] == 63018
    assert "63018" in mine["last_error_meaning"] and "rate" in mine["last_error_meaning"]
    assert listed["whatsapp:+14155238887"]["current_rate"] == 0


def test_frequency_caps_are_replaced_whole_and_audited(api: ApiClient, engine: Engine) -> None:
    assert api.get("/v1/frequency-caps").get_json() == {"caps": []}
    caps = [{"max_messages": 4, "window_hours": 168}, {"max_messages": 1, "window_hours": 24}]
    response = api.put("/v1/frequency-caps", json={"caps": caps})
    assert response.status_code == 200
    expected = {"caps": [caps[1], caps[0]]}  # shortest window first
    assert response.get_json() == expected == api.get("/v1/frequency-caps").get_json()
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT window_seconds FROM frequency_caps ORDER BY 1")).scalars().all()
    assert stored == [86400, 604800]

    assert api.put("/v1/frequency-caps", json={"caps": []}).get_json() == {"caps": []}
    first, second = audit(engine, "frequency_caps.changed")
    assert (first.detail["before"], first.detail["after"]) == ([], expected["caps"])
    assert (second.detail["before"], second.detail["after"]) == (expected["caps"], [])
    assert first.source == "api"


@pytest.mark.parametrize(
    ("caps", "field"),
    [
        ([{"max_messages": 0, "window_hours": 24}], "body.caps.0.max_messages"),
        ([{"max_messages": 1001, "window_hours": 24}], "body.caps.0.max_messages"),
        ([{"max_messages": 1, "window_hours": 0}], "body.caps.0.window_hours"),
        (
            [{"max_messages": 1, "window_hours": 24}, {"max_messages": 1, "window_hours": 8785}],
            "body.caps.1.window_hours",
        ),
        ([{"max_messages": 1}], "body.caps.0.window_hours"),
    ],
)
def test_bad_caps_are_400_naming_the_row(api: ApiClient, caps: list[dict[str, Any]], field: str) -> None:
    error = error_of(api.put("/v1/frequency-caps", json={"caps": caps}))
    assert error["details"]["errors"][0]["field"] == field


def test_two_caps_with_one_window_are_400_naming_the_second(api: ApiClient, engine: Engine) -> None:
    caps = [{"max_messages": 1, "window_hours": 24}, {"max_messages": 3, "window_hours": 24}]
    response = api.put("/v1/frequency-caps", json={"caps": caps})
    assert response.status_code == 400
    error = error_of(response)
    assert (error["code"], error["details"]["field"]) == ("duplicate_window", "caps[1].window_hours")
    assert api.get("/v1/frequency-caps").get_json() == {"caps": []}
    assert audit(engine, "frequency_caps.changed") == []


@pytest.fixture
def refs(api: ApiClient) -> dict[str, int]:
    template = api.post("/v1/templates", json={"name": "t", "content": "Hi"}).get_json()
    segment = api.post(
        "/v1/segments",
        json={"name": "s", "definition": {"attribute": "city", "operator": "equals", "value": "Lima"}},
    ).get_json()
    return {"template_id": template["id"], "segment_id": segment["id"]}


def test_a_campaign_defaults_to_the_configured_sender_and_deferring(
    api: ApiClient, refs: dict[str, int]
) -> None:
    campaign = api.post("/v1/campaigns", json={"name": "c", **refs}).get_json()
    assert (campaign["sender_pool"], campaign["transactional"], campaign["frequency_cap_policy"]) == (
        None,
        False,
        "defer",
    )
    assert campaign["ends_at"] is None


def test_a_campaign_takes_a_pool_policy_and_end(api: ApiClient, refs: dict[str, int]) -> None:
    add(api, pool="promo")
    ends_at = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
    response = api.post(
        "/v1/campaigns",
        json={
            "name": "c",
            **refs,
            "sender_pool": "promo",
            "transactional": True,
            "frequency_cap_policy": "skip",
            "ends_at": ends_at.isoformat(),
            "schedule_time": (ends_at - timedelta(days=1)).isoformat(),
        },
    )
    assert response.status_code == 201, response.get_json()
    campaign = response.get_json()
    assert (campaign["sender_pool"], campaign["transactional"], campaign["frequency_cap_policy"]) == (
        "promo",
        True,
        "skip",
    )
    assert datetime.fromisoformat(campaign["ends_at"]) == ends_at
    assert api.get(f"/v1/campaigns/{campaign['id']}").get_json() == campaign

    patched = api.patch(
        f"/v1/campaigns/{campaign['id']}",
        json={"sender_pool": None, "frequency_cap_policy": "defer", "transactional": False},
    ).get_json()
    assert (patched["sender_pool"], patched["frequency_cap_policy"], patched["transactional"]) == (
        None,
        "defer",
        False,
    )


@pytest.mark.parametrize(
    ("fields", "code", "field"),
    [
        ({"sender_pool": "nobody"}, "invalid_reference", "sender_pool"),
        ({"ends_at": "2020-01-01T00:00:00Z"}, "invalid_end_time", "ends_at"),
        (
            {"ends_at": "2099-01-01T00:00:00Z", "schedule_time": "2099-01-02T00:00:00Z"},
            "invalid_end_time",
            "ends_at",
        ),
    ],
)
def test_bad_pool_or_end_is_400_naming_the_field(
    api: ApiClient, refs: dict[str, int], fields: dict[str, Any], code: str, field: str
) -> None:
    error = error_of(api.post("/v1/campaigns", json={"name": "c", **refs, **fields}))
    assert (error["code"], error["details"]["field"]) == (code, field)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"frequency_cap_policy": "drop"}, "body.frequency_cap_policy"),
        ({"ends_at": "2099-01-01T00:00:00"}, "body.ends_at"),  # no offset
        ({"transactional": "maybe"}, "body.transactional"),
        ({"sender_pool": ""}, "body.sender_pool"),
    ],
)
def test_bad_campaign_cap_fields_are_400(
    api: ApiClient, refs: dict[str, int], fields: dict[str, Any], field: str
) -> None:
    error = error_of(api.post("/v1/campaigns", json={"name": "c", **refs, **fields}))
    assert error["details"]["errors"][0]["field"] == field


def test_patching_a_schedule_past_the_end_is_refused(api: ApiClient, refs: dict[str, int]) -> None:
    campaign = api.post(
        "/v1/campaigns", json={"name": "c", **refs, "ends_at": "2099-01-01T00:00:00Z"}
    ).get_json()
    error = error_of(
        api.patch(f"/v1/campaigns/{campaign['id']}", json={"schedule_time": "2099-02-01T00:00:00Z"})
    )
    assert (error["code"], error["details"]["field"]) == ("invalid_end_time", "ends_at")
