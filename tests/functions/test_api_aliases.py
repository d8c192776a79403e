"""The replaced system's route names, served as aliases of ours: documented as deprecated and naming the
canonical route, with the same authentication, validation and answers. And the message-status counts
(GET /v1/messages/status-counts) that /v1/reporting/messages/status aliases."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine, insert

from shared.api.routes.aliases import ALIASES
from shared.db.models import Message
from shared.domain.enums import MessageStatus
from tests.functions.api_client import ApiClient, api, error_of
from tests.seeding import add_campaign, add_users, phone

__all__ = ["api"]

ALIAS_PATHS = {
    "POST /v1/users/bulk": "POST /v1/users/import",
    "GET /v1/reporting/campaigns/{campaign_id}/summary": "GET /v1/campaigns/{campaign_id}/summary",
    "GET /v1/reporting/messages/status": "GET /v1/messages/status-counts",
}


def _operation(document: dict[str, Any], endpoint: str) -> dict[str, Any]:
    method, path = endpoint.split(" ", 1)
    return dict(document["paths"][path][method.lower()])


def test_the_aliases_are_the_replaced_systems_routes() -> None:
    assert ALIASES == ALIAS_PATHS


@pytest.mark.parametrize(("alias", "canonical"), ALIAS_PATHS.items())
def test_each_alias_is_documented_as_deprecated_naming_its_canonical_route(
    api: ApiClient, alias: str, canonical: str
) -> None:
    document = api.get("/v1/openapi.json").get_json()
    documented, original = _operation(document, alias), _operation(document, canonical)

    assert documented["deprecated"] is True
    assert f"`{canonical}`" in documented["description"]
    assert "deprecated" not in original
    # Same parameters, body and answers; only its name and the deprecation differ.
    same = ("parameters", "requestBody", "responses", "summary", "tags")
    assert {k: documented.get(k) for k in same} == {k: original.get(k) for k in same}
    assert documented["operationId"] != original["operationId"]


def test_operation_ids_are_unique(api: ApiClient) -> None:
    document = api.get("/v1/openapi.json").get_json()
    ids = [op["operationId"] for item in document["paths"].values() for op in item.values()]

    assert len(ids) == len(set(ids))


@pytest.mark.parametrize(
    "endpoint",
    ["POST /v1/users/bulk", "GET /v1/reporting/campaigns/1/summary", "GET /v1/reporting/messages/status"],
)
def test_an_alias_needs_the_token_like_its_route(api: ApiClient, endpoint: str) -> None:
    method, path = endpoint.split(" ", 1)
    response = api.request(method, path, headers={"Authorization": "Bearer wrong"}, json=[])

    assert response.status_code == 401
    assert error_of(response)["code"] == "unauthorized"


def test_users_bulk_imports_like_users_import(api: ApiClient) -> None:
    bulk = api.post("/v1/users/bulk", json=[{"phone": "+14155552671", "city": "Lima"}, {"phone": "nope"}])
    canonical = api.post(
        "/v1/users/import", json=[{"phone": "+14155552672", "city": "Lima"}, {"phone": "nope"}]
    )

    assert bulk.status_code == canonical.status_code == 200
    assert bulk.get_json() == canonical.get_json()
    assert bulk.get_json()["inserted"] == 1
    assert api.get("/v1/users/+14155552671").get_json()["attributes"] == {"city": "Lima"}


def test_users_bulk_refuses_what_users_import_refuses(api: ApiClient) -> None:
    headers = {"Content-Type": "application/xml"}
    bulk = api.post("/v1/users/bulk", data=b"<users/>", headers=headers)
    canonical = api.post("/v1/users/import", data=b"<users/>", headers=headers)

    assert bulk.status_code == canonical.status_code == 415
    assert bulk.get_json() == canonical.get_json()


def test_reporting_summary_answers_as_the_campaign_summary(api: ApiClient, engine: Engine) -> None:
    campaign_id = add_campaign(engine, status="DRAFT")

    alias = api.get(f"/v1/reporting/campaigns/{campaign_id}/summary")
    canonical = api.get(f"/v1/campaigns/{campaign_id}/summary")

    assert alias.status_code == 200
    assert alias.get_json() == canonical.get_json()
    assert alias.get_json()["campaign_id"] == campaign_id


@pytest.mark.parametrize(("raw", "status"), [("999", 404), ("abc", 400), ("0", 400)])
def test_reporting_summary_refuses_as_the_campaign_summary(api: ApiClient, raw: str, status: int) -> None:
    alias = api.get(f"/v1/reporting/campaigns/{raw}/summary")
    canonical = api.get(f"/v1/campaigns/{raw}/summary")

    assert alias.status_code == canonical.status_code == status
    assert error_of(alias) == error_of(canonical)


def _messages(engine: Engine, campaign_id: int, statuses: list[MessageStatus], first: int) -> None:
    phones = add_users(engine, len(statuses), start=first)
    rows = [
        {"campaign_id": campaign_id, "recipient_phone": number, "status": status.value}
        for number, status in zip(phones, statuses, strict=True)
    ]
    with engine.begin() as conn:
        conn.execute(insert(Message), rows)


def test_status_counts_count_messages_by_status_per_campaign_and_overall(
    api: ApiClient, engine: Engine
) -> None:
    spring, autumn = add_campaign(engine, status="RUNNING"), add_campaign(engine, status="RUNNING")
    _messages(engine, spring, [MessageStatus.DELIVERED, MessageStatus.DELIVERED, MessageStatus.FAILED], 0)
    _messages(engine, autumn, [MessageStatus.QUEUED], 10)

    of_spring = api.get(f"/v1/messages/status-counts?campaign_id={spring}").get_json()
    overall = api.get("/v1/messages/status-counts").get_json()

    assert of_spring["campaign_id"] == spring and of_spring["total"] == 3
    assert of_spring["counts"] == {
        s.value: {"DELIVERED": 2, "FAILED": 1}.get(s.value, 0) for s in MessageStatus
    }
    assert overall["campaign_id"] is None and overall["total"] == 4
    assert (overall["counts"]["DELIVERED"], overall["counts"]["QUEUED"]) == (2, 1)


def test_reporting_messages_status_answers_as_status_counts(api: ApiClient, engine: Engine) -> None:
    campaign_id = add_campaign(engine, status="RUNNING")
    _messages(engine, campaign_id, [MessageStatus.SENT], 0)

    for query in ("", f"?campaign_id={campaign_id}"):
        alias = api.get(f"/v1/reporting/messages/status{query}")
        canonical = api.get(f"/v1/messages/status-counts{query}")
        assert alias.status_code == 200
        assert alias.get_json() == canonical.get_json()
        assert alias.get_json()["counts"]["SENT"] == 1


@pytest.mark.parametrize(
    ("query", "code", "field"),
    [
        ("?campaign_id=999", "invalid_reference", "campaign_id"),
        ("?campaign_id=x", "validation_error", "query.campaign_id"),
        ("?campaign=1", "validation_error", "query.campaign"),
    ],
)
def test_status_counts_refuse_a_bad_campaign_id_naming_it(
    api: ApiClient, query: str, code: str, field: str
) -> None:
    for path in ("/v1/messages/status-counts", "/v1/reporting/messages/status"):
        response = api.get(path + query)
        error = error_of(response)
        assert response.status_code == 400
        assert error["code"] == code
        assert field in (
            error["details"].get("field"),
            *(e["field"] for e in error["details"].get("errors", [])),
        )


def test_an_unknown_campaign_id_is_named_in_the_message(api: ApiClient) -> None:
    error = error_of(api.get("/v1/reporting/messages/status?campaign_id=999"))

    assert error["message"] == "campaign_id 999 does not exist"


def test_status_counts_route_does_not_shadow_a_message(api: ApiClient, engine: Engine) -> None:
    campaign_id = add_campaign(engine, status="RUNNING")
    _messages(engine, campaign_id, [MessageStatus.SENT], 0)

    listed = api.get(f"/v1/messages?campaign_id={campaign_id}").get_json()["items"]
    one = api.get(f"/v1/messages/{listed[0]['id']}")

    assert one.status_code == 200 and one.get_json()["recipient_phone"] == phone(0)
