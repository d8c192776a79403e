"""Campaigns through the `api` function: CRUD while DRAFT, lifecycle actions through the lifecycle
service (with an in-memory publisher standing in for Pub/Sub, which the pipeline's own tests cover),
and the summary computed from the message ledger."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, text

from shared import bootstrap
from shared.bootstrap import Runtime
from shared.config import Settings
from tests.functions.api_client import ApiClient, api, error_of

__all__ = ["api"]


class RecordingPublisher:
    def __init__(self) -> None:
        self.payloads: list[bytes] = []

    def publish(self, payloads: Sequence[bytes]) -> None:
        self.payloads.extend(payloads)


@pytest.fixture
def publisher(settings: Settings) -> Iterator[RecordingPublisher]:
    recorder = RecordingPublisher()
    bootstrap.install(Runtime(publisher=recorder))
    yield recorder
    bootstrap.reset()


@pytest.fixture
def refs(api: ApiClient) -> dict[str, int]:
    template = api.post("/v1/templates", json={"name": "t", "content": "Hi {name|there}"}).get_json()
    segment = api.post(
        "/v1/segments",
        json={"name": "s", "definition": {"attribute": "city", "operator": "equals", "value": "Lima"}},
    ).get_json()
    return {"template_id": template["id"], "segment_id": segment["id"]}


def make_campaign(api: ApiClient, refs: dict[str, int], **fields: Any) -> dict[str, Any]:
    response = api.post("/v1/campaigns", json={"name": "spring", **refs, **fields})
    assert response.status_code == 201, response.get_json()
    return dict(response.get_json())


def opted_in_users(api: ApiClient, count: int) -> None:
    for n in range(count):
        phone = f"+1415555{2671 + n}"
        api.post("/v1/users", json={"phone": phone, "attributes": {"city": "Lima"}})
        api.put(f"/v1/users/{phone}/consent", json={"consent_state": "OPT_IN", "reason": "test"})


def test_new_campaign_is_a_draft_with_defaults(api: ApiClient, refs: dict[str, int]) -> None:
    campaign = make_campaign(api, refs)

    assert (campaign["status"], campaign["rate_limit_per_second"], campaign["timezone"]) == (
        "DRAFT",
        80,
        "UTC",
    )
    assert api.get(f"/v1/campaigns/{campaign['id']}").get_json() == campaign


def test_campaign_with_unknown_template_is_400_naming_the_field(api: ApiClient, refs: dict[str, int]) -> None:
    error = error_of(api.post("/v1/campaigns", json={"name": "x", **refs, "template_id": 999}))
    assert error["code"] == "invalid_reference" and error["details"]["field"] == "template_id"


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"timezone": "Mars/Base"}, "invalid_timezone"),
        ({"quiet_hours_start": "22:00:00"}, "validation_error"),
        ({"rate_limit_per_second": 501}, "validation_error"),
        ({"schedule_time": "2026-12-01T10:00:00"}, "validation_error"),
    ],
)
def test_invalid_campaign_settings_are_400(
    api: ApiClient, refs: dict[str, int], fields: dict[str, Any], expected: str
) -> None:
    assert error_of(api.post("/v1/campaigns", json={"name": "x", **refs, **fields}))["code"] == expected


def test_draft_can_be_edited_and_deleted(api: ApiClient, refs: dict[str, int]) -> None:
    campaign = make_campaign(api, refs)
    patched = api.patch(
        f"/v1/campaigns/{campaign['id']}",
        json={"rate_limit_per_second": 5, "quiet_hours_start": "22:00:00", "quiet_hours_end": "08:00:00"},
    ).get_json()

    assert (patched["rate_limit_per_second"], patched["quiet_hours_end"]) == (5, "08:00:00")
    half = api.patch(f"/v1/campaigns/{campaign['id']}", json={"quiet_hours_start": None})
    assert error_of(half)["code"] == "invalid_quiet_hours"
    assert api.delete(f"/v1/campaigns/{campaign['id']}").status_code == 204
    assert api.get(f"/v1/campaigns/{campaign['id']}").status_code == 404


def test_ready_campaign_can_no_longer_be_edited_or_deleted(api: ApiClient, refs: dict[str, int]) -> None:
    campaign = make_campaign(api, refs)
    ready = api.post(f"/v1/campaigns/{campaign['id']}/ready")

    assert ready.status_code == 200 and ready.get_json()["campaign"]["status"] == "READY"
    assert (
        error_of(api.patch(f"/v1/campaigns/{campaign['id']}", json={"name": "n"}))["code"]
        == "campaign_not_draft"
    )
    assert api.delete(f"/v1/campaigns/{campaign['id']}").status_code == 409


def test_list_filters_by_status_and_paginates(api: ApiClient, refs: dict[str, int]) -> None:
    ids = [make_campaign(api, refs)["id"] for _ in range(3)]
    api.post(f"/v1/campaigns/{ids[1]}/ready")

    assert [c["id"] for c in api.get("/v1/campaigns?status=READY").get_json()["items"]] == [ids[1]]
    first = api.get("/v1/campaigns?limit=2").get_json()
    rest = api.get(f"/v1/campaigns?limit=2&cursor={first['next_cursor']}").get_json()
    assert [c["id"] for c in first["items"] + rest["items"]] == ids and rest["next_cursor"] is None


def test_trigger_freezes_the_audience_and_publishes_pages(
    api: ApiClient, refs: dict[str, int], publisher: RecordingPublisher
) -> None:
    opted_in_users(api, 3)
    campaign = make_campaign(api, refs)
    response = api.post(f"/v1/campaigns/{campaign['id']}/trigger")

    body = response.get_json()
    assert response.status_code == 200, body
    assert (body["campaign"]["status"], body["recipients"], body["changed"]) == ("RUNNING", 3, True)
    assert body["campaign"]["started_at"] is not None
    assert publisher.payloads
    again = api.post(f"/v1/campaigns/{campaign['id']}/trigger")
    assert again.status_code == 409 and error_of(again)["details"]["status"] == "RUNNING"


def test_pause_resume_cancel_follow_the_state_machine(
    api: ApiClient, refs: dict[str, int], publisher: RecordingPublisher
) -> None:
    opted_in_users(api, 1)
    campaign_id = make_campaign(api, refs)["id"]
    api.post(f"/v1/campaigns/{campaign_id}/trigger")

    paused = api.post(f"/v1/campaigns/{campaign_id}/pause").get_json()
    assert (paused["campaign"]["status"], paused["campaign"]["paused_from"]) == ("PAUSED", "RUNNING")
    assert (
        api.post(f"/v1/campaigns/{campaign_id}/pause").get_json()["changed"] is False
    )  # a repeat is no error
    assert api.post(f"/v1/campaigns/{campaign_id}/resume").get_json()["campaign"]["status"] == "RUNNING"
    assert error_of(api.post(f"/v1/campaigns/{campaign_id}/resume"))["code"] == "invalid_transition"
    assert api.post(f"/v1/campaigns/{campaign_id}/cancel").get_json()["campaign"]["status"] == "CANCELLED"
    assert error_of(api.post(f"/v1/campaigns/{campaign_id}/pause"))["details"]["status"] == "CANCELLED"


@pytest.mark.parametrize("action", ["ready", "trigger", "pause", "resume", "cancel"])
def test_actions_on_an_unknown_campaign_are_404(
    api: ApiClient, action: str, publisher: RecordingPublisher
) -> None:
    assert api.post(f"/v1/campaigns/424242/{action}").status_code == 404


def _seed_ledger(engine: Engine, campaign_id: int) -> None:
    """Messages as the pipeline would leave them: statuses, reasons, error codes and send times."""
    start = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    rows = [
        ("DELIVERED", None, None, True, 0),
        ("READ", None, None, True, 1),
        ("READ", None, None, True, 2),
        ("FAILED", None, 30008, True, 3),
        ("UNDELIVERED", None, 30008, True, 4),
        ("FAILED", None, 21211, False, None),
        ("SKIPPED", "missing template variable(s): name", None, False, None),
        ("WITHHELD", "consent revoked", None, False, None),
        ("QUEUED", None, None, False, None),
    ]
    with engine.begin() as conn:
        for n, (status, reason, code, accepted, sent_second) in enumerate(rows):
            phone = f"+1415555{2671 + n}"
            conn.execute(
                text("INSERT INTO users (phone_e164) VALUES (:p) ON CONFLICT DO NOTHING"), {"p": phone}
            )
            message_id = conn.execute(
                text(
                    "INSERT INTO messages (campaign_id, recipient_phone, status, status_reason, error_code,"
                    " provider_sid, sent_at) VALUES (:c, :p, :s, :r, :e, :sid, :at) RETURNING id"
                ),
                {
                    "c": campaign_id,
                    "p": phone,
                    "s": status,
                    "r": reason,
                    "e": code,
                    "sid": f"SM{n:032d}" if accepted else None,
                    "at": None if sent_second is None else start + timedelta(seconds=sent_second),
                },
            ).scalar_one()
        conn.execute(
            text(
                "INSERT INTO audit_events (kind, campaign_id, message_id, detail)"
                " VALUES ('message.deferred', :c, :m, '{}'), ('message.deferred', :c, :m, '{}')"
            ),
            {"c": campaign_id, "m": message_id},
        )


def test_summary_reports_counts_rates_reasons_errors_and_send_rate(
    api: ApiClient, refs: dict[str, int], engine: Engine
) -> None:
    campaign_id = make_campaign(api, refs)["id"]
    _seed_ledger(engine, campaign_id)
    summary = api.get(f"/v1/campaigns/{campaign_id}/summary").get_json()

    assert summary["messages"] == 9
    assert summary["counts"]["READ"] == 2 and summary["counts"]["SENT"] == 0
    assert summary["handed_to_twilio"] == 5
    assert summary["delivery_rate"] == pytest.approx(3 / 5)
    assert summary["read_rate"] == pytest.approx(2 / 5)
    assert summary["skipped_by_reason"] == {"missing template variable(s): name": 1}
    assert summary["withheld_by_reason"] == {"consent revoked": 1}
    assert summary["deferred"] == 2
    assert summary["top_error_codes"] == [
        {"error_code": 30008, "count": 2},
        {"error_code": 21211, "count": 1},
    ]
    assert summary["send_rate_per_second"] == pytest.approx(5 / 4)  # 5 sends over 4 seconds


def test_summary_of_an_untouched_campaign_has_no_rates(api: ApiClient, refs: dict[str, int]) -> None:
    summary = api.get(f"/v1/campaigns/{make_campaign(api, refs)['id']}/summary").get_json()

    assert (summary["messages"], summary["delivery_rate"], summary["send_rate_per_second"]) == (0, None, None)
    assert api.get("/v1/campaigns/424242/summary").status_code == 404
